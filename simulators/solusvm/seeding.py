"""``POST /_sim/seed``: put plans, users and servers with explicit history into the simulator.

Tests and the demo describe a past (a server created in April, stopped for a week, deleted on the 10th)
that the API alone could only build in real time. All or nothing: on any error the state is restored.

The history may also reach into the future: the API shows each server as it is at the clock's ``now``
(created yet? running? on which plan? deleted?), so moving the clock plays the history out. A server's
``plan_changes`` (``[[at, plan_id], …]``) are resizes; its creation and deletion are written to the
activity log at their instants (``delete_event`` picks the deletion's event name).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from simulators.solusvm.activity import DELETE_EVENTS, VM_CREATED, VM_DELETE_REQUESTED
from simulators.solusvm.apierrors import Invalid
from simulators.solusvm.model import Location, Plan, Server
from simulators.solusvm.persistence import dump_state, load_state
from simulators.solusvm.state import SimState
from simulators.solusvm.timestamps import parse_aware_timestamp
from simulators.solusvm.validation import as_int, user_fields


def seed(state: SimState, payload: dict[str, Any], now: datetime) -> dict[str, list[int]]:
    """Add (or, for plans/locations with a known id, replace) records; returns the ids per kind."""
    with state.lock:
        snapshot = dump_state(state)
        try:
            return _seed(state, payload, now)
        except Invalid:
            load_state(state, snapshot)
            raise


def _seed(state: SimState, payload: dict[str, Any], now: datetime) -> dict[str, list[int]]:
    created: dict[str, list[int]] = {"limit_groups": [], "locations": [], "plans": [], "users": [], "servers": []}
    for index, group in enumerate(payload.get("limit_groups", [])):
        group_id = _required_int(group, "id", f"limit_groups.{index}")
        state.limit_groups[group_id] = str(group.get("name") or f"Limit group {group_id}")
        created["limit_groups"].append(group_id)
    for raw in payload.get("locations", []):
        location_id = state.allocate_id("location", as_int(raw.get("id")))
        state.add_location(Location(id=location_id, name=str(raw.get("name") or f"Location {location_id}")))
        created["locations"].append(location_id)
    for index, raw in enumerate(payload.get("plans", [])):
        created["plans"].append(_seed_plan(state, raw, f"plans.{index}").id)
    for index, raw in enumerate(payload.get("users", [])):
        where = f"users.{index}"
        try:
            fields = user_fields(raw, creating=True)
            when = _time(raw.get("created_at"), f"{where}.created_at") or now
            user = state.create_user(fields, when, user_id=as_int(raw.get("id")))
        except Invalid as exc:
            raise Invalid({f"{where}.{key}": messages for key, messages in exc.errors.items()}) from None
        created["users"].append(user.id)
    for index, raw in enumerate(payload.get("servers", [])):
        created["servers"].append(_seed_server(state, raw, f"servers.{index}").id)
    return created


def _seed_plan(state: SimState, raw: dict[str, Any], where: str) -> Plan:
    per_hour = _required_int(raw, "tokens_per_hour", where)
    per_month = _required_int(raw, "tokens_per_month", where)
    if per_hour < 0 or per_month < 0:
        raise Invalid({where: ["Token prices must not be negative."]})
    plan_id = state.allocate_id("plan", as_int(raw.get("id")))
    extras = {key: raw[key] for key in ("vcpu", "ram_mib", "disk_gib", "virtualization_type") if key in raw}
    return state.add_plan(
        Plan(
            id=plan_id,
            name=str(raw.get("name") or f"Plan {plan_id}"),
            tokens_per_hour=per_hour,
            tokens_per_month=per_month,
            **extras,
        )
    )


def _seed_server(state: SimState, raw: dict[str, Any], where: str) -> Server:
    user_id = _required_int(raw, "user_id", where)
    plan_id = _required_int(raw, "plan_id", where)
    location_id = as_int(raw.get("location_id")) or min(state.locations, default=1)
    if user_id not in state.users:
        raise Invalid({f"{where}.user_id": ["Unknown user."]})
    if plan_id not in state.plans:
        raise Invalid({f"{where}.plan_id": ["Unknown plan."]})
    server_id = as_int(raw.get("id"))
    if server_id is not None and server_id in state.servers:
        raise Invalid({f"{where}.id": [f"A server with id {server_id} already exists."]})
    created_at = _time(raw.get("created_at"), f"{where}.created_at")
    if created_at is None:
        raise Invalid({f"{where}.created_at": ["The created_at field is required."]})
    deleted_at = _time(raw.get("deleted_at"), f"{where}.deleted_at")
    raw_intervals = raw.get("intervals")
    if raw_intervals is None:
        # No explicit history: it ran from creation until deletion (or until now).
        raw_intervals = [[raw["created_at"], raw.get("deleted_at")]]
    intervals = _intervals(raw_intervals, created_at, deleted_at, f"{where}.intervals")
    changes = _plan_changes(state, raw.get("plan_changes") or [], created_at, deleted_at, f"{where}.plan_changes")
    delete_event = str(raw.get("delete_event") or VM_DELETE_REQUESTED)
    if delete_event not in DELETE_EVENTS:
        raise Invalid({f"{where}.delete_event": [f"One of {', '.join(DELETE_EVENTS)}."]})
    server_id = state.allocate_id("server", server_id)
    server = Server(
        id=server_id,
        uuid=str(raw.get("uuid") or state.new_uuid()),
        name=str(raw.get("name") or f"vps-{server_id}"),
        user_id=user_id,
        plan_id=plan_id,
        location_id=location_id,
        created_at=created_at,
        intervals=intervals,
        is_suspended=bool(raw.get("is_suspended", False)),
        os_id=as_int(raw.get("os_id")) or 1,
        plan_changes=changes,
    )
    state.add_server(server)
    state.log_server_event(VM_CREATED, server, created_at)
    if deleted_at is not None:
        server.deleted_at = deleted_at
        server.deleted_plan = Plan(**state.plans[server.plan_id_at(deleted_at)].__dict__)
        state.changed()
        state.log_server_event(delete_event, server, deleted_at)
    return server


def _plan_changes(
    state: SimState, raw: Any, created_at: datetime, deleted_at: datetime | None, where: str
) -> list[list[Any]]:
    """``[[at, plan_id], …]`` in order, inside the server's life, naming known plans."""
    if not isinstance(raw, list):
        raise Invalid({where: ["The plan_changes must be a list of [at, plan_id] pairs."]})
    changes: list[list[Any]] = []
    for index, pair in enumerate(raw):
        here = f"{where}.{index}"
        if not isinstance(pair, list) or len(pair) != 2:
            raise Invalid({here: ["Each plan change is an [at, plan_id] pair."]})
        at, plan_id = _time(pair[0], here), as_int(pair[1])
        if plan_id is None or plan_id not in state.plans:
            raise Invalid({here: ["Unknown plan."]})
        if at is None or at < created_at or (changes and at < changes[-1][0]) or (deleted_at and at >= deleted_at):
            raise Invalid({here: ["Plan changes fall inside the server's life, in order."]})
        changes.append([at, plan_id])
    return changes


def _intervals(raw: Any, created_at: datetime, deleted_at: datetime | None, where: str) -> list[list[datetime | None]]:
    """Sorted, non-overlapping intervals inside the server's life; only the last may be open."""
    if not isinstance(raw, list):
        raise Invalid({where: ["The intervals must be a list of [start, end|null] pairs."]})
    intervals: list[list[datetime | None]] = []
    previous_end: datetime | None = created_at
    for index, pair in enumerate(raw):
        here = f"{where}.{index}"
        if not isinstance(pair, list) or len(pair) != 2:
            raise Invalid({here: ["Each interval is a [start, end|null] pair."]})
        start = _time(pair[0], here)
        end = _time(pair[1], here)
        if start is None or previous_end is None or start < previous_end:
            raise Invalid(
                {
                    here: [
                        "Intervals start at or after created_at, in order, without overlapping; only "
                        "the last may be open."
                    ]
                }
            )
        if end is not None and end <= start:
            raise Invalid({here: ["An interval must end after it starts."]})
        if deleted_at is not None and (end is None or end > deleted_at):
            raise Invalid({here: ["A deleted server's intervals end by deleted_at."]})
        intervals.append([start, end])
        previous_end = end
    return intervals


def _required_int(raw: dict[str, Any], key: str, where: str) -> int:
    value = as_int(raw.get(key))
    if value is None:
        raise Invalid({f"{where}.{key}": [f"The {key} field is required and must be an integer."]})
    return value


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_aware_timestamp(str(value))
    except ValueError:
        raise Invalid({where: ["Timestamps are ISO 8601 with an offset, e.g. 2024-05-01T00:00:00Z."]}) from None
