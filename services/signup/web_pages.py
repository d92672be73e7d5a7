"""The signup pages: server-rendered, usable without JavaScript, every form protected against CSRF."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.signup.journey import (
    AlreadyEnrolled,
    AlreadyRegistered,
    LinkProblem,
    RateLimited,
    TermsMissing,
    TermsRecorded,
    Verified,
    required_terms,
)
from services.signup.sso import SolusVMUnavailable, SsoRedirect
from services.signup.store import Stage
from services.signup.validation import InvalidRegistration, validate_registration
from services.signup.web_support import (
    client_ip,
    csrf_ok,
    current_session,
    form_fields,
    page,
    start_session,
    user_agent,
    web_of,
)

router = APIRouter(include_in_schema=False)

LINK_PROBLEM_STATUS = {"invalid": 400, "expired": 410, "used": 409, "foreign": 403, "locked": 403}


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def rate_limited(request: Request, outcome: RateLimited) -> HTMLResponse:
    response = page(request, "rate_limited.html", 429, minutes=max(1, outcome.retry_after_seconds // 60))
    response.headers["Retry-After"] = str(outcome.retry_after_seconds)
    return response


def bad_form(request: Request) -> HTMLResponse:
    return page(request, "problem.html", 400, title="That form could not be read",
                message="Please go back, reload the page and try again.")  # fmt: skip


def stale_form(request: Request) -> HTMLResponse:
    return page(request, "problem.html", 403, title="This form has expired",
                message="For your security, forms work only from the page they came from. "
                        "Please go back, reload the page and submit it again.")  # fmt: skip


@router.get("/", response_class=HTMLResponse)
def landing(request: Request) -> Response:
    prices = sorted(web_of(request).settings.token_prices.items())
    return page(request, "landing.html", prices=prices)


@router.get("/signup", response_class=HTMLResponse)
def registration_form(request: Request) -> Response:
    return page(request, "register.html", values={}, problems={})


@router.post("/signup", response_class=HTMLResponse)
async def register(request: Request) -> Response:
    fields = await form_fields(request)
    if fields is None:
        return bad_form(request)
    if not csrf_ok(request, fields.get("csrf_token")):
        return stale_form(request)
    values = {name: fields.get(name, "") for name in ("name", "company", "email")}
    try:
        registration = validate_registration(fields)
    except InvalidRegistration as invalid:
        return page(request, "register.html", 422, values=values, problems=invalid.problems)
    outcome = await run_in_threadpool(web_of(request).journey.register, registration, client_ip(request))
    if isinstance(outcome, RateLimited):
        return rate_limited(request, outcome)
    if isinstance(outcome, AlreadyEnrolled):
        return page(request, "already_enrolled.html", 409)
    if isinstance(outcome, AlreadyRegistered):
        return page(request, "check_email.html", email=registration.email, again=True)
    response = see_other("/signup/check-email")
    start_session(response, request, outcome.signup_id, verified=False)
    return response


@router.get("/signup/check-email", response_class=HTMLResponse)
def check_email(request: Request) -> Response:
    session = current_session(request)
    signup = web_of(request).journey.signup(session.signup_id) if session else None
    return page(request, "check_email.html", email=signup.email if signup else None, again=False)


@router.post("/signup/resend", response_class=HTMLResponse)
async def resend(request: Request) -> Response:
    fields = await form_fields(request)
    if fields is None:
        return bad_form(request)
    if not csrf_ok(request, fields.get("csrf_token")):
        return stale_form(request)
    email = " ".join(fields.get("email", "").split())[:254]
    if not email:
        return page(request, "check_email.html", 422, email=None, again=False, resend_problem="Please enter your email address.")
    outcome = await run_in_threadpool(web_of(request).journey.resend, client_ip=client_ip(request), email=email)
    if isinstance(outcome, RateLimited):
        return rate_limited(request, outcome)
    if isinstance(outcome, AlreadyEnrolled):
        return page(request, "already_enrolled.html", 409)
    # Whether or not the address has a signup, the answer is the same: nobody learns who signed up.
    return page(request, "check_email.html", email=email, again=True)


@router.get("/verify/{token}", response_class=HTMLResponse)
def confirm_email(request: Request, token: str) -> Response:
    """The emailed link only shows a "Confirm" button: mail scanners fetch links before the customer
    does, and a link used up by them would greet the customer with "already used". Changes nothing."""
    outcome = web_of(request).journey.check_link(token)
    if isinstance(outcome, LinkProblem):
        return link_problem(request, outcome, resend_email=outcome.signup.email if outcome.signup else None)
    return page(request, "confirm_email.html", email=outcome.signup.email, action=f"/verify/{quote(token, safe='')}")


@router.post("/verify/{token}", response_class=HTMLResponse)
async def verify(request: Request, token: str) -> Response:
    fields = await form_fields(request)
    if fields is None:
        return bad_form(request)
    if not csrf_ok(request, fields.get("csrf_token")):
        return stale_form(request)
    outcome = await run_in_threadpool(web_of(request).journey.verify, token)
    if isinstance(outcome, Verified):
        response = see_other("/signup/terms")
        start_session(response, request, outcome.signup.id, verified=True)
        return response
    return link_problem(request, outcome, resend_email=outcome.signup.email if outcome.signup else None)


def link_problem(request: Request, problem: LinkProblem, *, resend_email: str | None = None) -> HTMLResponse:
    session = current_session(request)
    own = session is not None and problem.signup is not None and session.signup_id == problem.signup.id
    enrolled = problem.signup is not None and problem.signup.stage == Stage.ENROLLED
    return page(request, "link_problem.html", LINK_PROBLEM_STATUS[problem.kind], kind=problem.kind,
                continue_url="/signup/status" if own else None,
                resend_email=None if enrolled else resend_email)  # fmt: skip


@router.get("/signup/terms", response_class=HTMLResponse)
def terms_form(request: Request) -> Response:
    session = current_session(request)
    if session is None or not session.verified:
        return page(request, "problem.html", 403, title="Please open the link from your email first",
                    message="The terms are shown after you confirm your email address.")  # fmt: skip
    signup = web_of(request).journey.signup(session.signup_id)
    if signup is None:
        return see_other("/signup")
    if signup.stage == Stage.AWAITING_VERIFICATION:
        return page(request, "confirming.html")
    if signup.reached(Stage.PROVISIONING):
        return see_other("/signup/status")
    return page(request, "terms.html", terms=required_terms(web_of(request).settings), missing=())


@router.post("/signup/terms", response_class=HTMLResponse)
async def accept_terms(request: Request) -> Response:
    fields = await form_fields(request)
    if fields is None:
        return bad_form(request)
    if not csrf_ok(request, fields.get("csrf_token")):
        return stale_form(request)
    session = current_session(request)
    if session is None or not session.verified:
        return page(request, "problem.html", 403, title="Please open the link from your email first",
                    message="The terms can be accepted after you confirm your email address.")  # fmt: skip
    ticked = {name.removeprefix("accept_") for name, value in fields.items() if name.startswith("accept_") and value}
    journey = web_of(request).journey
    outcome = await run_in_threadpool(journey.accept_terms, session, ticked, client_ip=client_ip(request),
                                      user_agent=user_agent(request))  # fmt: skip
    if isinstance(outcome, TermsMissing):
        return page(request, "terms.html", 422, terms=required_terms(web_of(request).settings),
                    missing=tuple(term.kind for term in outcome.missing))  # fmt: skip
    if isinstance(outcome, TermsRecorded):
        return see_other("/signup/status")
    signup = outcome.signup
    if signup is not None and signup.stage == Stage.AWAITING_VERIFICATION:
        return page(request, "confirming.html")
    return see_other("/signup/status")


@router.get("/signup/status", response_class=HTMLResponse)
def status(request: Request) -> Response:
    session = current_session(request)
    signup = web_of(request).journey.signup(session.signup_id) if session else None
    if session is None or signup is None:
        return page(request, "problem.html", 403, title="We don't know who you are yet",
                    message="Open the link from your verification email in this browser, or sign up first.")  # fmt: skip
    return page(request, "status.html", signup=signup, stage=signup.stage.value, verified=session.verified,
                client_area_url=web_of(request).settings.whmcs_client_area_url)  # fmt: skip


@router.post("/sso", response_class=HTMLResponse)
async def start_sso(request: Request) -> Response:
    fields = await form_fields(request)
    if fields is None:
        return bad_form(request)
    if not csrf_ok(request, fields.get("csrf_token")):
        return stale_form(request)
    session = current_session(request)
    if session is None or not session.verified:
        return page(request, "problem.html", 403, title="Please log in through the client area",
                    message="This browser has not confirmed the email address of an enrolled account.")  # fmt: skip
    link = await run_in_threadpool(web_of(request).sso.mint, session.signup_id, browser=session)
    if link is None:
        return see_other("/signup/status")
    return see_other(link.path)


@router.get("/sso/{token}", response_class=HTMLResponse)
def redeem_sso(request: Request, token: str) -> Response:
    outcome = web_of(request).sso.redeem(token, current_session(request))
    if isinstance(outcome, SsoRedirect):
        return RedirectResponse(outcome.url, status_code=302, headers={"Cache-Control": "no-store"})
    if isinstance(outcome, SolusVMUnavailable):
        return page(request, "problem.html", 503, title="SolusVM 2 is not answering right now",
                    message="Nothing was changed. Please try the login button again in a minute.")  # fmt: skip
    return page(request, "sso_problem.html", LINK_PROBLEM_STATUS[outcome.kind], kind=outcome.kind,
                client_area_url=web_of(request).settings.whmcs_client_area_url)  # fmt: skip
