"""Parking lots: messages with their reasons; requeue and purge with a reason (audited). And the audit log."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from postpay.console.web import (
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
from shared.bus.parking import ParkingLotMissing, Selection
from shared.bus.rabbit import CONNECTION_ERRORS

router = APIRouter()
Session = Annotated[ConsoleSession, Depends(operator_session)]


def _lot(request: Request, queue: str) -> tuple[Any, str]:
    console = console_of(request)
    bus = console.bus
    if queue not in console.queues:
        raise HTTPException(404, f"no handler queue {queue}")
    return bus.parking_lot(), bus.naming.parking_lot(queue)


@router.get("/parking")
async def parking(request: Request, session: Session) -> Response:
    bus = console_of(request).bus
    try:
        counts = bus.parking_lot().queues()
        problem = None
    except CONNECTION_ERRORS as exc:
        counts, problem = {}, f"RabbitMQ did not answer: {type(exc).__name__}"
    prefix = f"{bus.naming.namespace}." if bus.naming.namespace else ""
    lots = [(name.removeprefix(prefix).removesuffix(".parked"), count) for name, count in sorted(counts.items())]
    return page(request, "parking.html", session, lots=lots, problem=problem)


@router.get("/parking/{queue}")
async def parking_lot(request: Request, queue: str, session: Session) -> Response:
    lot, name = _lot(request, queue)
    try:
        messages = lot.list(name, limit=500)
    except ParkingLotMissing:
        messages = []
    shown = []
    for message in messages:
        try:
            body = json.dumps(json.loads(message.body), indent=2)
        except ValueError:
            body = message.body.decode("utf-8", "replace")
        shown.append((message, body))
    return page(request, "parking_lot.html", session, queue=queue, messages=shown)


@router.post("/parking/{queue}/{action}")
async def act(request: Request, queue: str, action: str, session: Session) -> Response:
    if action not in ("requeue", "purge"):
        raise HTTPException(404, "Unknown action.")
    fields = await form_fields(request)
    check_csrf(session, fields.get("csrf_token"))
    reason = required_reason(fields)
    ids = frozenset(value for value in fields.get("message_ids", "").split(",") if value)
    selection = Selection(everything=True) if fields.get("all") == "yes" else None
    if selection is None:
        if not ids:
            raise HTTPException(400, "Choose the messages.")
        selection = Selection(message_ids=ids)
    lot, name = _lot(request, queue)
    console = console_of(request)
    actor = session.operator.username
    try:
        done = (lot.requeue if action == "requeue" else lot.purge)(
            name, selection, actor=f"{actor} (console)", reason=reason
        )
    except ParkingLotMissing as exc:
        raise HTTPException(404, f"{queue} has no parking lot on this broker yet: nothing is parked there") from exc
    with console.db.transaction() as db_session:
        audit.record_action(
            db_session,
            actor=actor,
            action=f"parking.{action}",
            target=queue,
            reason=reason,
            detail=", ".join(m.message_id or "?" for m in done),
            ip_address=client_ip(request),
            now=console.now(),
        )
    return harden(RedirectResponse(f"/parking/{queue}", status_code=303))


@router.get("/audit")
async def audit_log(request: Request, session: Session) -> Response:
    console = console_of(request)
    with console.db.transaction() as db_session:
        entries = audit.latest(db_session, 300)
    return page(request, "audit.html", session, entries=entries)
