"""``/api/v1/servers``: list, get, create, delete, and the power/suspend/resize actions (as Tasks).

Run intervals are what usage bills: create and ``start`` open one, ``stop`` and ``DELETE`` close it,
``restart`` leaves it alone (the VM is billed through a reboot). Everything is read at the clock's
``now``, so a seeded history (runs, resizes, a deletion still to come) unfolds as the clock moves; a
live action at ``now`` replaces whatever that history said would follow. ``suspend``/``resume`` only toggle
``is_suspended`` [I: the reference does not say that suspension stops the VM].
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.routing import Route

from simulators.solusvm.apierrors import Invalid
from simulators.solusvm.model import Server
from simulators.solusvm.routing import Context, SimApi
from simulators.solusvm.validation import as_int, server_create_fields
from simulators.solusvm.wire import data, paginate, server_json, server_status, task_json

SERVERS = "/api/v1/servers"
SERVER = "/api/v1/servers/{id}"


def list_servers(ctx: Context) -> Response:
    scope = ctx.owner_scope()
    wanted_user = as_int(ctx.query("filter[user_id]"))
    if ctx.query("filter[user_id]") is not None and wanted_user is None:
        servers: list[Server] = []
    elif scope is not None and wanted_user is not None and wanted_user != scope:
        servers = []
    else:
        servers = ctx.state.list_servers(user_id=scope if scope is not None else wanted_user, now=ctx.now())
    now = ctx.now()
    filters: dict[str, Callable[[Server, str], bool]] = {
        "filter[status]": lambda s, v: server_status(s, now) == v,
        "filter[compute_resource_id]": lambda s, v: str(s.compute_resource_id) == v,
        "filter[virtualization_type]": lambda s, v: ctx.state.plan_at(s, now).virtualization_type == v,
        "filter[search]": lambda s, v: v.casefold() in s.name.casefold(),
    }
    for key, matches in filters.items():
        value = ctx.query(key)
        if value is not None:
            servers = [server for server in servers if matches(server, value)]
    return paginate(ctx.request, servers, lambda server: server_json(ctx.state, server, now))


def _live_server(ctx: Context) -> Server:
    return ctx.state.get_server(ctx.path_id(), owner_id=ctx.owner_scope(), now=ctx.now())


def get_server(ctx: Context) -> Response:
    return data(server_json(ctx.state, _live_server(ctx), ctx.now()))


def create_server(ctx: Context) -> Response:
    fields = server_create_fields(ctx.body())
    assert ctx.principal is not None
    # An admin may name any owner (S1 sends "user"); a user's token always creates for that user.
    owner = fields.get("user") if ctx.principal.is_admin and fields.get("user") else ctx.principal.user_id
    if owner is None:
        raise Invalid({"user": ["The user field is required."]})
    server = ctx.state.create_server(fields, owner, ctx.now())
    return data(server_json(ctx.state, server, ctx.now()), status=201)


def _task(ctx: Context, action: str, server: Server) -> Response:
    return data(task_json(ctx.state.allocate_id("task"), action, server))


def delete_server(ctx: Context) -> Response:
    server = _live_server(ctx)
    ctx.state.delete_server(server, ctx.now())
    return _task(ctx, "vm-delete", server)


def _action(name: str, change: Callable[[Context, Server], None]) -> Callable[[Context], Response]:
    def handle(ctx: Context) -> Response:
        server = _live_server(ctx)
        change(ctx, server)
        ctx.state.changed()
        return _task(ctx, f"vm-{name}", server)

    return handle


def _resize(ctx: Context, server: Server) -> None:
    plan_id = as_int(ctx.body().get("plan_id"))
    if plan_id is None or plan_id not in ctx.state.plans:
        raise Invalid({"plan_id": ["The selected plan id is invalid."]})
    server.resize(plan_id, ctx.now())


def _suspend(value: bool) -> Callable[[Context, Server], None]:
    def change(ctx: Context, server: Server) -> None:
        server.is_suspended = value

    return change


ACTIONS: dict[str, Callable[[Context, Server], None]] = {
    "start": lambda ctx, server: server.start(ctx.now()),
    "stop": lambda ctx, server: server.stop(ctx.now()),
    "restart": lambda ctx, server: None,
    "suspend": _suspend(True),
    "resume": _suspend(False),
    "resize": _resize,
    "reset_password": lambda ctx, server: None,
}


def server_routes(api: SimApi) -> list[Route]:
    routes = [
        api.route("GET", SERVERS, list_servers, access="any"),
        api.route("POST", SERVERS, create_server, access="any"),
        api.route("GET", SERVER, get_server, access="any"),
        api.route("DELETE", SERVER, delete_server, access="any"),
    ]
    for name, change in ACTIONS.items():
        routes.append(api.route("POST", f"{SERVER}/{name}", _action(name, change), access="any"))
    return routes
