"""What every signup page shares: the templates, the session and CSRF cookies, the client's address, and
the prelude of every form's POST (``PostedForm``, ``CurrentSession``)."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from services.signup.countries import countries
from services.signup.figures import AccountFigures
from services.signup.finish import FinishSigningUp
from services.signup.journey import SignupJourney
from services.signup.plans import PlanCatalog
from services.signup.settings import SignupSettings
from services.signup.sso import SingleSignOn
from services.signup.tokens import (
    BadToken,
    BrowserSession,
    ExpiredToken,
    SessionLevel,
    Signer,
    csrf_matches,
    csrf_token,
    decode_session,
    encode_session,
    new_csrf_secret,
)
from services.signup.validation import PASSWORD_NOTE, PASSWORD_RULES
from services.signup.verification import Verification

SESSION_COOKIE = "postpay_session"
CSRF_COOKIE = "postpay_csrf"
CSRF_FIELD = "csrf_token"
MAX_FIELD_LENGTH = 4096

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
templates.env.globals["password_rules"] = PASSWORD_RULES  # every rule, shown before the first try
templates.env.globals["password_note"] = PASSWORD_NOTE
templates.env.globals["countries"] = countries()


@dataclass
class Web:
    """The objects the routes work with, kept on ``app.state.web``."""

    settings: SignupSettings
    journey: SignupJourney
    verification: Verification
    sso: SingleSignOn
    signer: Signer
    finish: FinishSigningUp
    figures: AccountFigures
    plans: PlanCatalog


def web_of(request: Request) -> Web:
    return request.app.state.web  # type: ignore[no-any-return]


def _address(text: str | None) -> IPAddress | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def client_ip(request: Request) -> str | None:
    """The client's IP address: the peer, or behind trusted proxies the right-most X-Forwarded-For hop
    that is not one of them. Always a valid address (or None): a hop that is not an IP address was not
    written by a proxy we trust, so nothing left of it is believed and the nearest proxy stands in."""
    peer = _address(request.client.host if request.client else None)
    if peer is None:
        return None
    trusted = web_of(request).settings.trusted_proxies
    if not any(peer in network for network in trusted):
        return str(peer)
    hops = [hop for header in request.headers.getlist("x-forwarded-for") for hop in header.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        if not any(address in network for network in trusted):
            return str(address)
    return str(peer)


def user_agent(request: Request) -> str | None:
    agent = request.headers.get("user-agent")
    return agent[:500] if agent else None


# Session -------------------------------------------------------------------------------------------


def current_session(request: Request) -> BrowserSession | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    web = web_of(request)
    try:
        return decode_session(web.signer, cookie, web.journey.now(), web.journey.session_lifetime().total_seconds())
    except (BadToken, ExpiredToken):
        return None


def start_session(response: Response, request: Request, subject_id: uuid.UUID, level: SessionLevel) -> BrowserSession:
    """A new session cookie (a new nonce: whatever the browser held before is replaced)."""
    web = web_of(request)
    session = BrowserSession.start(subject_id, level, web.journey.now())
    response.set_cookie(
        SESSION_COOKIE,
        encode_session(web.signer, session),
        max_age=int(web.journey.session_lifetime().total_seconds()),
        httponly=True,
        secure=web.settings.secure_cookies,
        samesite="lax",
    )
    return session


# CSRF ----------------------------------------------------------------------------------------------


def _csrf_secret(request: Request) -> str:
    """The browser's CSRF cookie value, or a new one (remembered for this request's response)."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and len(existing) <= 64:
        return existing
    if not hasattr(request.state, "new_csrf_secret"):
        request.state.new_csrf_secret = new_csrf_secret()
    return request.state.new_csrf_secret  # type: ignore[no-any-return]


def csrf_ok(request: Request, submitted: str | None) -> bool:
    return csrf_matches(web_of(request).signer, request.cookies.get(CSRF_COOKIE), submitted)


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page. Pages carry a CSRF token for their forms; its cookie is set when new."""
    web = web_of(request)
    secret = _csrf_secret(request)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "settings": web.settings,
            "brand": web.settings.brand,
            "csrf_field": CSRF_FIELD,
            "csrf_token": csrf_token(web.signer, secret),
            **context,
        },
        status_code=status_code,
    )
    if getattr(request.state, "new_csrf_secret", None) == secret:
        response.set_cookie(CSRF_COOKIE, secret, httponly=True, secure=web.settings.secure_cookies, samesite="lax")
    response.headers["Cache-Control"] = "no-store"  # the security headers come from web_guard, on every answer
    return response


async def form_fields(request: Request) -> dict[str, str] | None:
    """The submitted form as plain strings, or None if it is not a readable form."""
    try:
        form = await request.form(max_files=0, max_fields=20)
    except Exception:
        return None
    fields: dict[str, str] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str):
            return None
        fields.setdefault(name, value[: MAX_FIELD_LENGTH + 1])
    return fields


# The POST prelude ----------------------------------------------------------------------------------


def bad_form(request: Request) -> HTMLResponse:
    return page(
        request,
        "problem.html",
        400,
        title="That form could not be read",
        message="Please go back, reload the page and try again.",
    )


def stale_form(request: Request) -> HTMLResponse:
    return page(
        request,
        "problem.html",
        403,
        title="This form has expired",
        message="For your security, forms work only from the page they came from. "
        "Please go back, reload the page and submit it again.",
    )


class FormRefused(Exception):
    """A posted form refused before its route runs; the app answers with ``response`` (see app.py)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def posted_form(request: Request) -> dict[str, str]:
    """The fields of a page's POST, once its CSRF token is checked: an unreadable form is answered with
    ``bad_form``, a token that is not this browser's with ``stale_form``, and the route never runs."""
    fields = await form_fields(request)
    if fields is None:
        raise FormRefused(bad_form(request))
    if not csrf_ok(request, fields.get(CSRF_FIELD)):
        raise FormRefused(stale_form(request))
    return fields


# Parameters of a page's POST route: the checked form, and the browser's session if it has a valid one.
PostedForm = Annotated[dict[str, str], Depends(posted_form)]
CurrentSession = Annotated[BrowserSession | None, Depends(current_session)]
