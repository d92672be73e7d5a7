"""The pages behind links: the emailed verification link (and its confirm button), and the login to
SolusVM 2 (the button, and the single-use link it leads to).

Opening the emailed link changes nothing: mail scanners open links before the customer does. Its
"Confirm my email address" button (a POST) uses it, and in a browser other than the one that
registered it also asks for the registration's password (see ``verification``).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.signup.finish import Finishing
from services.signup.journey import RateLimited
from services.signup.schema import Stage
from services.signup.sso import SolusVMUnavailable, SsoRedirect
from services.signup.verification import LinkProblem, ProofNeeded, Verified
from services.signup.web.pages import rate_limited, see_other
from services.signup.web.support import CurrentSession, PostedForm, current_session, page, start_session, web_of

router = APIRouter(include_in_schema=False)

LINK_PROBLEM_STATUS = {
    "invalid": 400,
    "expired": 410,
    "used": 409,
    "replaced": 410,
    "finished": 410,
    "foreign": 403,
    "locked": 403,
}


@router.get("/verify/{token}", response_class=HTMLResponse)
def confirm_email(request: Request, token: str) -> Response:
    """Show the "Confirm" button (and, in another browser, the password field). Changes nothing."""
    outcome = web_of(request).verification.check_link(token, current_session(request))
    if isinstance(outcome, LinkProblem):
        return link_problem(request, outcome)
    return page(
        request,
        "confirm_email.html",
        email=outcome.signup.email,
        action=f"/verify/{quote(token, safe='')}",
        needs_password=outcome.needs_password,
        wrong_password=False,
    )


@router.post("/verify/{token}", response_class=HTMLResponse)
async def verify(request: Request, token: str, fields: PostedForm, session: CurrentSession) -> Response:
    verification = web_of(request).verification
    outcome = await run_in_threadpool(verification.verify, token, session, fields.get("password"))
    if isinstance(outcome, Verified):
        response = see_other("/signup/terms")
        start_session(response, request, outcome.signup.id, "verified")
        return response
    if isinstance(outcome, ProofNeeded):
        return page(
            request,
            "confirm_email.html",
            403,
            email=outcome.signup.email,
            action=f"/verify/{quote(token, safe='')}",
            needs_password=True,
            wrong_password=outcome.wrong,
        )
    if isinstance(outcome, RateLimited):
        return rate_limited(request, outcome)
    return link_problem(request, outcome)


def link_problem(request: Request, problem: LinkProblem) -> HTMLResponse:
    session = current_session(request)
    signup = problem.signup
    own = (
        session is not None
        and signup is not None
        and (
            session.signup_id == signup.id
            or (session.registration_id is not None and signup.is_current(session.registration_id))
        )
    )
    finished = signup is not None and signup.reached(Stage.PROVISIONING)
    return page(
        request,
        "link_problem.html",
        LINK_PROBLEM_STATUS[problem.kind],
        kind=problem.kind,
        continue_url="/signup/status" if own else None,
        resend_email=signup.email if signup is not None and not finished else None,
    )


@router.post("/sso", response_class=HTMLResponse)
async def start_sso(request: Request, _form: PostedForm, session: CurrentSession) -> Response:
    web = web_of(request)
    if session is None or session.signup_id is None or not web.journey.may_sso_here(session):
        return page(
            request,
            "problem.html",
            403,
            title="Please log in through the client area",
            message="Log in to the client area and use its Log in to SolusVM 2 button. From this site, only "
            "the browser that accepted the terms can, and only for a few minutes after.",
        )
    link = await run_in_threadpool(web.sso.mint, session.signup_id, browser=session)
    if link is None:
        return see_other("/signup/status")
    return see_other(link.path)


@router.get("/sso/{token}", response_class=HTMLResponse)
def redeem_sso(request: Request, token: str) -> Response:
    outcome = web_of(request).sso.redeem(token, current_session(request))
    if isinstance(outcome, SsoRedirect):
        return RedirectResponse(outcome.url, status_code=302, headers={"Cache-Control": "no-store"})
    if isinstance(outcome, SolusVMUnavailable):
        return page(
            request,
            "problem.html",
            503,
            title="SolusVM 2 is not answering right now",
            message="Nothing was changed. Please try the login button again in a minute.",
        )
    return page(
        request,
        "sso_problem.html",
        LINK_PROBLEM_STATUS[outcome.kind],
        kind=outcome.kind,
        client_area_url=web_of(request).settings.whmcs_client_area_url,
    )


@router.get("/finish/{token}", response_class=HTMLResponse)
def finish_signing_up(request: Request, token: str) -> Response:
    """The client area's "Finish signing up" link: a verified session for its signup, then the terms."""
    outcome = web_of(request).finish.redeem(token)
    if isinstance(outcome, Finishing):
        response = see_other("/signup/terms")
        start_session(response, request, outcome.signup.id, "verified")
        return response
    client_area = web_of(request).settings.whmcs_client_area_url
    if outcome.kind == "finished":
        return page(
            request,
            "problem.html",
            410,
            title="You have finished signing up already",
            message="Your account is set up. Log in to SolusVM 2 from the client area.",
        )
    title = {"used": "This link has already been used", "expired": "This link has expired"}.get(
        outcome.kind, "This link is not valid"
    )
    return page(
        request,
        "problem.html",
        LINK_PROBLEM_STATUS[outcome.kind],
        title=title,
        message=f"Nothing was changed. Press Finish signing up in the client area ({client_area}) again "
        "for a fresh link: each works once, for a minute.",
    )
