"""What the meter reads from SolusVM 2's documented lists, read leniently (pure; no I/O).

- ``GET /servers`` (§4.2): id, uuid, name, status, owner, plan with its token prices, created_at. A
  sweep over 100,000 servers parses every one, so this is plain dict reading, not a pydantic model.
- ``GET /activity_logs`` (§4.2a): id, event, created_at and ``data``, whose shape is not documented.
  The server an entry is about is looked for under the names a Laravel resource would use (``id``,
  ``server_id``, ``uuid``, a nested ``server``/``vm``/``virtual_server`` object…); when none fits, the
  entry says nothing usable and the meter relies on what ``GET /servers`` shows.
- Statuses: ``started`` is running; ``stopped``, ``paused`` and ``not exists`` are not; anything else
  (``processing``, ``unavailable``…) tells nothing either way, so it changes nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.upstream.solusvm_models import as_utc, coerce_int

Power = Literal["running", "stopped", "unknown"]
RUNNING: Power = "running"
STOPPED: Power = "stopped"
UNKNOWN: Power = "unknown"
_RUNNING_STATUSES = frozenset({"started", "running"})
_STOPPED_STATUSES = frozenset({"stopped", "paused", "not exists", "not_exists", "deleted"})

VM_CREATED = "compute_resource_vm_created"
VM_DELETE_REQUESTED = "compute_resource_vm_delete_requested"
VM_BATCH_DELETED = "compute_resource_vm_batch_deleted"
METERED_EVENTS = (VM_CREATED, VM_DELETE_REQUESTED, VM_BATCH_DELETED)
DELETION_EVENTS = frozenset({VM_DELETE_REQUESTED, VM_BATCH_DELETED})

_MAX_TEXT = 200


class Unreadable(ValueError):
    """An object in a list answer that cannot be used (no id, no owner, no plan prices…)."""


@dataclass(frozen=True, slots=True)
class PlanPrices:
    id: int
    name: str
    tokens_per_hour: int
    tokens_per_month: int


@dataclass(frozen=True, slots=True)
class ServerSighting:
    """One server as one page of ``GET /servers`` showed it."""

    id: int
    uuid: str
    name: str
    power: Power
    user_id: int
    plan: PlanPrices
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class ServerRef:
    """Which server an activity log entry is about, as far as its ``data`` tells."""

    id: int | None = None
    uuid: str | None = None
    name: str | None = None
    user_id: int | None = None
    plan_id: int | None = None


@dataclass(frozen=True, slots=True)
class ActivityEntry:
    id: int
    event: str
    created_at: datetime
    servers: tuple[ServerRef, ...]


def power_of(status: Any) -> Power:
    text = str(status).strip().lower() if status is not None else ""
    if text in _RUNNING_STATUSES:
        return RUNNING
    if text in _STOPPED_STATUSES:
        return STOPPED
    return UNKNOWN


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return as_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00")))
    except ValueError:
        return None


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else coerce_int(value)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def _plan(plan_id: int, name: str, per_hour: int, per_month: int) -> PlanPrices:
    # A panel has a handful of plans and 100,000 servers: one object per plan, not per server.
    return PlanPrices(plan_id, name, per_hour, per_month)


def parse_plan(raw: Any) -> PlanPrices:
    if not isinstance(raw, dict):
        raise Unreadable("no plan object")
    try:
        return _plan(
            coerce_int(raw["id"]),
            str(raw.get("name") or "")[:_MAX_TEXT],
            coerce_int(raw["tokens_per_hour"]),
            coerce_int(raw["tokens_per_month"]),
        )
    except (KeyError, ValueError) as exc:
        raise Unreadable(f"plan without usable token prices ({exc})") from None


def parse_server(raw: Any) -> ServerSighting:
    """A server from a ``GET /servers`` page; ``Unreadable`` when it cannot be billed from."""
    if not isinstance(raw, dict):
        raise Unreadable("not an object")
    server_id = _int_or_none(raw.get("id"))
    if server_id is None or server_id <= 0:
        raise Unreadable("no server id")
    user = raw.get("user")
    user_id = _int_or_none(user.get("id") if isinstance(user, dict) else raw.get("user_id"))
    if user_id is None:
        raise Unreadable(f"server {server_id}: no owner")
    try:
        plan = parse_plan(raw.get("plan"))
    except Unreadable as exc:
        raise Unreadable(f"server {server_id}: {exc}") from None
    return ServerSighting(
        id=server_id,
        uuid=str(raw.get("uuid") or "")[:64],
        name=str(raw.get("name") or "")[:_MAX_TEXT],
        power=power_of(raw.get("status")),
        user_id=user_id,
        plan=plan,
        created_at=parse_time(raw.get("created_at")),
    )


_ID_KEYS = ("server_id", "virtual_server_id", "vm_id", "id")
_UUID_KEYS = ("server_uuid", "vm_uuid", "uuid")
_NESTED_KEYS = ("server", "virtual_server", "vm", "compute_resource_vm")
_LIST_KEYS = ("servers", "virtual_servers", "vms", "ids", "server_ids", "uuids")


def _ref(data: dict[str, Any], *, top_level: bool) -> ServerRef | None:
    server_id = next((v for k in _ID_KEYS if (v := _int_or_none(data.get(k))) is not None), None)
    if top_level and server_id is not None and "server_id" not in data and "vm_id" not in data:
        # A bare top-level "id" is taken as the server's only beside something that says it is one.
        if not any(key in data for key in (*_UUID_KEYS, "name", "hostname")):
            server_id = None
    uuid = next((str(v) for k in _UUID_KEYS if isinstance(v := data.get(k), str) and v), None)
    if server_id is None and uuid is None:
        return None
    user = data.get("user")
    user_id = _int_or_none(user.get("id") if isinstance(user, dict) else data.get("user_id"))
    plan = data.get("plan")
    plan_id = _int_or_none(plan.get("id") if isinstance(plan, dict) else data.get("plan_id"))
    name = data.get("name") or data.get("hostname")
    return ServerRef(
        id=server_id, uuid=uuid, name=str(name)[:_MAX_TEXT] if name else None, user_id=user_id, plan_id=plan_id
    )


def server_refs(data: Any) -> tuple[ServerRef, ...]:
    """Every server ``data`` names, trying the shapes a Laravel resource would take; () if none."""
    if not isinstance(data, dict):
        return ()
    for key in _NESTED_KEYS:
        nested = data.get(key)
        if isinstance(nested, dict) and (found := _ref(nested, top_level=False)) is not None:
            return (found,)
    for key in _LIST_KEYS:
        items = data.get(key)
        if isinstance(items, list) and items:
            refs = []
            for item in items:
                if isinstance(item, dict):
                    ref = _ref(item, top_level=False)
                elif key == "uuids" and isinstance(item, str):
                    ref = ServerRef(uuid=item)
                else:
                    number = _int_or_none(item)
                    ref = ServerRef(id=number) if number is not None else None
                if ref is not None:
                    refs.append(ref)
            return tuple(refs)
    found = _ref(data, top_level=True)
    return (found,) if found is not None else ()


def parse_activity(raw: Any) -> ActivityEntry:
    if not isinstance(raw, dict):
        raise Unreadable("not an object")
    entry_id, created_at = _int_or_none(raw.get("id")), parse_time(raw.get("created_at"))
    if entry_id is None or created_at is None:
        raise Unreadable("an activity log entry without an id or a created_at")
    return ActivityEntry(entry_id, str(raw.get("event") or ""), created_at, server_refs(raw.get("data")))
