"""UsageCollected → one WHMCS invoice per (client, period), a record that there is nothing to bill, or an
invoice held for an operator; InvoiceReleased → the held (or paused) invoice, as it was computed.

The decision is ``decision.decide`` (the dry run calls it too); creating the invoice and settling an
attempt whose outcome was lost is ``issuing`` (see there why no invoice is made twice). Holds, paused
periods and operators' decisions are in ``holds_store``; ``docs/operations.md`` ("Held invoices") tells
the operator's side.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.invoicer import first_reads, holds_store, issuing, store
from services.invoicer.decision import Decision, decide
from services.invoicer.holding import hold_invoice, pause_invoice, supersede_hold
from services.invoicer.invoice_document import InvoiceDraft, dated, run_key
from services.invoicer.pricing import Tariff, tariff_for
from services.invoicer.settings import InvoicerSettings
from shared.bus.handler_context import HandlerContext, database_first
from shared.errors import PermanentError
from shared.events.billing import InvoiceReleased, UsageCollected, period_of
from shared.events.metering import describe_metering
from shared.periods import BillingPeriod
from shared.ports import Whmcs

# A replayed usage changes nothing once the (client, period) is invoiced, rejected or being released.
USAGE_DONE = (*store.FINAL, store.RELEASING)


class AttemptInProgress(Exception):
    """Another delivery started an attempt for the (client, period) meanwhile: try again (it is settled then)."""


# The client's tariff is read from WHMCS first (GetClientsDetails only reads), so that the reads of the
# ledger and, for a (client, period) seen for the first time, the claim of its attempt share one
# transaction, which commits before CreateInvoice. That transaction's first statement checks the inbox.
@database_first
def create_invoice(event: UsageCollected, ctx: HandlerContext, whmcs: Whmcs, settings: InvoicerSettings) -> None:
    period = period_of(event)
    client_id, key = event.whmcs_client_id, run_key(event.whmcs_client_id, period.key)
    billable = event.total_tokens != 0 or settings.invoice_zero_usage
    tariff, unread = None, None
    if billable:
        try:
            tariff = client_tariff(whmcs, client_id, settings)
        except Exception as exc:
            # Raised once the ledger says the (client, period) still needs it: a redelivery of a settled
            # one is acknowledged whatever WHMCS says now, as when the ledger was read first.
            unread = exc
    decision, turn = None, None
    # On PostgreSQL a Core-connection transaction: its statements all run on the driver, and a Session
    # over it cost about as much CPU as they do.
    with ctx.record_now_writer() as session:
        reads = first_reads.read(session, client_id, period.key)
        current, pause = reads.entry, reads.pause
        settled = (current is not None and current.status in USAGE_DONE) or _released_in_flight(session, current)
        if not settled and unread is None:
            decision = _decide(event, period, tariff, reads.earlier, ctx, settings)
            paused = pause is not None and pause.active
            if current is None and decision.outcome == "invoice" and not paused:
                # The usual case: claim attempt 1 here (see issuing's docstring: it commits before
                # CreateInvoice is sent, with the reads, one transaction fewer per invoice).
                turn = issuing.claim(ctx, session, settings, client_id, period.key, key, done=USAGE_DONE)
    if settled:
        ctx.log.info(
            "already settled; nothing to do",
            client_id=client_id,
            period=period.key,
            status=current.status if current else None,
        )
        return
    if unread is not None:
        raise unread
    assert decision is not None
    owned = None
    if turn is not None:
        owned = issuing.follow(ctx, whmcs, turn, client_id, period.key, key)
        if owned is None:
            return
    elif current is not None and current.status in store.BUSY:
        # An earlier attempt's outcome is unknown: settle it before deciding anything else.
        owned = issuing.take_turn(ctx, whmcs, settings, client_id, period.key, key, done=USAGE_DONE)
        if owned is None:
            return
    if decision.outcome == "nothing-to-bill":
        _nothing_to_bill(event, ctx, key, owned)
    elif decision.outcome == "hold":
        assert decision.draft is not None
        _settle(ctx, decision.draft, store.HELD, owned)
        hold_invoice(ctx, decision.draft, decision.reasons, settings, decision.priced)
    elif pause is not None and pause.active:
        assert decision.draft is not None
        _settle(ctx, decision.draft, store.PAUSED, owned)
        pause_invoice(ctx, decision.draft, decision.priced)
    else:
        assert decision.draft is not None
        attempt = owned or issuing.take_turn(ctx, whmcs, settings, client_id, period.key, key, done=USAGE_DONE)
        if attempt is None:
            return
        issuing.create(
            ctx,
            whmcs,
            settings,
            decision.draft,
            attempt,
            decision.priced,
            supersede="a later computation of the period was invoiced",
        )


def _decide(
    event: UsageCollected,
    period: BillingPeriod,
    tariff: Tariff | None,
    earlier: dict[str, Decimal],
    ctx: HandlerContext,
    settings: InvoicerSettings,
) -> Decision:
    if tariff is None:  # not billable: zero usage, and zero invoices are not made
        return Decision("nothing-to-bill")
    return decide(
        event.vms,
        period,
        tariff,
        settings,
        client_id=event.whmcs_client_id,
        now=ctx.now(),
        largest_earlier=earlier.get(tariff.currency),
        provenance=describe_metering(event.metering) if event.metering else "",
    )


@database_first
def release_invoice(event: InvoiceReleased, ctx: HandlerContext, whmcs: Whmcs, settings: InvoicerSettings) -> None:
    """Invoice a released hold exactly as it was computed, dated today, with the notes and line
    provenance a direct invoice has (a hold kept before these were stored has no provenance rows)."""
    client_id, period = event.whmcs_client_id, event.period
    with ctx.read_first() as session:
        hold = holds_store.get(session, client_id, period)
    if hold is None or hold.status != holds_store.RELEASED:
        ctx.log.info(
            "nothing released to invoice", client_id=client_id, period=period, status=hold.status if hold else None
        )
        return
    attempt = issuing.take_turn(ctx, whmcs, settings, client_id, period, run_key(client_id, period))
    if attempt is None:
        return
    issuing.create(ctx, whmcs, settings, released_draft(hold, settings, ctx), attempt, hold.priced)


def released_draft(hold: holds_store.Hold, settings: InvoicerSettings, ctx: HandlerContext) -> InvoiceDraft:
    return dated(
        hold.whmcs_client_id,
        hold.billing_period,
        hold.currency,
        hold.lines,
        now=ctx.now(),
        due_days=settings.invoice_due_days,
        provenance=hold.provenance,
    )


def client_tariff(whmcs: Whmcs, client_id: int, settings: InvoicerSettings) -> Tariff:
    """The tariff of the client's WHMCS currency (read each time: an operator may change it)."""
    client = whmcs.get_client(client_id)
    if client is None:
        raise PermanentError(f"WHMCS client {client_id} does not exist")
    if not client.currency_code:
        raise PermanentError(f"WHMCS did not tell the currency of client {client_id}")
    return tariff_for(client.currency_code, settings.token_prices, settings.currency_minor_units)


def _released_in_flight(session: Session | Connection, current: store.LedgerEntry | None) -> bool:
    """An operator released this (client, period) and its release is still being invoiced."""
    if current is None or current.status not in (*store.BUSY, store.FAILED):
        return False
    hold = holds_store.get(session, current.whmcs_client_id, current.period)
    return hold is not None and hold.status == holds_store.RELEASED


def _settle(ctx: HandlerContext, draft: InvoiceDraft, status: str, owned: int | None) -> None:
    if not store.settle(ctx.session, draft.client_id, draft.period.key, draft.run_key, status, ctx.now(), fence=owned):
        raise AttemptInProgress(f"an attempt to invoice client {draft.client_id}, {draft.period.key} started meanwhile")


def _nothing_to_bill(event: UsageCollected, ctx: HandlerContext, key: str, owned: int | None) -> None:
    client_id, period = event.whmcs_client_id, event.period
    if not store.settle(ctx.session, client_id, period, key, store.NOTHING_TO_BILL, ctx.now(), fence=owned):
        raise AttemptInProgress(f"an attempt to invoice client {client_id}, {period} started meanwhile")
    supersede_hold(ctx, client_id, period, "a later computation of the period found nothing to bill")
    # No NothingToBill event: its one consumer was the collector's period record, and period status now
    # reads this ledger row instead (an event nobody consumes would wait in the outbox as unroutable).
    ctx.log.info("nothing to bill", client_id=client_id, period=period, total_tokens=event.total_tokens)
