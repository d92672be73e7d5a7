"""Held invoices and paused periods: the list with each hold's reasons, one hold with its computed lines
and every decision about it, and release / reject / resume with a reason, as ``postpay holds`` does
(the same store and the same decision functions); each action is in both audit logs."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from postpay.console.web import (
    Console,
    check_csrf,
    client_ip,
    console_of,
    form_fields,
    harden,
    operator_session,
    page,
    required_reason,
)
from postpay.operators import audit
from postpay.operators.accounts import ConsoleSession
from postpay.ops.holds import HoldError, reject, release, resume
from services.invoicer import public as invoicer
from services.invoicer.public import tables as invoicer_tables
from shared.money import format_money
from shared.periods import PERIOD_PATTERN

router = APIRouter()
Session = Annotated[ConsoleSession, Depends(operator_session)]
DECIDED = (invoicer.RELEASED, invoicer.REJECTED, invoicer.SUPERSEDED)


def _period(key: str) -> str:
    if not re.match(PERIOD_PATTERN, key):
        raise HTTPException(404, f"{key} is not a billing month")
    return key


def _money(console: Console):
    units = console.invoicer_settings.currency_minor_units if console.invoicer_settings is not None else {}
    return lambda amount, currency: f"{currency} {format_money(amount, currency, units)}"


@router.get("/holds")
async def holds(
    request: Request,
    session: Session,
    period: Annotated[str | None, Query(max_length=7)] = None,
    everything: Annotated[bool, Query(alias="all")] = False,
) -> Response:
    console = console_of(request)
    period = _period(period) if period else None
    statuses = invoicer.WAITING + (DECIDED if everything else ())
    with console.db.transaction() as db_session:
        pauses = [p for p in invoicer.active_pauses(db_session) if period is None or p.period == period]
        shown = invoicer.holds_listing(db_session, period=period, statuses=statuses, limit=1000)
    return page(
        request,
        "holds.html",
        session,
        holds=shown,
        pauses=pauses,
        period=period or "",
        everything=everything,
        amount=_money(console),
    )


@router.get("/holds/{period}/{client_id}")
async def hold(request: Request, period: str, client_id: int, session: Session) -> Response:
    console = console_of(request)
    with console.db.transaction() as db_session:
        found = invoicer.hold(db_session, client_id, _period(period))
        history = invoicer.hold_history(db_session, period, client_id)
    if found is None:
        raise HTTPException(404, f"no invoice of client {client_id} for {period} was held")
    return page(
        request,
        "hold.html",
        session,
        hold=found,
        history=history,
        amount=_money(console),
        waiting=found.status in invoicer.WAITING,
    )


@router.post("/holds/{period}/{client_id}/{action}")
async def decide(request: Request, period: str, client_id: int, action: str, session: Session) -> Response:
    if action not in ("release", "reject"):
        raise HTTPException(404, "Unknown action.")
    fields = await form_fields(request)
    check_csrf(session, fields.get("csrf_token"))
    reason = required_reason(fields)
    console = console_of(request)
    actor, now = session.operator.username, console.now()
    try:
        if action == "release":
            release(
                console.db,
                invoicer_tables.outbox,
                client_id,
                _period(period),
                actor=f"{actor} (console)",
                reason=reason,
                now=now,
            )
        else:
            reject(console.db, client_id, _period(period), actor=f"{actor} (console)", reason=reason, now=now)
    except HoldError as exc:
        raise HTTPException(409, str(exc)) from exc
    _audit(request, console, actor, f"holds.{action}", f"client {client_id}, {period}", reason)
    return harden(RedirectResponse(f"/holds/{period}/{client_id}", status_code=303))


@router.post("/holds/{period}/resume")
async def resume_period(request: Request, period: str, session: Session) -> Response:
    fields = await form_fields(request)
    check_csrf(session, fields.get("csrf_token"))
    reason = required_reason(fields)
    console = console_of(request)
    actor = session.operator.username
    try:
        resumed = resume(
            console.db,
            invoicer_tables.outbox,
            _period(period),
            actor=f"{actor} (console)",
            reason=reason,
            now=console.now(),
        )
    except HoldError as exc:
        raise HTTPException(409, str(exc)) from exc
    _audit(
        request, console, actor, "holds.resume", period, reason, detail=f"{resumed.released} paused invoice(s) released"
    )
    return harden(RedirectResponse(f"/holds?period={period}&all=true", status_code=303))


def _audit(
    request: Request, console: Console, actor: str, action: str, target: str, reason: str, detail: str = ""
) -> None:
    with console.db.transaction() as db_session:
        audit.record_action(
            db_session,
            actor=actor,
            action=action,
            target=target,
            reason=reason,
            detail=detail,
            ip_address=client_ip(request),
            now=console.now(),
        )
