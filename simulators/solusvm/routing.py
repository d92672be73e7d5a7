"""Route plumbing: faults first, then Bearer authentication, then the handler; errors as JSON.

Every route is registered through ``SimApi.route`` so it runs under ``with_faults`` with a templated
route key (``"GET /api/v1/users/{id}/usage"``) that fault rules can target.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulators.common import SimClock
from simulators.faults import FaultInjector, Flavor, with_faults
from simulators.solusvm.apierrors import ApiError, forbidden, not_found, unauthenticated
from simulators.solusvm.state import SimState
from simulators.solusvm.validation import json_object

Access = Literal["admin", "any", "none"]


@dataclass(frozen=True)
class SimConfig:
    api_token: str
    usage_path: str
    sso_path: str
    one_time_token_ttl: float | None


@dataclass(frozen=True)
class Principal:
    """Who a Bearer token acts as: the admin (API token, or an admin-role user) or one user."""

    user_id: int | None
    is_admin: bool


@dataclass
class Context:
    request: Request
    state: SimState
    clock: SimClock
    config: SimConfig
    principal: Principal | None
    raw_body: bytes

    def now(self) -> datetime:
        return self.clock.now()

    def body(self) -> dict[str, Any]:
        return json_object(self.raw_body)

    def path_id(self, name: str = "id") -> int:
        """An integer path parameter; anything else names no record (404, as Laravel's binding does)."""
        raw = self.request.path_params[name]
        if not (raw.isascii() and raw.isdigit()):
            raise not_found()
        return int(raw)

    def query(self, name: str) -> str | None:
        # Starlette percent-decodes keys, so filter[search] and filter%5Bsearch%5D arrive alike.
        return self.request.query_params.get(name)

    def owner_scope(self) -> int | None:
        """None for the admin (sees everything), else the user whose token this is."""
        assert self.principal is not None
        return None if self.principal.is_admin else self.principal.user_id


Handler = Callable[[Context], Response]


class SimApi:
    def __init__(self, state: SimState, clock: SimClock, faults: FaultInjector, config: SimConfig) -> None:
        self.state = state
        self.clock = clock
        self.faults = faults
        self.config = config

    def authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise unauthenticated()
        if hmac.compare_digest(value.encode(), self.config.api_token.encode()):
            return Principal(user_id=self.state.admin_user_id, is_admin=True)
        token = self.state.redeem_token(value, self.clock.now())
        if token is None:
            raise unauthenticated()
        return Principal(user_id=token.user_id, is_admin=self.state.is_admin(token.user_id))

    def route(self, method: str, path: str, handler: Handler, *, access: Access = "admin") -> Route:
        route_key = f"{method} {path}"

        async def endpoint(request: Request) -> Any:
            async def work() -> Response:
                raw_body = await request.body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
                try:
                    principal = None if access == "none" else self.authenticate(request)
                    if access == "admin" and principal is not None and not principal.is_admin:
                        raise forbidden()
                    context = Context(request, self.state, self.clock, self.config, principal, raw_body)
                    # Handlers are synchronous and short: holding the lock keeps a response consistent
                    # even while a test thread changes the state directly.
                    with self.state.lock:
                        return handler(context)
                except ApiError as exc:
                    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

            return await with_faults(self.faults, route_key, Flavor.SOLUSVM, work)

        return Route(path, endpoint, methods=[method], name=route_key)
