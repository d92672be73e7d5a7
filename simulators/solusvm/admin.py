"""``/_sim/…``: controls for tests and the demo, not part of SolusVM 2 (no auth, no faults).

- ``POST /_sim/seed``            body ``{limit_groups?, locations?, plans?, users?, servers?}`` → 201 ids per kind
- ``POST /_sim/reset``           body ``{"defaults": true}`` (default) → 200; the fresh panel (or empty)
- ``GET  /_sim/users``           ``?email=&status=`` → ``{"data": [User…]}`` (every match, no paging)
- ``GET  /_sim/users/{id}``      → ``{"data": User}`` or 404
- ``GET  /_sim/status_changes``  ``?user_id=`` → ``{"data": [{user_id, from, to, at}…]}``, oldest first
- ``GET  /_sim/state``           → the whole state as JSON;  ``PUT /_sim/state`` replaces it
- ``POST /_sim/state/save|load`` → to/from the configured state file (409 when there is none)
Faults and the clock come from ``simulators.common.admin_routes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulators.common import SimClock
from simulators.solusvm.apierrors import ApiError
from simulators.solusvm.persistence import dump_state, load_from_file, load_state, save_to_file
from simulators.solusvm.seeding import seed
from simulators.solusvm.state import SimState
from simulators.solusvm.timestamps import format_timestamp
from simulators.solusvm.validation import json_object
from simulators.solusvm.wire import user_json


def sim_routes(state: SimState, clock: SimClock, state_file: Path | None) -> list[Route]:
    async def body_of(request: Request) -> dict[str, Any]:
        return json_object(await request.body())

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                return await handler(request)
            except ApiError as exc:
                return JSONResponse(exc.body, status_code=exc.status)
            except (ValueError, KeyError, TypeError) as exc:
                return JSONResponse({"message": f"Invalid state: {exc}"}, status_code=422)

        return endpoint

    async def seed_records(request: Request) -> JSONResponse:
        return JSONResponse(seed(state, await body_of(request), clock.now()), status_code=201)

    async def reset(request: Request) -> JSONResponse:
        with state.lock:
            state.clear()
            if (await body_of(request)).get("defaults", True):
                state.add_defaults(clock.now())
        return JSONResponse({"users": len(state.users), "plans": len(state.plans)})

    async def list_users(request: Request) -> JSONResponse:
        email = request.query_params.get("email")
        status = request.query_params.get("status")
        with state.lock:
            users = [
                user
                for user in state.list_users(status=status)
                if email is None or user.email.casefold() == email.casefold()
            ]
            return JSONResponse({"data": [user_json(state, user) for user in users]})

    async def get_user(request: Request) -> JSONResponse:
        raw = request.path_params["id"]
        with state.lock:
            user = state.users.get(int(raw)) if raw.isascii() and raw.isdigit() else None
            if user is None:
                return JSONResponse({"message": "Not found."}, status_code=404)
            return JSONResponse({"data": user_json(state, user)})

    async def status_changes(request: Request) -> JSONResponse:
        raw = request.query_params.get("user_id")
        if raw is not None and not (raw.isascii() and raw.isdigit()):
            return JSONResponse({"message": "user_id must be a user id."}, status_code=422)
        changes = state.status_history(int(raw) if raw is not None else None)
        return JSONResponse({"data": [{**change, "at": format_timestamp(change["at"])} for change in changes]})

    async def get_state(request: Request) -> JSONResponse:
        return JSONResponse(dump_state(state))

    async def put_state(request: Request) -> JSONResponse:
        load_state(state, await body_of(request))
        return JSONResponse({"users": len(state.users), "servers": len(state.servers)})

    def needs_file() -> Path:
        if state_file is None:
            raise ApiError(409, {"message": "The simulator was started without a state file."})
        return state_file

    async def save(request: Request) -> JSONResponse:
        path = needs_file()
        save_to_file(state, path)
        return JSONResponse({"saved": str(path)})

    async def load(request: Request) -> JSONResponse:
        path = needs_file()
        if not path.exists():
            return JSONResponse({"message": f"No state file at {path}."}, status_code=404)
        load_from_file(state, path)
        return JSONResponse({"loaded": str(path), "users": len(state.users)})

    return [
        Route("/_sim/seed", guarded(seed_records), methods=["POST"]),
        Route("/_sim/reset", guarded(reset), methods=["POST"]),
        Route("/_sim/users", guarded(list_users), methods=["GET"]),
        Route("/_sim/users/{id}", guarded(get_user), methods=["GET"]),
        Route("/_sim/status_changes", guarded(status_changes), methods=["GET"]),
        Route("/_sim/state", guarded(get_state), methods=["GET"]),
        Route("/_sim/state", guarded(put_state), methods=["PUT"]),
        Route("/_sim/state/save", guarded(save), methods=["POST"]),
        Route("/_sim/state/load", guarded(load), methods=["POST"]),
    ]
