"""The simulator's in-memory SolusVM 2: records, indexes, and every change, under one lock.

Indexes keep the hot paths cheap at benchmark scale (10,000+ users, hundreds of requests a second):
users by email, servers by user (deleted ones included, for usage) and by UUID. Every method takes the
time as an argument, so the routes decide what "now" is (the controllable ``SimClock``).
"""

from __future__ import annotations

import random
import secrets
import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from simulators.solusvm.activity import ActivityBook
from simulators.solusvm.apierrors import Invalid, not_found
from simulators.solusvm.model import (
    ADMIN_ROLE_ID,
    DEFAULT_ROLES,
    AccessToken,
    Location,
    Plan,
    Server,
    User,
    hash_password,
    password_matches,
)
from simulators.solusvm.state_servers import ServerRecords

ID_KINDS = ("user", "plan", "location", "server", "task", "activity_log")
DEFAULT_ADMIN_EMAIL = "admin@example.com"


class SimState(ServerRecords):
    """All simulated data. Hold ``lock`` around any read that must be consistent across records."""

    def __init__(self, seed: int = 0) -> None:
        self.lock = threading.RLock()
        self._seed = seed
        self.clear()

    def clear(self) -> None:
        """Forget everything (no admin user, no plans): the starting point of ``load`` and tests."""
        with self.lock:
            self._uuid_random = random.Random(self._seed)
            self.users: dict[int, User] = {}
            self.user_id_by_email: dict[str, int] = {}
            self.plans: dict[int, Plan] = {}
            self.locations: dict[int, Location] = {}
            self.limit_groups: dict[int, str] = {}
            self.roles: dict[int, str] = dict(DEFAULT_ROLES)
            self.servers: dict[int, Server] = {}
            self.server_ids_by_user: dict[int, list[int]] = {}
            self.server_id_by_uuid: dict[str, int] = {}
            self.tokens: dict[str, AccessToken] = {}
            self.admin_user_id: int | None = None
            self.next_ids: dict[str, int] = dict.fromkeys(ID_KINDS, 1)
            self._sorted_user_ids: list[int] | None = None
            # Every change of a user's status, oldest first: what tests and the admin view read to tell
            # how an account moved (e.g. that it never went suspended → active → suspended).
            self.status_changes: list[dict[str, Any]] = []
            # Kept incrementally so serialising a user's roles never scans all users.
            self.role_user_counts: Counter[int] = Counter()
            self.activity = ActivityBook()
            # Live servers at some instant, ordered by id, and until when that stays true (paging
            # 100,000 servers must not rescan them all for every page).
            self._visible: tuple[int, datetime, datetime | None, list[Server]] | None = None
            self._version = 0

    @classmethod
    def with_defaults(cls, now: datetime, seed: int = 0) -> SimState:
        state = cls(seed)
        state.add_defaults(now)
        return state

    def add_defaults(self, now: datetime) -> None:
        """What a fresh panel has: the admin user owning the API token, a location, a limit group, plans."""
        with self.lock:
            admin = self.create_user({"email": DEFAULT_ADMIN_EMAIL, "roles": [ADMIN_ROLE_ID]}, now)
            self.admin_user_id = admin.id
            self.add_location(Location(id=self.allocate_id("location"), name="Demo location"))
            self.limit_groups[1] = "Default"
            for name, per_hour, per_month in (("S", 7, 5000), ("M", 14, 10000), ("L", 28, 20000)):
                self.add_plan(
                    Plan(id=self.allocate_id("plan"), name=name, tokens_per_hour=per_hour, tokens_per_month=per_month)
                )

    def allocate_id(self, kind: str, explicit: int | None = None) -> int:
        """The next id of ``kind``, or ``explicit`` (seeding), keeping later ids above it."""
        with self.lock:
            chosen = self.next_ids[kind] if explicit is None else explicit
            self.next_ids[kind] = max(self.next_ids[kind], chosen + 1)
            return chosen

    def new_uuid(self) -> str:
        """Deterministic per seed; after loading a saved state the sequence restarts, so skip taken ones."""
        with self.lock:
            while True:
                candidate = str(uuid.UUID(int=self._uuid_random.getrandbits(128), version=4))
                if candidate not in self.server_id_by_uuid:
                    return candidate

    # Users -----------------------------------------------------------------------------------------

    def get_user(self, user_id: int) -> User:
        with self.lock:
            user = self.users.get(user_id)
        if user is None:
            raise not_found()
        return user

    def user_by_email(self, email: str) -> User | None:
        with self.lock:
            user_id = self.user_id_by_email.get(email.casefold())
            return None if user_id is None else self.users[user_id]

    def list_users(self, search: str | None = None, status: str | None = None) -> list[User]:
        with self.lock:
            if search is None and status is None:
                if self._sorted_user_ids is None:
                    self._sorted_user_ids = sorted(self.users)
                return [self.users[user_id] for user_id in self._sorted_user_ids]
            needle = search.casefold() if search is not None else None
            found = [
                user
                for user in self.users.values()
                if (needle is None or needle in user.email.casefold()) and (status is None or user.status == status)
            ]
        return sorted(found, key=lambda user: user.id)

    def _check_user_references(self, fields: dict[str, Any], user_id: int | None) -> None:
        errors: dict[str, list[str]] = {}
        email = fields.get("email")
        if email is not None:
            # MySQL's default collation makes SolusVM's unique index case-insensitive.
            holder = self.user_id_by_email.get(email.casefold())
            if holder is not None and holder != user_id:
                errors["email"] = ["The email has already been taken."]
        for index, role_id in enumerate(fields.get("roles") or []):
            if role_id not in self.roles:
                errors[f"roles.{index}"] = [f"The selected roles.{index} is invalid."]
        limit_group_id = fields.get("limit_group_id")
        if limit_group_id is not None and limit_group_id not in self.limit_groups:
            errors["limit_group_id"] = ["The selected limit group id is invalid."]
        if errors:
            raise Invalid(errors)

    def create_user(self, fields: dict[str, Any], now: datetime, user_id: int | None = None) -> User:
        """Create from validated ``fields`` (see ``validation.user_fields``); 422 on a taken email."""
        with self.lock:
            if user_id is not None and user_id in self.users:
                raise Invalid({"id": [f"A user with id {user_id} already exists."]})
            self._check_user_references(fields, None)
            values = {key: value for key, value in fields.items() if key != "password"}
            user = User(id=self.allocate_id("user", user_id), created_at=now, updated_at=now, **values)
            if fields.get("password"):
                user.password_hash = hash_password(fields["password"])
            self.index_user(user)
            return user

    def index_user(self, user: User) -> None:
        with self.lock:
            self.users[user.id] = user
            self.user_id_by_email[user.email.casefold()] = user.id
            self.role_user_counts.update(user.roles)
            self._sorted_user_ids = None

    def update_user(self, user_id: int, fields: dict[str, Any], now: datetime) -> User:
        with self.lock:
            user = self.get_user(user_id)
            self._check_user_references(fields, user_id)
            if "email" in fields:
                del self.user_id_by_email[user.email.casefold()]
                self.user_id_by_email[fields["email"].casefold()] = user_id
            if "roles" in fields:
                self.role_user_counts.subtract(user.roles)
                self.role_user_counts.update(fields["roles"])
            if "status" in fields and fields["status"] != user.status:
                self.status_changes.append({"user_id": user_id, "from": user.status, "to": fields["status"], "at": now})
            for key, value in fields.items():
                if key == "password":
                    user.password_hash = hash_password(value)
                else:
                    setattr(user, key, value)
            user.updated_at = now
            return user

    def status_history(self, user_id: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(change) for change in self.status_changes if user_id is None or change["user_id"] == user_id]

    def delete_user(self, user_id: int) -> None:
        with self.lock:
            user = self.get_user(user_id)
            if any(self.servers[sid].deleted_at is None for sid in self.server_ids_by_user.get(user_id, [])):
                raise Invalid({"user": ["The user still owns servers; delete them first."]})
            if user_id == self.admin_user_id:
                raise Invalid({"user": ["The owner of the API token cannot be deleted."]})
            del self.users[user_id]
            del self.user_id_by_email[user.email.casefold()]
            self.role_user_counts.subtract(user.roles)
            self._sorted_user_ids = None
            for value in [v for v, token in self.tokens.items() if token.user_id == user_id]:
                del self.tokens[value]

    # Tokens ----------------------------------------------------------------------------------------

    def issue_token(
        self, user_id: int, *, one_time: bool, now: datetime, ttl_seconds: float | None = None
    ) -> AccessToken:
        with self.lock:
            self.get_user(user_id)
            expires_at = None if ttl_seconds is None else now + timedelta(seconds=ttl_seconds)
            token = AccessToken(
                value=secrets.token_urlsafe(32),
                user_id=user_id,
                one_time=one_time,
                created_at=now,
                expires_at=expires_at,
            )
            self.tokens[token.value] = token
            return token

    def redeem_token(self, value: str, now: datetime, *, one_time_only: bool = False) -> AccessToken | None:
        """The token if it may be used now (consuming it if one-time), else None.

        A locked user can no longer sign in [I: the reference leaves locked vs suspended open].
        """
        with self.lock:
            token = self.tokens.get(value)
            if token is None or token.used or (one_time_only and not token.one_time):
                return None
            if token.expires_at is not None and now >= token.expires_at:
                return None
            user = self.users.get(token.user_id)
            if user is None or user.status == "locked":
                return None
            if token.one_time:
                token.used = True
            return token

    def login(self, email: str, password: str, now: datetime) -> AccessToken | None:
        with self.lock:
            user = self.user_by_email(email)
            if user is None or user.status == "locked" or not password_matches(user.password_hash, password):
                return None
            return self.issue_token(user.id, one_time=False, now=now, ttl_seconds=86400)

    def is_admin(self, user_id: int) -> bool:
        with self.lock:
            user = self.users.get(user_id)
            return user is not None and ADMIN_ROLE_ID in user.roles

    # Catalogue -------------------------------------------------------------------------------------

    def add_plan(self, plan: Plan) -> Plan:
        with self.lock:
            self.plans[plan.id] = plan
            return plan

    def add_location(self, location: Location) -> Location:
        with self.lock:
            self.locations[location.id] = location
            return location

    def get_plan(self, plan_id: int) -> Plan:
        with self.lock:
            plan = self.plans.get(plan_id)
        if plan is None:
            raise not_found()
        return plan
