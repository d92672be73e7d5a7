"""What every console page shares: the operator's session, CSRF, templates and headers."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from postpay.console.settings import ConsoleSettings
from postpay.operators import accounts
from postpay.operators.accounts import ConsoleSession
from shared.clock import Clock
from shared.db import Database

SESSION_COOKIE = "postpay_console"
LOGIN_COOKIE = "postpay_console_login"
CSRF_FIELD = "csrf_token"
MAX_REASON = 1000

templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))


def _money(value: Any) -> str:
    return "" if value is None else format(value, "f")


def _when(value: Any) -> str:
    return (
        value.strftime("%Y-%m-%d %H:%M UTC") if isinstance(value, datetime) else ("" if value is None else str(value))
    )


templates.env.filters["money"] = _money
templates.env.filters["when"] = _when


@dataclass
class Console:
    """The objects the routes work with, kept on ``app.state.console``."""

    db: Database
    bus: Any
    whmcs: Any
    solusvm: Any
    settings: ConsoleSettings
    clock: Clock
    timezone: str
    invoicer_settings: Any
    queues: frozenset[str]  # every handler queue, whose parking lots the console shows

    def now(self) -> datetime:
        return self.clock()

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(hours=self.settings.console_session_hours)


def console_of(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


def client_ip(request: Request) -> str | None:
    return request.client.host[:45] if request.client else None


class LoginRequired(Exception):
    pass


def current_session(request: Request) -> ConsoleSession | None:
    console = console_of(request)
    with console.db.transaction() as session:
        return accounts.session_of(session, request.cookies.get(SESSION_COOKIE), now=console.now())


def operator_session(request: Request) -> ConsoleSession:
    """A route dependency: the operator's session, or a redirect to the login page."""
    found = current_session(request)
    if found is None:
        raise LoginRequired()
    return found


def check_csrf(session: ConsoleSession, submitted: str | None) -> None:
    if not submitted or not hmac.compare_digest(session.csrf_token.encode(), submitted.encode()):
        raise HTTPException(
            403, "The form has expired or did not come from this console; reload the page and try again."
        )


def login_token(request: Request) -> str:
    existing = request.cookies.get(LOGIN_COOKIE)
    if existing and 20 <= len(existing) <= 64:
        return existing
    if not hasattr(request.state, "login_token"):
        request.state.login_token = secrets.token_urlsafe(24)
    return request.state.login_token  # type: ignore[no-any-return]


def harden(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return response


def page(
    request: Request, template: str, session: ConsoleSession | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    from postpay.console.nav import PAGES

    console = console_of(request)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "operator": session.operator if session else None,
            "csrf_field": CSRF_FIELD,
            "csrf_token": session.csrf_token if session else "",
            "pages": PAGES,
            "timezone": console.timezone,
            **context,
        },
        status_code=status_code,
    )
    return harden(response)  # type: ignore[return-value]


async def form_fields(request: Request) -> dict[str, str]:
    try:
        form = await request.form(max_files=0, max_fields=50)
    except Exception as exc:
        raise HTTPException(400, "That form could not be read.") from exc
    fields: dict[str, str] = {}
    for name, value in form.multi_items():
        if isinstance(value, str):
            fields.setdefault(name, value[:4096])
    return fields


def required_reason(fields: dict[str, str]) -> str:
    reason = fields.get("reason", "").strip()
    if not reason:
        raise HTTPException(400, "Say why: every action is recorded in the audit log with its reason.")
    return reason[:MAX_REASON]
