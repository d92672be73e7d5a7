"""An in-memory SolusVM 2, as postpay's ``SolusVMClient`` shows it: users, each user's usage of a
window as the usage endpoint would answer it, and the raw inventory pages the meter reads. Every method
a service calls has the adapter's exact signature (``tests/unit/test_fakes_match_adapters.py``); what
the fake adds for tests is listed in ``CONTROLS``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from shared.ports import SolusVM
from shared.upstream.errors import UpstreamNotFound, UpstreamValidationError
from shared.upstream.solusvm_models import PeriodUsage, ServerUsage, SolusUser
from tests.fakes.failures import Failures

PANEL = "https://panel.fake.example"


class FakeSolusvm:
    """Satisfies ``shared.ports.SolusVM`` (structurally, as the real adapter does)."""

    CONTROLS = ("add_user", "set_usage", "fail", "servers", "activity", "plans")

    def __init__(self) -> None:
        self.users: dict[int, SolusUser] = {}
        self.passwords: dict[int, str] = {}
        self.tokens: dict[str, int] = {}
        self.usage: dict[int, list[ServerUsage]] = {}
        self.calls: list[str] = []
        self.failures = Failures()
        # The meter's raw reads, as the API's JSON items (shared.upstream.solusvm_inventory parses them).
        self.servers: list[dict[str, Any]] = []
        self.activity: list[dict[str, Any]] = []
        self.plans: list[dict[str, Any]] = []
        self._user_ids = itertools.count(2)  # user 1 is the panel's admin

    # -- what tests set up and look at ------------------------------------------------------------
    def add_user(self, email: str, *, billing_user_id: int | None = None, status: str = "active") -> SolusUser:
        user = SolusUser(id=next(self._user_ids), email=email, status=status, billing_user_id=billing_user_id)
        self.users[user.id] = user
        return user

    def set_usage(self, user_id: int, servers: list[ServerUsage]) -> None:
        """What the usage endpoint answers for ``user_id`` (whatever the window asked)."""
        self.usage[user_id] = servers

    def fail(self, method: str, error: BaseException, *, times: int = 1, after: bool = False) -> None:
        self.failures.fail(method, error, times=times, after=after)

    def _call(self, method: str) -> None:
        self.calls.append(method)
        self.failures.check(method)

    def _user(self, user_id: int) -> SolusUser:
        user = self.users.get(user_id)
        if user is None:
            raise UpstreamNotFound(f"solusvm: no user {user_id}", upstream="solusvm", status=404)
        return user

    # -- the adapter's methods --------------------------------------------------------------------
    def find_user_by_email(self, email: str) -> SolusUser | None:
        self._call("find_user_by_email")
        wanted = email.strip().casefold()
        return next((u for u in self.users.values() if u.email.strip().casefold() == wanted), None)

    def get_user(self, user_id: int) -> SolusUser:
        self._call("get_user")
        return self._user(user_id)

    def find_or_create_user(
        self,
        email: str,
        password: SecretStr | str,
        *,
        billing_user_id: int | str | None,
        limit_group_id: int | None = None,
        roles: list[int] | None = None,
        status: str = "active",
    ) -> SolusUser:
        self._call("find_or_create_user")
        wanted = email.strip().casefold()
        existing = next((u for u in self.users.values() if u.email.strip().casefold() == wanted), None)
        if existing is not None:
            return existing
        user = SolusUser(
            id=next(self._user_ids),
            email=email,
            status=status,
            billing_user_id=billing_user_id,
            limit_group_id=limit_group_id,
            roles=list(roles or []),
        )
        self.users[user.id] = user
        self.passwords[user.id] = password.get_secret_value() if isinstance(password, SecretStr) else password
        self.failures.check("find_or_create_user", after=True)
        return user

    def patch_user(self, user_id: int, **fields: Any) -> SolusUser:
        self._call("patch_user")
        return self._patch("patch_user", user_id, fields)

    def set_status(self, user_id: int, status: str) -> SolusUser:
        self._call("set_status")
        return self._patch("set_status", user_id, {"status": status})

    def _patch(self, method: str, user_id: int, fields: dict[str, Any]) -> SolusUser:
        user = self._user(user_id)
        email = fields.get("email")
        if email and any(u.email.casefold() == email.casefold() for u in self.users.values() if u.id != user_id):
            raise UpstreamValidationError(
                "solusvm: the email is taken",
                upstream="solusvm",
                status=422,
                errors={"email": ["The email has already been taken."]},
            )
        user = user.model_copy(update=fields)
        self.users[user_id] = user
        self.failures.check(method, after=True)
        return user

    def create_one_time_token(self, user_id: int) -> str:
        self._call("create_one_time_token")
        self._user(user_id)
        token = f"token-{user_id}-{len(self.tokens) + 1}"
        self.tokens[token] = user_id
        return token

    def sso_login_url(self, token: str) -> str:
        return f"{PANEL}/auth/by_token?token={token}"

    def period_usage(self, user_id: int, start: datetime, end: datetime) -> PeriodUsage:
        self._call("period_usage")
        if end <= start:
            raise ValueError("the period must end after it starts")
        self._user(user_id)
        servers = self.usage.get(user_id, [])
        return PeriodUsage(
            user_id=user_id,
            start=start.astimezone(UTC),
            end=end.astimezone(UTC),
            servers=servers,
            total_tokens=sum(s.tokens for s in servers),
        )

    def server_page(self, page: int, *, per_page: int = 100) -> tuple[list[Any], int | None]:
        self._call("server_page")
        last = max(1, -(-len(self.servers) // per_page))
        return self.servers[(page - 1) * per_page : page * per_page], last

    def activity_log_pages(
        self, *, event: str | None = None, per_page: int = 100, max_pages: int | None = None
    ) -> Iterator[list[Any]]:
        self._call("activity_log_pages")
        entries = [e for e in self.activity if event is None or e.get("event") == event]
        pages = [entries[n : n + per_page] for n in range(0, len(entries), per_page)]
        yield from pages[:max_pages] if max_pages is not None else pages

    def plan_pages(self) -> Iterator[list[Any]]:
        self._call("plan_pages")
        yield list(self.plans)


_port: type[SolusVM] = FakeSolusvm  # mypy: the fake is a SolusVM
