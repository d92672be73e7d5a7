"""An operator's decisions on held invoices and paused periods: release, reject, resume.

Each decision changes the hold, the invoicer's ledger row and the audit table in one transaction, and a
release also writes its ``InvoiceReleased`` to the invoicer's outbox there: the invoicer then creates the
invoice as it was computed, exactly once (its ledger and run key guard it as for any invoice). A
decision is refused unless the invoice is still waiting for one, so nothing is released twice, and
nothing rejected is ever invoiced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from services.invoicer import public as invoicer
from shared.db import Database
from shared.events.billing import InvoiceReleased
from shared.outbox import Outbox

RESUME_CHUNK = 500


class HoldError(ValueError):
    """The decision does not apply (no such hold, or it is not waiting for one)."""


@dataclass(frozen=True)
class Resumed:
    newly_resumed: bool
    released: int


def release(
    db: Database, outbox: Outbox, client_id: int, period: str, *, actor: str, reason: str, now: datetime
) -> invoicer.Hold:
    """Invoice the held (or paused) invoice as it was computed."""
    with db.transaction() as session:
        hold = _waiting(session, client_id, period)
        _release(session, outbox, hold, actor=actor, reason=reason, action="released", now=now)
    return hold


def reject(db: Database, client_id: int, period: str, *, actor: str, reason: str, now: datetime) -> invoicer.Hold:
    """Never invoice this (client, period) from postpay; the reason is kept."""
    with db.transaction() as session:
        hold = _waiting(session, client_id, period)
        if not invoicer.set_ledger_status(
            session, client_id, period, invoicer.LEDGER_REJECTED, now, only_from=invoicer.LEDGER_WAITING
        ):
            raise HoldError(f"the ledger of client {client_id}, {period} is no longer waiting for a decision")
        invoicer.decide_hold(session, client_id, period, invoicer.REJECTED, actor=actor, reason=reason, now=now)
        invoicer.record_hold_action(session, period, client_id, "rejected", actor, reason, now)
    return hold


def resume(db: Database, outbox: Outbox, period: str, *, actor: str, reason: str, now: datetime) -> Resumed:
    """End the period's pause and release every invoice kept while it was paused (held ones stay held).

    Releases go in chunks of their own transactions; running it again after an interruption releases
    the rest.
    """
    with db.transaction() as session:
        pause = invoicer.pause_of(session, period, lock=True)
        if pause is None:
            raise HoldError(f"{period} was never paused")
        newly = invoicer.resume_holds(session, period, actor=actor, reason=reason, now=now)
        if newly:
            invoicer.record_hold_action(session, period, None, "resumed", actor, reason, now)
    released = 0
    while True:
        with db.transaction() as session:
            page = invoicer.holds_listing(session, period=period, statuses=(invoicer.PAUSED,), limit=RESUME_CHUNK)
            for hold in page:
                _release(
                    session, outbox, hold, actor=actor, reason=f"period resumed: {reason}", action="resumed", now=now
                )
        released += len(page)
        if len(page) < RESUME_CHUNK:
            return Resumed(newly, released)


def _waiting(session: Session, client_id: int, period: str) -> invoicer.Hold:
    hold = invoicer.hold(session, client_id, period, lock=True)
    if hold is None:
        raise HoldError(f"no invoice of client {client_id} for {period} was held")
    if hold.status not in invoicer.WAITING:
        decided = f" by {hold.decided_by} ({hold.decision_reason})" if hold.decided_by else ""
        raise HoldError(f"the invoice of client {client_id} for {period} is {hold.status}{decided}, not waiting")
    return hold


def _release(
    session: Session, outbox: Outbox, hold: invoicer.Hold, *, actor: str, reason: str, action: str, now: datetime
) -> None:
    client_id, period = hold.whmcs_client_id, hold.period
    if not invoicer.set_ledger_status(
        session, client_id, period, invoicer.RELEASING, now, only_from=invoicer.LEDGER_WAITING
    ):
        raise HoldError(f"the ledger of client {client_id}, {period} is no longer waiting for a decision")
    invoicer.decide_hold(session, client_id, period, invoicer.RELEASED, actor=actor, reason=reason, now=now)
    invoicer.record_hold_action(session, period, client_id, action, actor, reason, now)
    outbox.add_event(session, InvoiceReleased(whmcs_client_id=client_id, period=period), occurred_at=now)
