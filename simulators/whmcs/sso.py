"""Single sign-on: the CreateSsoToken action and the browser side that redeems its token.

A token is good once, for at most 60 seconds of the simulator's clock. Redeeming it starts a session
(a cookie) and redirects to the destination; the client-area pages then say who is signed in, which
is all a browser test needs to tell "signed in" from "not signed in".
"""

from __future__ import annotations

import html
import secrets
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from simulators.whmcs.params import ActionContext, ApiError, Form
from simulators.whmcs.state import Client, SsoGrant, User, WhmcsState

TOKEN_LIFETIME = timedelta(seconds=60)
SESSION_COOKIE = "WHMCSsession"
CUSTOM_REDIRECT = "sso:custom_redirect"

DESTINATIONS: dict[str, str] = {
    "clientarea:homepage": "/clientarea.php",
    "clientarea:profile": "/clientarea.php?action=details",
    "clientarea:billing_info": "/clientarea.php?action=creditcard",
    "clientarea:emails": "/clientarea.php?action=emails",
    "clientarea:announcements": "/index.php?rp=/announcements",
    "clientarea:downloads": "/index.php?rp=/download",
    "clientarea:knowledgebase": "/index.php?rp=/knowledgebase",
    "clientarea:network_status": "/serverstatus.php",
    "clientarea:services": "/clientarea.php?action=services",
    "clientarea:product_details": "/clientarea.php?action=productdetails&id={service_id}",
    "clientarea:domains": "/clientarea.php?action=domains",
    "clientarea:domain_details": "/clientarea.php?action=domaindetails&id={domain_id}",
    "clientarea:invoices": "/clientarea.php?action=invoices",
    "clientarea:tickets": "/supporttickets.php",
    "clientarea:submit_ticket": "/submitticket.php",
    "clientarea:shopping_cart": "/cart.php",
    "clientarea:shopping_cart_addons": "/cart.php?gid=addons",
    "clientarea:shopping_cart_domain_register": "/cart.php?a=add&domain=register",
    "clientarea:shopping_cart_domain_transfer": "/cart.php?a=add&domain=transfer",
    "clientarea:upgrade": "/upgrade.php",
    CUSTOM_REDIRECT: "/{path}",
}


def _subjects(state: WhmcsState, form: Form) -> tuple[Client | None, User]:
    if not form.get("client_id") and not form.get("user_id"):
        raise ApiError("A valid client_id or user_id is required")
    client: Client | None = None
    if form.get("client_id"):
        client_id = form.integer("client_id")
        client = state.clients.get(client_id) if client_id is not None else None
        if client is None:
            raise ApiError("Invalid client_id")
    if form.get("user_id"):
        user_id = form.integer("user_id")
        user = state.users.get(user_id) if user_id is not None else None
        if user is None:
            raise ApiError("Invalid user_id")
        if client is not None and all(linked != client.id for linked, _owner in user.clients):
            raise ApiError("Invalid user_id for client")
        return client, user
    assert client is not None
    owner = state.users.get(client.owner_user_id)
    if owner is None:
        raise ApiError(f"Token could not be provisioned: client {client.id} has no owner")
    return client, owner


def create_sso_token(ctx: ActionContext, form: Form) -> dict[str, Any]:
    state = ctx.state
    client, user = _subjects(state, form)
    destination = form.get("destination") or "clientarea:homepage"
    if destination not in DESTINATIONS:
        raise ApiError("Invalid destination")
    if client is not None and not client.allow_sso:
        raise ApiError(f"SSO authentication blocked for client {client.id}")
    token = secrets.token_hex(20)
    state.sso_grants[token] = SsoGrant(
        token=token,
        client_id=client.id if client else (user.clients[0][0] if user.clients else 0),
        user_id=user.id,
        destination=destination,
        redirect_path=form.get("sso_redirect_path") or None,
        service_id=form.integer("service_id"),
        domain_id=form.integer("domain_id"),
        created_at=ctx.now(),
    )
    redirect_url = f"{ctx.base_url}/oauth/singlesignon.php?access_token={token}"
    return {"result": "success", "access_token": token, "redirect_url": redirect_url}


def landing_path(grant: SsoGrant) -> str:
    if grant.destination == CUSTOM_REDIRECT:
        # Integrations send the path with and without the leading slash; both land the same.
        return "/" + (grant.redirect_path or "clientarea.php").lstrip("/")
    return DESTINATIONS[grant.destination].format(service_id=grant.service_id or "", domain_id=grant.domain_id or "")


def redeem(state: WhmcsState, token: str, now: Any) -> Response:
    """``GET /oauth/singlesignon.php``: single use, 60 seconds, then 403 like any bad token."""
    with state.lock:
        grant = state.sso_grants.get(token)
        if grant is None or grant.redeemed_at is not None or now - grant.created_at > TOKEN_LIFETIME:
            return HTMLResponse(
                "<html><body><h1>Access Denied</h1><p>Invalid or expired access token.</p></body></html>",
                status_code=403,
            )
        grant.redeemed_at = now
        session = secrets.token_hex(16)
        state.sessions[session] = grant.client_id
    response = RedirectResponse(landing_path(grant), status_code=302)
    response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="lax")
    return response


def client_area_page(state: WhmcsState, request: Request) -> HTMLResponse:
    """Any ``/<page>.php`` after sign-in: who is signed in, and where the browser landed."""
    client_id = state.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
    client = state.clients.get(client_id) if client_id is not None else None
    where = html.escape(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    if client is None:
        body = f"<h1>Login</h1><p>Not signed in.</p><p class='location'>{where}</p>"
    else:
        name = html.escape(f"{client.firstname} {client.lastname}")
        body = (
            f"<h1>Client Area</h1><p class='signed-in' data-client-id='{client.id}'>Signed in as {name}</p>"
            f"<p class='location'>{where}</p>"
        )
    return HTMLResponse(f"<!DOCTYPE html><html><head><title>Client Area</title></head><body>{body}</body></html>")
