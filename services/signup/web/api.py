"""The JSON API of the signup service (OpenAPI at /openapi.json), for a separate frontend and WHMCS.

``/api/v1/signups``: register, watch progress, ask for a new verification link. The verification
link and the terms step stay on the server-rendered pages the email points to. Every registration
answers the same (202, "awaiting_verification") whoever the address belongs to, and the id it answers
with is the registration's: only the signup's current registration ever shows progress beyond that.
``/api/v1/panel``: the WHMCS client-area panel and its login links, for the WHMCS hook only (in
``web_panel``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from services.signup.journey import Progress, RateLimited, SignupStatus
from services.signup.validation import (
    COMPANY_MAX,
    EMAIL_MAX,
    NAME_MAX,
    PASSWORD_MAX,
    PASSWORD_MIN,
    InvalidRegistration,
    validate_registration,
)
from services.signup.web.support import client_ip, web_of

router = APIRouter(prefix="/api/v1")


class SignupRequest(BaseModel):
    """The schema states the hard limits; the rules it cannot state (a common password, a name in the
    password) are checked after it, with the same messages as the form."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_MAX, description="Full name.")
    company: str = Field(default="", max_length=COMPANY_MAX, description="Company (optional).")
    email: str = Field(
        min_length=3,
        max_length=EMAIL_MAX,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="Email address; the verification link goes there.",
    )
    password: str = Field(
        min_length=PASSWORD_MIN,
        max_length=PASSWORD_MAX,
        description="Password of the WHMCS client account: not a common one, not containing the name or email.",
        json_schema_extra={"format": "password", "writeOnly": True},
    )
    currency: str | None = Field(
        default=None,
        min_length=3,
        max_length=3,
        description="Currency the customer is invoiced in: one with a token price and a WHMCS id (the landing page "
        "lists them). Unset: the WHMCS default currency.",
    )
    country: str | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="ISO 3166 country code of the customer. Unset: POSTPAY_WHMCS_DEFAULT_COUNTRY.",
    )


class SignupView(BaseModel):
    signup_id: uuid.UUID = Field(description="The registration's id: what to watch and to ask a new link for.")
    status: SignupStatus
    status_url: str


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """Every error answer: a stable ``code``, a sentence for people, and per-field problems if any."""

    code: Literal["invalid", "rate_limited", "not_found", "unauthorized", "too_large"]
    message: str
    errors: list[FieldProblem] = Field(default_factory=list)


def problem(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    body = Problem.model_validate({"code": code, "message": message, **extra})
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def view(progress: Progress) -> SignupView:
    return SignupView(
        signup_id=progress.registration_id,
        status=progress.status,
        status_url=f"/api/v1/signups/{progress.registration_id}",
    )


def _rate_limited(outcome: RateLimited) -> JSONResponse:
    response = problem(429, "rate_limited", "Too many attempts; please try again later.")
    response.headers["Retry-After"] = str(outcome.retry_after_seconds)
    return response


SIGNUP_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "A field is missing or not acceptable."},
    429: {"model": Problem, "description": "Too many attempts from this address or for this email."},
}


@router.post("/signups", status_code=202, response_model=SignupView, tags=["signups"], responses=SIGNUP_ERRORS)
def create_signup(request: Request, body: SignupRequest) -> Response:
    """Register. An email follows: a verification link, or, for an address with an account already, how to
    log in. A newer registration of an address still waiting for verification replaces the older one."""
    try:
        registration = validate_registration(
            body.model_dump(), currencies=web_of(request).settings.signup_currencies, choices_required=False
        )
    except InvalidRegistration as invalid:
        errors = [{"field": name, "message": message} for name, message in invalid.problems.items()]
        return problem(422, "invalid", "Some fields need attention.", errors=errors)
    web = web_of(request)
    outcome = web.journey.register(registration, client_ip(request))
    if isinstance(outcome, RateLimited):
        return _rate_limited(outcome)
    progress = web.journey.progress(outcome.registration_id)
    assert progress is not None  # just committed
    return JSONResponse(view(progress).model_dump(mode="json"), status_code=202)


SignupId = Annotated[uuid.UUID, Path(description="The id a registration answered with.")]


@router.get(
    "/signups/{signup_id}",
    response_model=SignupView,
    tags=["signups"],
    responses={404: {"model": Problem, "description": "No such registration."}},
)
def get_signup(request: Request, signup_id: SignupId) -> Response:
    progress = web_of(request).journey.progress(signup_id)
    if progress is None:
        return problem(404, "not_found", "No registration has this id.")
    return JSONResponse(view(progress).model_dump(mode="json"))


@router.post(
    "/signups/{signup_id}/resend",
    status_code=202,
    response_model=SignupView,
    tags=["signups"],
    responses={404: {"model": Problem, "description": "No such registration."}, **SIGNUP_ERRORS},
)
async def resend_verification(request: Request, signup_id: SignupId) -> Response:
    """Send a new verification link (rate-limited); the same answer whatever the address's state."""
    web = web_of(request)
    outcome = await run_in_threadpool(web.journey.resend, client_ip=client_ip(request), registration_id=signup_id)
    if isinstance(outcome, RateLimited):
        return _rate_limited(outcome)
    progress = web.journey.progress(signup_id) if outcome is not None else None
    if progress is None:
        return problem(404, "not_found", "No registration has this id.")
    return JSONResponse(view(progress).model_dump(mode="json"), status_code=202)
