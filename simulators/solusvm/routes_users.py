"""``/api/v1/users``: list (paged, filtered), get, create, replace, patch, delete, per-user tokens."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from simulators.solusvm.apierrors import Invalid
from simulators.solusvm.routing import Context, SimApi
from simulators.solusvm.validation import user_fields
from simulators.solusvm.wire import data, paginate, user_json

USERS = "/api/v1/users"
USER = "/api/v1/users/{id}"
USER_TOKENS = "/api/v1/users/{id}/tokens"


def list_users(ctx: Context) -> Response:
    users = ctx.state.list_users(search=ctx.query("filter[search]"), status=ctx.query("filter[status]"))
    return paginate(ctx.request, users, lambda user: user_json(ctx.state, user))


def get_user(ctx: Context) -> Response:
    return data(user_json(ctx.state, ctx.state.get_user(ctx.path_id())))


def create_user(ctx: Context) -> Response:
    user = ctx.state.create_user(user_fields(ctx.body(), creating=True), ctx.now())
    return data(user_json(ctx.state, user), status=201)


def update_user(ctx: Context) -> Response:
    """PUT and PATCH alike: both are partial in practice (S1 PUTs only ``{status, billing_user_id}``)."""
    user_id = ctx.path_id()
    ctx.state.get_user(user_id)  # an unknown user is a 404 before any validation, as route binding does
    user = ctx.state.update_user(user_id, user_fields(ctx.body(), creating=False), ctx.now())
    return data(user_json(ctx.state, user))


def delete_user(ctx: Context) -> Response:
    ctx.state.delete_user(ctx.path_id())
    return Response(status_code=204)


def create_token(ctx: Context) -> Response:
    user = ctx.state.get_user(ctx.path_id())
    one_time = ctx.body().get("is_one_time", False)
    if not isinstance(one_time, bool):
        raise Invalid({"is_one_time": ["The is one time field must be true or false."]})
    ttl = ctx.config.one_time_token_ttl if one_time else None
    token = ctx.state.issue_token(user.id, one_time=one_time, now=ctx.now(), ttl_seconds=ttl)
    return data({"access_token": token.value}, status=201)


def user_routes(api: SimApi) -> list[Route]:
    return [
        api.route("GET", USERS, list_users),
        api.route("POST", USERS, create_user),
        api.route("GET", USER, get_user),
        api.route("PUT", USER, update_user),
        api.route("PATCH", USER, update_user),
        api.route("DELETE", USER, delete_user),
        api.route("POST", USER_TOKENS, create_token),
    ]
