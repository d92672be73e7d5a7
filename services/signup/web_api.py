"""The JSON API of the signup service (OpenAPI at /openapi.json), for a separate frontend and WHMCS.

``/api/v1/signups``: register, watch progress, ask for a new verification link. The verification
link and the terms step stay on the server-rendered pages the email points to.
``/api/v1/panel``: the WHMCS client-area panel and its login links, for the WHMCS hook only
(HMAC-signed requests, see ``panel_auth``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from services.signup.accounts import AccountView, account_of
from services.signup.journey import AlreadyEnrolled, RateLimited, Registered
from services.signup.panel_auth import PanelAuthError, PanelPurpose, check_panel_request
from services.signup.store import Signup, Stage, remember_nonce
from services.signup.validation import (
    COMPANY_MAX,
    EMAIL_MAX,
    NAME_MAX,
    PASSWORD_MAX,
    PASSWORD_MIN,
    InvalidRegistration,
    validate_registration,
)
from services.signup.web_support import client_ip, templates, web_of
from shared.logging import get_logger

router = APIRouter(prefix="/api/v1")
log = get_logger("postpay.signup.api")

SignupStatus = Literal["setting_up", "awaiting_verification", "awaiting_terms", "provisioning", "enrolled"]
STATUS_OF_STAGE: dict[Stage, SignupStatus] = {
    Stage.CREATING_CLIENT: "setting_up",
    Stage.AWAITING_VERIFICATION: "awaiting_verification",
    Stage.AWAITING_TERMS: "awaiting_terms",
    Stage.PROVISIONING: "provisioning",
    Stage.ENROLLED: "enrolled",
}


class SignupRequest(BaseModel):
    """The schema states the hard limits; the rules it cannot state (a common password, a name in the
    password) are checked after it, with the same messages as the form."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_MAX, description="Full name.")
    company: str = Field(default="", max_length=COMPANY_MAX, description="Company (optional).")
    email: str = Field(min_length=3, max_length=EMAIL_MAX, pattern=r"^[^@\s]+@[^@\s]+$",
                       description="Email address; the verification link goes there.")  # fmt: skip
    password: str = Field(
        min_length=PASSWORD_MIN,
        max_length=PASSWORD_MAX,
        description="Password of the WHMCS client account: not a common one, not containing the name or email.",
        json_schema_extra={"format": "password", "writeOnly": True},
    )


class SignupView(BaseModel):
    signup_id: uuid.UUID
    status: SignupStatus
    status_url: str


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """Every error answer: a stable ``code``, a sentence for people, and per-field problems if any."""

    code: Literal["invalid", "already_enrolled", "rate_limited", "not_found", "unauthorized", "too_large"]
    message: str
    errors: list[FieldProblem] = Field(default_factory=list)
    login_url: str | None = None


PanelState = Literal["not_enrolled", "active", "suspended", "locked"]


class PanelView(BaseModel):
    client_id: int
    enrolled: bool
    state: PanelState = Field(description="The account lifecycle: suspended until overdue invoices are paid; "
                                          "locked when the WHMCS client is closed.")
    overdue_invoice_ids: list[int] = Field(default_factory=list, description="What to pay to reactivate.")
    title: str
    html: str
    landing_url: str


class LoginLink(BaseModel):
    url: str = Field(description="Single-use login link; valid for expires_in_seconds (at most 60).")
    expires_in_seconds: int


def problem(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    body = Problem.model_validate({"code": code, "message": message, **extra})
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def view(request: Request, signup: Signup) -> SignupView:
    return SignupView(signup_id=signup.id, status=STATUS_OF_STAGE[signup.stage],
                      status_url=f"/api/v1/signups/{signup.id}")  # fmt: skip


def _rate_limited(outcome: RateLimited) -> JSONResponse:
    response = problem(429, "rate_limited", "Too many attempts; please try again later.")
    response.headers["Retry-After"] = str(outcome.retry_after_seconds)
    return response


def _already_enrolled(request: Request) -> JSONResponse:
    return problem(409, "already_enrolled", "This email address is already enrolled; please log in.",
                   login_url=web_of(request).settings.whmcs_client_area_url)  # fmt: skip


SIGNUP_ERRORS = {
    409: {"model": Problem, "description": "Already enrolled: log in instead."},
    422: {"model": Problem, "description": "A field is missing or not acceptable."},
    429: {"model": Problem, "description": "Too many attempts from this address or for this email."},
}


@router.post("/signups", status_code=202, response_model=SignupView, tags=["signups"], responses={
    200: {"model": SignupView, "description": "This email already has a signup in progress: a new link is on its way."},
    **SIGNUP_ERRORS,
})  # fmt: skip
def create_signup(request: Request, body: SignupRequest) -> Response:
    """Register. A verification email follows; an email with a signup in progress gets a new link."""
    try:
        registration = validate_registration(body.model_dump())
    except InvalidRegistration as invalid:
        errors = [{"field": name, "message": message} for name, message in invalid.problems.items()]
        return problem(422, "invalid", "Some fields need attention.", errors=errors)
    web = web_of(request)
    outcome = web.journey.register(registration, client_ip(request))
    if isinstance(outcome, RateLimited):
        return _rate_limited(outcome)
    if isinstance(outcome, AlreadyEnrolled):
        return _already_enrolled(request)
    signup = web.journey.signup(outcome.signup_id)
    assert signup is not None  # just committed
    status = 202 if isinstance(outcome, Registered) else 200
    return JSONResponse(view(request, signup).model_dump(mode="json"), status_code=status)


SignupId = Annotated[uuid.UUID, Path(description="The id a registration answered with.")]


@router.get("/signups/{signup_id}", response_model=SignupView, tags=["signups"],
            responses={404: {"model": Problem, "description": "No such signup."}})  # fmt: skip
def get_signup(request: Request, signup_id: SignupId) -> Response:
    signup = web_of(request).journey.signup(signup_id)
    if signup is None:
        return problem(404, "not_found", "No signup has this id.")
    return JSONResponse(view(request, signup).model_dump(mode="json"))


@router.post("/signups/{signup_id}/resend", status_code=202, response_model=SignupView, tags=["signups"],
             responses={404: {"model": Problem, "description": "No such signup."}, **SIGNUP_ERRORS})  # fmt: skip
def resend_verification(request: Request, signup_id: SignupId) -> Response:
    """Send a new verification link (rate-limited)."""
    web = web_of(request)
    outcome = web.journey.resend(client_ip=client_ip(request), signup_id=signup_id)
    if isinstance(outcome, RateLimited):
        return _rate_limited(outcome)
    if outcome is None:
        return problem(404, "not_found", "No signup has this id.")
    if isinstance(outcome, AlreadyEnrolled):
        return _already_enrolled(request)
    signup = web.journey.signup(signup_id)
    assert signup is not None
    return JSONResponse(view(request, signup).model_dump(mode="json"), status_code=202)


# The WHMCS client-area panel -------------------------------------------------------------------------

ClientId = Annotated[int, Path(gt=0, lt=2**31, description="WHMCS client id.")]
TimestampHeader = Annotated[str | None, Header(alias="X-Postpay-Timestamp", description="Unix seconds.")]
NonceHeader = Annotated[str | None, Header(alias="X-Postpay-Nonce", description="16-128 random [A-Za-z0-9_-], new per request.")]
SignatureHeader = Annotated[
    str | None,
    Header(alias="X-Postpay-Signature", description="hex HMAC-SHA256 of '<timestamp>.<nonce>.<client id>.<purpose>'."),
]
PANEL_ERRORS = {401: {"model": Problem, "description": "Not signed by the WHMCS hook, not fresh, or sent before."}}


def _authenticate(request: Request, client_id: int, purpose: PanelPurpose, timestamp: str | None, nonce: str | None,
                  signature: str | None) -> JSONResponse | None:  # fmt: skip
    web = web_of(request)
    now = web.journey.now()
    window = web.settings.panel_max_skew_seconds
    try:
        check_panel_request(
            web.settings.panel_shared_secret.get_secret_value(), timestamp=timestamp, nonce=nonce, signature=signature,
            client_id=client_id, purpose=purpose, now=now, max_skew_seconds=window,
        )  # fmt: skip
    except PanelAuthError as refused:
        return problem(401, "unauthorized", f"Refused: {refused.reason}.")
    assert nonce is not None  # checked above
    with web.journey.db.transaction() as session:
        first_time = remember_nonce(session, nonce, now, window)
    if not first_time:
        log.warning("a signed panel request was replayed", client_id=client_id, purpose=purpose)
        return problem(401, "unauthorized", "Refused: replayed request (its nonce was used already).")
    return None


@router.get(
    "/panel/{client_id}", response_model=PanelView, tags=["whmcs"],
    responses={**PANEL_ERRORS, 200: {"content": {"text/html": {"schema": {"type": "string"}}},
                                     "description": "The panel (JSON, or the HTML fragment with Accept: text/html)."}},
)  # fmt: skip
def panel(request: Request, client_id: ClientId, timestamp: TimestampHeader = None, nonce: NonceHeader = None,
          signature: SignatureHeader = None) -> Response:  # fmt: skip
    """The client-area panel for a WHMCS client: "Enrolled in SolusVM 2" or "Not enrolled"."""
    refused = _authenticate(request, client_id, "panel", timestamp, nonce, signature)
    if refused is not None:
        return refused
    web = web_of(request)
    enrolled = web.sso.enrolled_by_client(client_id) is not None
    account = account_of(web.sso.db, client_id) if enrolled else None
    state, invoices = _panel_state(enrolled, account)
    html = templates.get_template("panel.html").render(
        enrolled=enrolled, state=state, landing_url=f"{web.settings.public_url}/",
        sso_action_url=web.settings.panel_sso_action_url, brand=web.settings.brand_name,
        invoices=[(number, web.settings.panel_invoice_url.replace("{invoice_id}", str(number))) for number in invoices],
    )  # fmt: skip
    title = _panel_title(state, invoices)
    if "text/html" in request.headers.get("accept", "") and "application/json" not in request.headers.get("accept", ""):
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})
    body = PanelView(client_id=client_id, enrolled=enrolled, state=state, overdue_invoice_ids=list(invoices), title=title,
                     html=html, landing_url=f"{web.settings.public_url}/")
    return JSONResponse(body.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


def _panel_state(enrolled: bool, account: AccountView | None) -> tuple[PanelState, tuple[int, ...]]:
    if not enrolled:
        return "not_enrolled", ()
    if account is None or account.status == "active":
        return "active", ()
    return account.status, account.overdue_invoice_ids if account.status == "suspended" else ()


def _panel_title(state: PanelState, invoices: tuple[int, ...]) -> str:
    if state == "suspended" and invoices:
        which = ("invoice " if len(invoices) == 1 else "invoices ") + ", ".join(f"#{number}" for number in invoices)
        return f"Suspended — pay {which} to reactivate"
    return {"not_enrolled": "Not enrolled in SolusVM 2", "active": "Enrolled in SolusVM 2",
            "suspended": "Suspended — pay your overdue invoices to reactivate",
            "locked": "SolusVM 2 account locked"}[state]  # fmt: skip


@router.post("/panel/{client_id}/sso", response_model=LoginLink, tags=["whmcs"],
             responses={**PANEL_ERRORS, 404: {"model": Problem, "description": "The client is not enrolled."}})  # fmt: skip
async def panel_login_link(
    request: Request, client_id: ClientId, timestamp: TimestampHeader = None, nonce: NonceHeader = None,
    signature: SignatureHeader = None,
) -> Response:
    """A fresh single-use login link for an enrolled WHMCS client, minted when the customer clicks."""
    refused = await run_in_threadpool(_authenticate, request, client_id, "sso", timestamp, nonce, signature)
    if refused is not None:
        return refused
    web = web_of(request)
    signup = await run_in_threadpool(web.sso.enrolled_by_client, client_id)
    link = await run_in_threadpool(web.sso.mint, signup.id) if signup is not None else None
    if link is None:
        return problem(404, "not_found", "This client is not enrolled in SolusVM 2.")
    return JSONResponse(LoginLink(url=link.url, expires_in_seconds=link.expires_in_seconds).model_dump(),
                        headers={"Cache-Control": "no-store"})  # fmt: skip
