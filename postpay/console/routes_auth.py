"""Logging in and out. A failed login says nothing about which part was wrong; too many failures for a
username or from an address close logins for the window (counted from the audit log)."""

from __future__ import annotations

import hmac
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from postpay.console.web import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    check_csrf,
    client_ip,
    console_of,
    current_session,
    form_fields,
    harden,
    login_token,
    operator_session,
    page,
)
from postpay.operators import accounts, audit

router = APIRouter()


def _login_page(request: Request, status_code: int = 200, error: str | None = None) -> Response:
    token = login_token(request)
    response = page(request, "login.html", None, status_code, login_token=token, error=error)
    console = console_of(request)
    if request.cookies.get(LOGIN_COOKIE) != token:
        response.set_cookie(
            LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=console.settings.secure_cookies, path="/login"
        )
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    if current_session(request) is not None:
        return harden(RedirectResponse("/", status_code=303))
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    console = console_of(request)
    fields = await form_fields(request)
    cookie = request.cookies.get(LOGIN_COOKIE) or ""
    submitted = fields.get("login_token", "")
    if not cookie or not hmac.compare_digest(cookie.encode(), submitted.encode()):
        return _login_page(request, 403, "The login form expired; please try again.")
    username, password = fields.get("username", "")[:64], fields.get("password", "")[:1024]
    ip_address, now = client_ip(request), console.now()
    settings = console.settings
    with console.db.transaction() as session:
        if accounts.rate_limited(
            session,
            username,
            ip_address,
            now=now,
            attempts=settings.console_login_attempts,
            window=timedelta(seconds=settings.console_login_window_seconds),
        ):
            audit.record_action(
                session,
                actor=username or "-",
                action="login",
                target=username or "-",
                reason="",
                outcome="refused",
                ip_address=ip_address,
                now=now,
            )
            refused = True
        else:
            refused = False
            operator = accounts.authenticate(session, username, password, now=now, ip_address=ip_address)
            token = (
                accounts.open_session(
                    session, operator, now=now, lifetime=console.session_lifetime, ip_address=ip_address
                )
                if operator
                else None
            )
    if refused:
        return _login_page(request, 429, "Too many failed logins; wait a few minutes and try again.")
    if token is None:
        return _login_page(request, 401, "Wrong username or password.")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(console.session_lifetime.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return harden(response)


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = operator_session(request)
    check_csrf(session, (await form_fields(request)).get("csrf_token"))
    console = console_of(request)
    with console.db.transaction() as db_session:
        accounts.close_session(db_session, request.cookies.get(SESSION_COOKIE))
        audit.record_action(
            db_session,
            actor=session.operator.username,
            action="logout",
            target=session.operator.username,
            reason="",
            ip_address=client_ip(request),
            now=console.now(),
        )
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return harden(response)
