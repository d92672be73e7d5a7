"""The WHMCS client-area panel and its login links (``/api/v1/panel``), for the WHMCS hook only.

Every request is HMAC-signed with the shared secret over its timestamp, nonce, client and purpose (see
``panel_auth``), fresh, and new: its nonce is remembered for the freshness window, so a request sent
again (captured in a log, replayed by a proxy) is refused and mints nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from services.signup.panel_auth import PanelAuthError, PanelPurpose, check_panel_request
from services.signup.panel_content import ENROLLED_STATES, PanelState, panel_content
from services.signup.throttle import remember_nonce
from services.signup.web.api import Problem, problem
from services.signup.web.support import web_of
from shared.logging import get_logger

router = APIRouter(prefix="/api/v1")
log = get_logger("postpay.signup.api")


class PanelView(BaseModel):
    client_id: int
    enrolled: bool
    state: PanelState = Field(
        description="not_enrolled; awaiting_terms (email confirmed, terms never accepted: "
        '"Finish signing up"); setting_up; active; suspended until overdue '
        "invoices are paid; locked when the WHMCS client is closed."
    )
    overdue_invoice_ids: list[int] = Field(default_factory=list, description="What to pay to reactivate.")
    title: str
    html: str
    landing_url: str


class LoginLink(BaseModel):
    url: str = Field(description="Single-use login link; valid for expires_in_seconds (at most 60).")
    expires_in_seconds: int


ClientId = Annotated[int, Path(gt=0, lt=2**31, description="WHMCS client id.")]
TimestampHeader = Annotated[str | None, Header(alias="X-Postpay-Timestamp", description="Unix seconds.")]
NonceHeader = Annotated[
    str | None, Header(alias="X-Postpay-Nonce", description="16-128 random [A-Za-z0-9_-], new per request.")
]
SignatureHeader = Annotated[
    str | None,
    Header(alias="X-Postpay-Signature", description="hex HMAC-SHA256 of '<timestamp>.<nonce>.<client id>.<purpose>'."),
]
PANEL_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Not signed by the WHMCS hook, not fresh, or sent before."}
}


def _authenticate(
    request: Request,
    client_id: int,
    purpose: PanelPurpose,
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
) -> JSONResponse | None:
    web = web_of(request)
    now = web.journey.now()
    window = web.settings.panel_max_skew_seconds
    try:
        check_panel_request(
            web.settings.panel_shared_secret.get_secret_value(),
            timestamp=timestamp,
            nonce=nonce,
            signature=signature,
            client_id=client_id,
            purpose=purpose,
            now=now,
            max_skew_seconds=window,
        )
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
    "/panel/{client_id}",
    response_model=PanelView,
    tags=["whmcs"],
    responses={
        **PANEL_ERRORS,
        200: {
            "content": {"text/html": {"schema": {"type": "string"}}},
            "description": "The panel (JSON, or the HTML fragment with Accept: text/html).",
        },
    },
)
def panel(
    request: Request,
    client_id: ClientId,
    timestamp: TimestampHeader = None,
    nonce: NonceHeader = None,
    signature: SignatureHeader = None,
) -> Response:
    """The client-area panel for a WHMCS client: not enrolled, "Finish signing up", being set up, or
    enrolled (active, suspended, locked) with the month's usage so far and the latest invoices."""
    refused = _authenticate(request, client_id, "panel", timestamp, nonce, signature)
    if refused is not None:
        return refused
    web = web_of(request)
    shown = panel_content(web, client_id)
    if "text/html" in request.headers.get("accept", "") and "application/json" not in request.headers.get("accept", ""):
        return HTMLResponse(shown.html, headers={"Cache-Control": "no-store"})
    body = PanelView(
        client_id=client_id,
        enrolled=shown.state in ENROLLED_STATES,
        state=shown.state,
        overdue_invoice_ids=list(shown.overdue_ids),
        title=shown.title,
        html=shown.html,
        landing_url=f"{web.settings.public_url}/",
    )
    return JSONResponse(body.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@router.post(
    "/panel/{client_id}/finish",
    response_model=LoginLink,
    tags=["whmcs"],
    responses={
        **PANEL_ERRORS,
        404: {"model": Problem, "description": "The client has no signup waiting for its terms."},
    },
)
async def panel_finish_link(
    request: Request,
    client_id: ClientId,
    timestamp: TimestampHeader = None,
    nonce: NonceHeader = None,
    signature: SignatureHeader = None,
) -> Response:
    """A fresh single-use link to the terms, for a client who confirmed the email but never accepted them."""
    refused = await run_in_threadpool(_authenticate, request, client_id, "finish", timestamp, nonce, signature)
    if refused is not None:
        return refused
    link = await run_in_threadpool(web_of(request).finish.mint, client_id)
    if link is None:
        return problem(404, "not_found", "This client has no signup waiting for its terms.")
    return JSONResponse(
        LoginLink(url=link.url, expires_in_seconds=link.expires_in_seconds).model_dump(),
        headers={"Cache-Control": "no-store"},
    )


@router.post(
    "/panel/{client_id}/sso",
    response_model=LoginLink,
    tags=["whmcs"],
    responses={**PANEL_ERRORS, 404: {"model": Problem, "description": "The client is not enrolled."}},
)
async def panel_login_link(
    request: Request,
    client_id: ClientId,
    timestamp: TimestampHeader = None,
    nonce: NonceHeader = None,
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
    return JSONResponse(
        LoginLink(url=link.url, expires_in_seconds=link.expires_in_seconds).model_dump(),
        headers={"Cache-Control": "no-store"},
    )
