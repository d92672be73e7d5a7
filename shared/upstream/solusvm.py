"""The SolusVM 2 REST client postpay uses: users, one-time SSO tokens, and period usage (§8).

Every request goes through ``shared.upstream.http.send`` (logged by call label and status, measured,
never with the token). GETs are retried by ``with_retries``; writes go through it too, but a write's
ambiguous failures (5xx, timeout, cut-off answer) are ``UpstreamOutcomeUnknown``, which is never
retried, so a write is repeated only when the failure proves it was not processed: the connection
was refused, or the API answered 429 (Laravel's throttle runs before the controller).
``find_or_create_user`` resolves an unknown outcome by looking the user up before creating again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from shared.logging import get_logger
from shared.settings import UpstreamSettings
from shared.upstream.errors import UpstreamError, UpstreamOutcomeUnknown, UpstreamValidationError
from shared.upstream.http import Timeouts
from shared.upstream.retries import RetryPolicy
from shared.upstream.solusvm_connection import UPSTREAM, SolusVMConnection, SolusVMResponseError, json_object
from shared.upstream.solusvm_models import PeriodUsage, SolusUser, coerce_int

USER_STATUSES = ("active", "locked", "suspended")

log = get_logger("postpay.upstream.solusvm")


def _reveal(value: SecretStr | str) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


# Every customer of a close asks for the same two bounds: formatted once each.
@functools.lru_cache(maxsize=256)
def _utc_z(moment: datetime) -> str:
    """The ``Z`` form the usage contract asks clients to send (§8.1)."""
    if moment.tzinfo is None:
        raise ValueError("period bounds must be timezone-aware")
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ")


class SolusVMClient(SolusVMConnection):
    """A synchronous, thread-safe client of one SolusVM 2 panel (``base_url`` is the panel origin).

    The connection (origin, token, retries, paging, answer checks) is :class:`SolusVMConnection`
    (solusvm_connection.py); the calls are here."""

    @classmethod
    def from_settings(cls, settings: UpstreamSettings, **overrides: Any) -> SolusVMClient:
        options: dict[str, Any] = {
            "timeouts": Timeouts(connect=settings.upstream_connect_timeout, read=settings.upstream_read_timeout),
            "retry": RetryPolicy(
                max_attempts=settings.upstream_max_attempts, deadline_seconds=settings.upstream_deadline
            ),
            "usage_path": settings.solusvm_usage_path,
            "sso_path": settings.solusvm_sso_path,
            "max_connections": settings.upstream_max_connections,
            "pacing": settings.pacing(settings.solusvm_max_in_flight),
        }
        return cls(settings.solusvm_url, settings.solusvm_api_token, **{**options, **overrides})

    # Users -----------------------------------------------------------------------------------------

    def find_user_by_email(self, email: str) -> SolusUser | None:
        """The user whose email is ``email``, paging through every ``filter[search]`` match.

        Search is a substring match over several fields, so each candidate's email is compared in code.
        The comparison ignores case because SolusVM's unique index does (MySQL collation): a user that
        differs only in case would make a create fail as "taken", so it is the same account. An exact
        match is still preferred when both exist.
        """
        wanted = email.strip().casefold()
        near_match: SolusUser | None = None
        for page in self._pages("/api/v1/users", {"filter[search]": email}):
            for raw in page:
                candidate = raw.get("email") if isinstance(raw, dict) else None
                if not isinstance(candidate, str) or candidate.strip().casefold() != wanted:
                    continue
                user = self._parse(SolusUser, raw)
                if candidate == email:
                    return user
                near_match = near_match or user
        return near_match

    def get_user(self, user_id: int) -> SolusUser:
        return self._parse(SolusUser, self._get(f"/api/v1/users/{user_id}", "/api/v1/users/{id}")["data"])

    def get_account(self) -> SolusUser:
        """The user owning the API token: a cheap connection and credentials check."""
        return self._parse(SolusUser, self._get("/api/v1/account", "/api/v1/account")["data"])

    def create_user(
        self,
        email: str,
        password: SecretStr | str,
        *,
        billing_user_id: int | str | None,
        limit_group_id: int | None = None,
        roles: list[int] | None = None,
        status: str = "active",
    ) -> SolusUser:
        """``POST /users`` once. On ``UpstreamOutcomeUnknown`` the user may exist: prefer find_or_create_user."""
        _check_status(status)
        payload: dict[str, Any] = {
            "email": email,
            "password": _reveal(password),
            "status": status,
            "billing_user_id": billing_user_id,
        }
        if limit_group_id is not None:
            payload["limit_group_id"] = limit_group_id
        if roles is not None:
            payload["roles"] = list(roles)
        body = self._write("POST", "/api/v1/users", "/api/v1/users", payload, expected=(200, 201))
        return self._parse(SolusUser, body["data"])

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
        """The user with ``email``, created if (and only if) a lookup proves it does not exist.

        An existing user is returned as it is; the caller decides whether its ``billing_user_id`` needs
        a ``patch_user``. A create whose outcome is unknown is followed by a lookup, never by a blind
        second create; so is a 422 "email taken" (someone, perhaps our lost first try, created it).
        """
        existing = self.find_user_by_email(email)
        if existing is not None:
            return existing
        unknown: UpstreamOutcomeUnknown | None = None
        for _ in range(max(1, self._retry.max_attempts)):
            try:
                return self.create_user(
                    email,
                    password,
                    billing_user_id=billing_user_id,
                    limit_group_id=limit_group_id,
                    roles=roles,
                    status=status,
                )
            except UpstreamValidationError as exc:
                if "email" not in exc.errors:
                    raise
                taken_by = self.find_user_by_email(email)
                if taken_by is None:
                    raise
                return taken_by
            except UpstreamOutcomeUnknown as exc:
                unknown = exc
            try:
                created = self.find_user_by_email(email)
            except UpstreamError as lookup_error:
                # Neither the create nor its absence can be confirmed: the caller must try again later.
                raise unknown from lookup_error
            if created is not None:
                log.info("create outcome resolved by lookup", call="POST /api/v1/users", user_id=created.id)
                return created
            log.warning("create lost before commit; creating again", call="POST /api/v1/users")
        assert unknown is not None
        raise unknown

    def patch_user(self, user_id: int, **fields: Any) -> SolusUser:
        """``PATCH /users/{id}`` with ``fields`` (e.g. ``email=``, ``status=``, ``billing_user_id=``)."""
        if "status" in fields:
            _check_status(fields["status"])
        payload = {key: _reveal(value) if isinstance(value, SecretStr) else value for key, value in fields.items()}
        body = self._write("PATCH", f"/api/v1/users/{user_id}", "/api/v1/users/{id}", payload, expected=(200,))
        return self._parse(SolusUser, body["data"])

    def set_status(self, user_id: int, status: str) -> SolusUser:
        return self.patch_user(user_id, status=status)

    # SSO -------------------------------------------------------------------------------------------

    def create_one_time_token(self, user_id: int) -> str:
        """A token that signs the user in once (browser route or API Bearer), §3.2."""
        body = self._write(
            "POST",
            f"/api/v1/users/{user_id}/tokens",
            "/api/v1/users/{id}/tokens",
            {"is_one_time": True},
            expected=(200, 201),
        )
        token = body["data"].get("access_token") if isinstance(body["data"], dict) else None
        if not isinstance(token, str) or not token:
            raise SolusVMResponseError("SolusVM tokens answer without data.access_token", upstream=UPSTREAM)
        return token

    def sso_login_url(self, token: str) -> str:
        """Where to send the browser: the panel origin (not ``/api/v1``) + the SSO route + the token."""
        return f"{self.origin}{self._sso_path}?token={quote(token, safe='')}"

    # Usage -----------------------------------------------------------------------------------------

    def period_usage(self, user_id: int, start: datetime, end: datetime) -> PeriodUsage:
        """One billing period's usage, fetched as one window (the monthly cap is per window, §8.3)."""
        params = {"from": _utc_z(start), "to": _utc_z(end)}
        if end <= start:
            raise ValueError("the period must end after it starts")
        body = self._get(self._usage_path.format(id=user_id), self._usage_path, params)
        usage = self._parse(PeriodUsage, body["data"])
        if usage.user_id != user_id or usage.start != start.astimezone(UTC) or usage.end != end.astimezone(UTC):
            raise SolusVMResponseError(
                f"SolusVM usage answered for user {usage.user_id} [{usage.start}, {usage.end}), "
                f"not the requested user {user_id} window",
                upstream=UPSTREAM,
            )
        return usage

    # Inventory (the meter) ---------------------------------------------------------------------------

    def server_page(self, page: int, *, per_page: int = 100) -> tuple[list[Any], int | None]:
        """One page of ``GET /servers`` and the last page number ``meta`` gives (None when it gives none),
        so a caller may fetch the remaining pages side by side."""
        body = self._get("/api/v1/servers", "/api/v1/servers", {"per_page": per_page, "page": page})
        items = body["data"]
        if not isinstance(items, list):
            raise SolusVMResponseError("SolusVM /api/v1/servers: data is not a list", upstream=UPSTREAM)
        meta = json_object(body.get("meta"))
        try:
            last = coerce_int(meta["last_page"]) if meta.get("last_page") is not None else None
        except ValueError:
            last = None
        return items, last

    def activity_log_pages(
        self, *, event: str | None = None, per_page: int = 100, max_pages: int | None = None
    ) -> Iterator[list[Any]]:
        """Activity log entries (§4.2a), page by page; the caller stops once it reaches what it has seen."""
        params: dict[str, Any] = {"per_page": per_page}
        if event is not None:
            params["filter[event]"] = event
        yield from self._pages("/api/v1/activity_logs", params, max_pages=max_pages)

    def plan_pages(self) -> Iterator[list[Any]]:
        yield from self._pages("/api/v1/plans", {})


def _check_status(status: str) -> None:
    if status not in USER_STATUSES:
        raise ValueError(f"status must be one of {USER_STATUSES}, not {status!r}")
