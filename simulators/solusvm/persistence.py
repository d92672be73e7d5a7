"""The whole simulator state as JSON: ``/_sim/state`` and the ``--state`` file of ``postpay sim solusvm``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from simulators.solusvm.model import AccessToken, Location, Plan, Server, User
from simulators.solusvm.state import SimState

STATE_FORMAT = 1


def dump_state(state: SimState) -> dict[str, Any]:
    with state.lock:
        return {
            "format": STATE_FORMAT,
            "next_ids": dict(state.next_ids),
            "admin_user_id": state.admin_user_id,
            "roles": [{"id": role_id, "name": name} for role_id, name in sorted(state.roles.items())],
            "limit_groups": [{"id": gid, "name": name} for gid, name in sorted(state.limit_groups.items())],
            "locations": [location.dump() for location in state.locations.values()],
            "plans": [plan.dump() for plan in state.plans.values()],
            "users": [state.users[user_id].dump() for user_id in sorted(state.users)],
            "servers": [state.servers[server_id].dump() for server_id in sorted(state.servers)],
            "tokens": [token.dump() for token in state.tokens.values()],
            **state.activity.dump(),
        }


def load_state(state: SimState, data: dict[str, Any]) -> None:
    """Replace everything in ``state`` with ``data`` (as written by ``dump_state``)."""
    if data.get("format") != STATE_FORMAT:
        raise ValueError(f"unsupported simulator state format: {data.get('format')!r}")
    with state.lock:
        state.clear()
        state.roles = {int(role["id"]): role["name"] for role in data["roles"]}
        state.limit_groups = {int(group["id"]): group["name"] for group in data["limit_groups"]}
        for location in data["locations"]:
            state.add_location(Location.load(location))
        for plan in data["plans"]:
            state.add_plan(Plan.load(plan))
        for raw_user in data["users"]:
            state.index_user(User.load(raw_user))
        for server in data["servers"]:
            state.add_server(Server.load(server))
        for token in data["tokens"]:
            loaded = AccessToken.load(token)
            state.tokens[loaded.value] = loaded
        state.activity.load(data)
        state.admin_user_id = data.get("admin_user_id")
        state.next_ids.update({kind: int(value) for kind, value in data["next_ids"].items()})


def save_to_file(state: SimState, path: Path) -> None:
    """Write atomically, so a crash while saving never leaves half a state file behind."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(dump_state(state), indent=1), encoding="utf-8")
    os.replace(temporary, path)


def load_from_file(state: SimState, path: Path) -> None:
    load_state(state, json.loads(path.read_text(encoding="utf-8")))
