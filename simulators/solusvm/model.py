"""The simulator's records and their JSON form (for ``--state`` files and ``/_sim/state``).

Plain mutable dataclasses: ``SimState`` owns them and changes them only under its lock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from simulators.solusvm.timestamps import format_optional, format_timestamp, parse_aware_timestamp

USER_STATUSES = ("active", "locked", "suspended")
TASK_STATUSES = ("pending", "queued", "running", "done", "done_with_errors", "failed", "canceled")
ADMIN_ROLE_ID = 1
CLIENT_ROLE_ID = 2
DEFAULT_ROLES = {ADMIN_ROLE_ID: "Admin", CLIENT_ROLE_ID: "Client"}


def hash_password(password: str) -> str:
    """Salted SHA-256: the state file must never hold a usable password (a simulator, not a vault)."""
    salt = secrets.token_hex(8)
    return f"sha256${salt}${hashlib.sha256((salt + password).encode()).hexdigest()}"


def password_matches(stored: str | None, password: str) -> bool:
    if not stored or stored.count("$") != 2:
        return False
    _, salt, digest = stored.split("$")
    return hmac.compare_digest(digest, hashlib.sha256((salt + password).encode()).hexdigest())


def _time(value: str | None) -> datetime | None:
    return None if value is None else parse_aware_timestamp(value)


@dataclass
class Plan:
    id: int
    name: str
    tokens_per_hour: int
    tokens_per_month: int
    vcpu: int = 1
    ram_mib: int = 1024
    disk_gib: int = 20
    virtualization_type: str = "kvm"

    def dump(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def load(cls, data: dict[str, Any]) -> Plan:
        return cls(**data)


@dataclass
class Location:
    id: int
    name: str

    def dump(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def load(cls, data: dict[str, Any]) -> Location:
        return cls(**data)


@dataclass
class User:
    id: int
    email: str
    created_at: datetime
    updated_at: datetime
    status: str = "active"
    roles: list[int] = field(default_factory=lambda: [CLIENT_ROLE_ID])
    billing_user_id: int | None = None
    billing_token: str | None = None
    limit_group_id: int | None = None
    language_id: int = 1
    password_hash: str | None = None

    def dump(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["created_at"] = format_timestamp(self.created_at)
        data["updated_at"] = format_timestamp(self.updated_at)
        data["roles"] = list(self.roles)
        return data

    @classmethod
    def load(cls, data: dict[str, Any]) -> User:
        values = dict(data)
        values["created_at"] = parse_aware_timestamp(values["created_at"])
        values["updated_at"] = parse_aware_timestamp(values["updated_at"])
        return cls(**values)


@dataclass
class Server:
    """A server and its whole history, which may reach past the simulator's clock.

    Tests seed a month ahead (runs, a resize, a deletion at instants still to come); everything the API
    shows is read at the clock's ``now``: whether the server exists yet or still, whether it is running,
    which plan it is on. So a test meters a month by moving the clock, without touching the state.
    """

    id: int
    uuid: str
    name: str
    user_id: int
    # The plan at creation; ``plan_changes`` are the resizes after it, [at, plan_id], oldest first.
    plan_id: int
    location_id: int
    created_at: datetime
    # Run intervals [start, end); the last one may be open (end None) while the server runs.
    intervals: list[list[datetime | None]] = field(default_factory=list)
    deleted_at: datetime | None = None
    # The plan as it was when the server was deleted: usage prices a deleted server at that plan (§8.3).
    deleted_plan: Plan | None = None
    is_suspended: bool = False
    os_id: int | None = None
    application_id: int | None = None
    compute_resource_id: int = 1
    description: str = ""
    fqdns: list[str] = field(default_factory=list)
    plan_changes: list[list[Any]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        """Whether the last interval is open (the history's end state, whatever the clock says)."""
        return bool(self.intervals) and self.intervals[-1][1] is None

    def running_at(self, now: datetime) -> bool:
        if self.deleted_at is not None and self.deleted_at <= now:
            return False
        return any(start <= now and (end is None or now < end) for start, end in self.intervals)  # type: ignore[operator]

    def exists_at(self, now: datetime) -> bool:
        return self.created_at <= now and (self.deleted_at is None or now < self.deleted_at)

    def deleted_by(self, now: datetime) -> bool:
        return self.deleted_at is not None and self.deleted_at <= now

    def plan_id_at(self, now: datetime) -> int:
        current = self.plan_id
        for at, plan_id in self.plan_changes:
            if at > now:
                break
            current = plan_id
        return current

    def forget_future(self, now: datetime) -> None:
        """A live API action rewrites what a seeded history said would happen after ``now``."""
        kept: list[list[datetime | None]] = []
        for start, end in self.intervals:
            if start > now:  # type: ignore[operator]
                continue
            kept.append([start, None if end is None or end > now else end])  # type: ignore[operator]
        self.intervals = kept
        self.plan_changes = [change for change in self.plan_changes if change[0] <= now]

    def start(self, now: datetime) -> None:
        self.forget_future(now)
        if not self.running:
            self.intervals.append([now, None])

    def stop(self, now: datetime) -> None:
        self.forget_future(now)
        if self.running:
            self.intervals[-1][1] = now

    def resize(self, plan_id: int, now: datetime) -> None:
        self.forget_future(now)
        self.plan_changes.append([now, plan_id])

    def dump(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["created_at"] = format_timestamp(self.created_at)
        data["deleted_at"] = format_optional(self.deleted_at)
        data["intervals"] = [[format_timestamp(start), format_optional(end)] for start, end in self.intervals]  # type: ignore[arg-type]
        data["deleted_plan"] = self.deleted_plan.dump() if self.deleted_plan else None
        data["fqdns"] = list(self.fqdns)
        data["plan_changes"] = [[format_timestamp(at), plan_id] for at, plan_id in self.plan_changes]
        return data

    @classmethod
    def load(cls, data: dict[str, Any]) -> Server:
        values = dict(data)
        values["created_at"] = parse_aware_timestamp(values["created_at"])
        values["deleted_at"] = _time(values.get("deleted_at"))
        values["intervals"] = [[parse_aware_timestamp(start), _time(end)] for start, end in values["intervals"]]
        values["deleted_plan"] = Plan.load(values["deleted_plan"]) if values.get("deleted_plan") else None
        values["plan_changes"] = [
            [parse_aware_timestamp(at), int(plan_id)] for at, plan_id in values.get("plan_changes") or []
        ]
        return cls(**values)


@dataclass
class ActivityLog:
    """One activity log entry (§4.2a): ``data`` is free-form; here it names the server it is about."""

    id: int
    event: str
    user_id: int | None
    user_email: str
    created_at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    def dump(self) -> dict[str, Any]:
        return {**self.__dict__, "created_at": format_timestamp(self.created_at), "data": dict(self.data)}

    @classmethod
    def load(cls, data: dict[str, Any]) -> ActivityLog:
        return cls(**{**data, "created_at": parse_aware_timestamp(data["created_at"])})


@dataclass
class AccessToken:
    """A Bearer token acting as one user: from ``users/{id}/tokens`` or ``auth/login``."""

    value: str
    user_id: int
    one_time: bool
    created_at: datetime
    expires_at: datetime | None = None
    used: bool = False

    def dump(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["created_at"] = format_timestamp(self.created_at)
        data["expires_at"] = format_optional(self.expires_at)
        return data

    @classmethod
    def load(cls, data: dict[str, Any]) -> AccessToken:
        values = dict(data)
        values["created_at"] = parse_aware_timestamp(values["created_at"])
        values["expires_at"] = _time(values.get("expires_at"))
        return cls(**values)
