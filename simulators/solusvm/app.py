"""The SolusVM 2 simulator as a Starlette app: ``create_app()`` and nothing else to wire."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from simulators.common import SimClock, admin_routes
from simulators.faults import FaultInjector
from simulators.solusvm.admin import sim_routes
from simulators.solusvm.routes_account import account_routes
from simulators.solusvm.routes_activity import activity_routes
from simulators.solusvm.routes_servers import server_routes
from simulators.solusvm.routes_usage import usage_routes
from simulators.solusvm.routes_users import user_routes
from simulators.solusvm.routing import SimApi, SimConfig
from simulators.solusvm.state import SimState

DEFAULT_API_TOKEN = "demo-solusvm-admin-token"
DEFAULT_USAGE_PATH = "/api/v1/users/{id}/usage"
DEFAULT_SSO_PATH = "/auth/by_token"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    # Laravel answers unknown routes and methods with JSON too, not Starlette's plain text.
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "Not found.", 405: "The method is not supported for this route."}.get(status, "Server Error")
    return JSONResponse({"message": message}, status_code=status)


def create_app(
    state: SimState | None = None,
    *,
    api_token: str = DEFAULT_API_TOKEN,
    seed: int = 0,
    usage_path: str = DEFAULT_USAGE_PATH,
    sso_path: str = DEFAULT_SSO_PATH,
    clock: SimClock | None = None,
    one_time_token_ttl: float | None = None,
    faults: FaultInjector | None = None,
    state_file: Path | None = None,
) -> Starlette:
    """A simulator; ``app.state.sim`` (SimState), ``.faults``, ``.clock`` and ``.config`` reach inside.

    ``usage_path`` must contain ``{id}``. ``one_time_token_ttl`` (seconds) expires unused one-time
    tokens; None keeps them until used. ``state_file`` enables ``/_sim/state/save`` and ``/load``.
    """
    if "{id}" not in usage_path:
        raise ValueError("usage_path must contain {id}")
    clock = clock or SimClock()
    faults = faults or FaultInjector(seed=seed)
    state = state if state is not None else SimState.with_defaults(clock.now(), seed=seed)
    config = SimConfig(
        api_token=api_token, usage_path=usage_path, sso_path=sso_path, one_time_token_ttl=one_time_token_ttl
    )
    api = SimApi(state, clock, faults, config)
    routes = [
        *user_routes(api),
        *account_routes(api),
        *server_routes(api),
        *activity_routes(api),
        *usage_routes(api),
        *sim_routes(state, clock, state_file),
        *admin_routes(faults, clock),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _http_error, 405: _http_error})
    app.state.sim = state
    app.state.faults = faults
    app.state.clock = clock
    app.state.config = config
    return app
