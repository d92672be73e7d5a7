"""The current user, password login, plans, and the browser SSO route (§3.2, project-defined)."""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from simulators.solusvm.apierrors import Invalid, unauthenticated
from simulators.solusvm.routing import Context, SimApi
from simulators.solusvm.timestamps import format_optional
from simulators.solusvm.wire import data, paginate, plan_json, user_json


def account(ctx: Context) -> Response:
    assert ctx.principal is not None
    if ctx.principal.user_id is None:
        raise unauthenticated()
    return data(user_json(ctx.state, ctx.state.get_user(ctx.principal.user_id)))


def login(ctx: Context) -> Response:
    body = ctx.body()
    errors = {
        field: [f"The {field} field is required."]
        for field in ("email", "password")
        if not isinstance(body.get(field), str) or not body.get(field)
    }
    if errors:
        raise Invalid(errors)
    token = ctx.state.login(body["email"], body["password"], ctx.now())
    if token is None:
        raise unauthenticated()
    credentials = {
        "access_token": token.value,
        "token_type": "Bearer",
        "expires_at": format_optional(token.expires_at),
    }
    return data({"credentials": credentials})


def list_plans(ctx: Context) -> Response:
    plans = sorted(ctx.state.plans.values(), key=lambda plan: plan.id)
    return paginate(ctx.request, plans, plan_json)


def get_plan(ctx: Context) -> Response:
    return data(plan_json(ctx.state.get_plan(ctx.path_id())))


def sso_login(ctx: Context) -> Response:
    """First use of a one-time token signs the browser in; any other token or reuse is a 401."""
    token = ctx.state.redeem_token(ctx.query("token") or "", ctx.now(), one_time_only=True)
    if token is None:
        return JSONResponse({"message": "Unauthenticated."}, status_code=401)
    email = html.escape(ctx.state.get_user(token.user_id).email)
    page = (
        "<!DOCTYPE html><html><head><title>SolusVM 2</title></head>"
        f"<body><h1>SolusVM 2</h1><p>Signed in as <strong>{email}</strong>.</p></body></html>"
    )
    return HTMLResponse(page)


def account_routes(api: SimApi) -> list[Route]:
    return [
        api.route("GET", "/api/v1/account", account, access="any"),
        api.route("POST", "/api/v1/auth/login", login, access="none"),
        api.route("GET", "/api/v1/plans", list_plans, access="any"),
        api.route("GET", "/api/v1/plans/{id}", get_plan, access="any"),
        api.route("GET", api.config.sso_path, sso_login, access="none"),
    ]
