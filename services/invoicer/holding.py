"""Holding an invoice for an operator, keeping one of a paused period, and pausing a period.

Everything here writes in the handler's own transaction, beside the ledger row it goes with, so a hold
is never recorded without its ledger state nor the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.invoicer import holds_store, store
from services.invoicer.holds_store import Reason
from services.invoicer.invoice_document import InvoiceDraft
from services.invoicer.metrics import INVOICES_HELD, INVOICES_PAUSED, PERIODS_PAUSED
from services.invoicer.pricing import PricedUsage
from services.invoicer.settings import InvoicerSettings
from shared.bus.handler_context import HandlerContext

ACTOR = "invoicer"
# Holds that count towards pausing a period: every invoice that broke a check, whatever was decided.
COUNTED_HOLDS = (holds_store.HELD, holds_store.RELEASED, holds_store.REJECTED)


def hold_invoice(
    ctx: HandlerContext,
    draft: InvoiceDraft,
    reasons: Sequence[Reason],
    settings: InvoicerSettings,
    priced: PricedUsage | None,
) -> None:
    """Keep the invoice as computed, not created and not emailed, with its reasons; pause the period if
    too many of its customers are held."""
    period = draft.period.key
    holds_store.keep(
        ctx.session,
        draft.client_id,
        draft.period,
        holds_store.HELD,
        reasons=reasons,
        currency=draft.currency,
        lines=draft.lines,
        now=ctx.now(),
        provenance=draft.provenance,
        priced=priced,
    )
    text = "; ".join(reason.text for reason in reasons)
    holds_store.record(ctx.session, period, draft.client_id, "held", ACTOR, text, ctx.now())
    for reason in reasons:
        INVOICES_HELD.labels(reason.code).inc()
    ctx.log.warning(
        "invoice held for an operator; not created",
        client_id=draft.client_id,
        period=period,
        currency=draft.currency,
        total=str(draft.total),
        reasons=[reason.code for reason in reasons],
        detail=text,
    )
    _pause_if_too_many_held(ctx, period, settings)


def pause_invoice(ctx: HandlerContext, draft: InvoiceDraft, priced: PricedUsage | None) -> None:
    """The invoice passed every check, but its period is paused: keep it until an operator resumes."""
    holds_store.keep(
        ctx.session,
        draft.client_id,
        draft.period,
        holds_store.PAUSED,
        reasons=(),
        currency=draft.currency,
        lines=draft.lines,
        now=ctx.now(),
        provenance=draft.provenance,
        priced=priced,
    )
    INVOICES_PAUSED.inc()
    ctx.log.info(
        "invoice kept: its period is paused",
        client_id=draft.client_id,
        period=draft.period.key,
        currency=draft.currency,
        total=str(draft.total),
    )


def supersede_hold(ctx: HandlerContext, client_id: int, period: str, why: str) -> None:
    """A later computation settled the (client, period): a hold nobody decided on is no longer waiting."""
    now = ctx.now()
    if holds_store.decide(ctx.session, client_id, period, holds_store.SUPERSEDED, actor=ACTOR, reason=why, now=now):
        holds_store.record(ctx.session, period, client_id, "superseded", ACTOR, why, now)


def _pause_if_too_many_held(ctx: HandlerContext, period: str, settings: InvoicerSettings) -> None:
    # Holds of one period are counted one at a time: two handlers holding at once would each miss the
    # other's uncommitted hold, and the pause with it.
    holds_store.serialize_period(ctx.session, period)
    if holds_store.pause_of(ctx.session, period) is not None:
        return  # paused already, or resumed by an operator (who has looked: it stays resumed)
    counts = holds_store.count_by_status(ctx.session, period)
    held = sum(counts.get(status, 0) for status in COUNTED_HOLDS)
    if held < settings.invoice_hold_pause_minimum:
        return
    seen = sum(store.count_by_status(ctx.session, period).values())
    if held <= settings.invoice_hold_pause_share * seen:
        return
    if holds_store.pause(ctx.session, period, held=held, seen=seen, now=ctx.now()):
        why = (
            f"{held} of {seen} customers seen so far are held, more than "
            f"{settings.invoice_hold_pause_share:.0%}: the rest of the period waits for an operator"
        )
        holds_store.record(ctx.session, period, None, "paused", ACTOR, why, ctx.now())
        PERIODS_PAUSED.inc()
        ctx.log.error(
            "billing period paused", period=period, held=held, seen=seen, share=settings.invoice_hold_pause_share
        )
