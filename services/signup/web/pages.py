"""The signup pages: server-rendered, usable without JavaScript, every form protected against CSRF.
(The emailed link and the login to SolusVM 2 are in ``web_links``.)

Registering and asking for a new link answer the same whoever the address belongs to: the browser
is sent to "Check your email" with a session for its registration, and only the mailbox learns more.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.signup.journey import RateLimited, TermsMissing, TermsRecorded, required_terms
from services.signup.panel_content import account_figures
from services.signup.plans import price_plan, tariffs, worked_example
from services.signup.schema import Stage
from services.signup.tokens import BrowserSession
from services.signup.validation import InvalidRegistration, validate_registration
from services.signup.web.support import (
    CurrentSession,
    PostedForm,
    client_ip,
    current_session,
    page,
    start_session,
    user_agent,
    web_of,
)
from shared.upstream.solusvm_inventory import PlanPrices

router = APIRouter(include_in_schema=False)


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def rate_limited(request: Request, outcome: RateLimited) -> HTMLResponse:
    response = page(request, "rate_limited.html", 429, minutes=max(1, outcome.retry_after_seconds // 60))
    response.headers["Retry-After"] = str(outcome.retry_after_seconds)
    return response


@router.get("/", response_class=HTMLResponse)
async def landing(request: Request) -> Response:
    # On the event loop while the plan list is fresh: a hand-off to a worker thread and back is two more
    # wake-ups, each of which may wait for a core while the machine works off a backlog
    # (docs/benchmarks.md, signup flood). Only a stale list, which may wait on SolusVM 2, goes to a thread.
    catalog = web_of(request).plans
    fresh, plans = catalog.fresh()
    if not fresh:
        plans = await run_in_threadpool(catalog.plans)
    return _landing_page(request, plans)


def _landing_page(request: Request, plans: tuple[PlanPrices, ...] | None) -> Response:
    settings = web_of(request).settings
    priced_in = tariffs(settings)
    return page(
        request,
        "landing.html",
        prices=[(t.currency, str(t.token_price)) for t in priced_in],
        plans=[price_plan(plan, priced_in) for plan in plans or ()],
        plans_unavailable=plans is None,
        example=worked_example(plans[0], priced_in[0]) if plans and priced_in else None,
        due_days=settings.invoice_due_days,
        grace_days=settings.accounts_grace_days,
        timezone=settings.billing_timezone,
    )


@router.get("/signup", response_class=HTMLResponse)
def registration_form(request: Request) -> Response:
    return page(request, "register.html", values={}, problems={})


@router.post("/signup", response_class=HTMLResponse)
async def register(request: Request, fields: PostedForm) -> Response:
    values = {name: fields.get(name, "") for name in ("name", "company", "email", "currency", "country")}
    try:
        registration = validate_registration(fields, currencies=web_of(request).settings.signup_currencies)
    except InvalidRegistration as invalid:
        return page(request, "register.html", 422, values=values, problems=invalid.problems)
    outcome = await run_in_threadpool(web_of(request).journey.register, registration, client_ip(request))
    if isinstance(outcome, RateLimited):
        return rate_limited(request, outcome)
    response = see_other("/signup/check-email")
    start_session(response, request, outcome.registration_id, "registered")
    return response


def _email_of(request: Request, session: BrowserSession | None) -> str | None:
    journey = web_of(request).journey
    if session is None:
        return None
    if session.registration_id is not None:
        progress = journey.progress(session.registration_id)
        return progress.email if progress else None
    signup = journey.signup(session.subject_id)
    return signup.email if signup else None


@router.get("/signup/check-email", response_class=HTMLResponse)
def check_email(request: Request) -> Response:
    return page(request, "check_email.html", email=_email_of(request, current_session(request)), again=False)


@router.post("/signup/resend", response_class=HTMLResponse)
async def resend(request: Request, fields: PostedForm) -> Response:
    email = " ".join(fields.get("email", "").split())[:254]
    if not email:
        return page(
            request, "check_email.html", 422, email=None, again=False, resend_problem="Please enter your email address."
        )
    outcome = await run_in_threadpool(web_of(request).journey.resend, client_ip=client_ip(request), email=email)
    if isinstance(outcome, RateLimited):
        return rate_limited(request, outcome)
    # Whatever the address (new, waiting, enrolled), the answer is the same: only its mailbox learns more.
    return page(request, "check_email.html", email=email, again=True)


def _unverified(request: Request, action: str) -> HTMLResponse:
    return page(
        request,
        "problem.html",
        403,
        title="Please open the link from your email first",
        message=f"The terms {action} after you confirm your email address.",
    )


@router.get("/signup/terms", response_class=HTMLResponse)
def terms_form(request: Request) -> Response:
    session = current_session(request)
    if session is None or session.signup_id is None:
        return _unverified(request, "are shown")
    signup = web_of(request).journey.signup(session.signup_id)
    if signup is None:
        return see_other("/signup")
    if not signup.reached(Stage.AWAITING_TERMS):
        return page(request, "confirming.html")
    if signup.reached(Stage.PROVISIONING):
        return see_other("/signup/status")
    return page(request, "terms.html", terms=required_terms(web_of(request).settings), missing=(), signup=signup)


@router.post("/signup/terms", response_class=HTMLResponse)
async def accept_terms(request: Request, fields: PostedForm, session: CurrentSession) -> Response:
    if session is None or session.signup_id is None:
        return _unverified(request, "can be accepted")
    ticked = {name.removeprefix("accept_") for name, value in fields.items() if name.startswith("accept_") and value}
    journey = web_of(request).journey
    outcome = await run_in_threadpool(
        journey.accept_terms, session, ticked, client_ip=client_ip(request), user_agent=user_agent(request)
    )
    if isinstance(outcome, TermsMissing):
        return page(
            request,
            "terms.html",
            422,
            terms=required_terms(web_of(request).settings),
            missing=tuple(term.kind for term in outcome.missing),
            signup=journey.signup(session.signup_id),
        )
    if isinstance(outcome, TermsRecorded):
        # This browser, and only this one, may log in to SolusVM 2 from here for a short while.
        response = see_other("/signup/status")
        start_session(response, request, outcome.signup_id, "accepted")
        return response
    signup = outcome.signup
    if signup is not None and not signup.reached(Stage.AWAITING_TERMS):
        return page(request, "confirming.html")
    return see_other("/signup/status")


@router.get("/signup/status", response_class=HTMLResponse)
def status(request: Request) -> Response:
    session = current_session(request)
    journey = web_of(request).journey
    stage, email = None, None
    if session is not None and session.registration_id is not None:
        progress = journey.progress(session.registration_id)
        if progress is not None:
            email, stage = progress.email, (progress.signup.stage.value if progress.signup else "awaiting_verification")
    elif session is not None:
        signup = journey.signup(session.subject_id)
        if signup is not None:
            email, stage = signup.email, signup.stage.value
    if session is None or stage is None:
        return page(
            request,
            "problem.html",
            403,
            title="We don't know who you are yet",
            message="Open the link from your verification email in this browser, or sign up first.",
        )
    # The month so far and the invoices only for a browser that proved it reads the mailbox (not for
    # one that only submitted the form).
    signup = (
        journey.signup(session.signup_id) if session.signup_id is not None and stage == Stage.ENROLLED.value else None
    )
    figures = account_figures(web_of(request), signup) if signup is not None else {}
    return page(
        request,
        "status.html",
        email=email,
        stage=stage,
        verified=session.verified,
        can_sso=stage == Stage.ENROLLED.value and journey.may_sso_here(session),
        sso_minutes=round(journey.settings.signup_sso_minutes),
        show_account=signup is not None,
        client_area_url=web_of(request).settings.whmcs_client_area_url,
        **figures,
    )
