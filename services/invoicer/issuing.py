"""Creating the one WHMCS invoice of a (client, period), or recording the one that exists.

Why neither a crash nor a slow WHMCS can make a second invoice:

1. ``store.claim`` commits the attempt (``pending``) *before* WHMCS is called;
2. an attempt whose outcome is lost (a timeout, a dropped connection or a 5xx after the request was
   sent; or the process died) leaves the row ``uncertain`` since that moment: WHMCS may still be
   writing the invoice. Nobody sends CreateInvoice for it again until the quiet time
   (``POSTPAY_WHMCS_UNCERTAIN_QUIET_SECONDS``, longer than WHMCS's own request limit) has passed; the
   delivery waits on the bus's retry queues meanwhile (``RetryLater``, not counted as a failure);
3. after the quiet time the invoice is looked up by the run key in its notes: found, it is recorded;
   not found, it is created.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.invoicer import recording, store
from services.invoicer.invoice_document import InvoiceDraft, notes_marker
from services.invoicer.metrics import OUTCOMES_UNCERTAIN
from services.invoicer.pricing import PricedUsage
from services.invoicer.settings import InvoicerSettings
from shared.bus.handler_context import HandlerContext
from shared.errors import PermanentError, RetryLater
from shared.events.billing import InvoiceCreated
from shared.ports import Whmcs
from shared.upstream.errors import UpstreamError, UpstreamOutcomeUnknown
from shared.upstream.whmcs_models import WhmcsInvoice, WhmcsInvoiceSummary


def take_turn(
    ctx: HandlerContext,
    whmcs: Whmcs,
    settings: InvoicerSettings,
    client_id: int,
    period: str,
    key: str,
    *,
    done: tuple[str, ...] = store.FINAL,
) -> int | None:
    """Claim the next attempt of (client, period) and settle an earlier one whose outcome is unknown.

    Returns the attempt this delivery now owns, or None when there is nothing left to do: the row is
    ``done``, or an earlier attempt's invoice was found and recorded. Raises ``RetryLater`` while the
    quiet time after a lost outcome has not passed.
    """
    with ctx.record_now() as session:
        turn = claim(ctx, session, settings, client_id, period, key, done=done)
    return follow(ctx, whmcs, turn, client_id, period, key)


def claim(
    ctx: HandlerContext,
    session: Session | Connection,
    settings: InvoicerSettings,
    client_id: int,
    period: str,
    key: str,
    *,
    done: tuple[str, ...] = store.FINAL,
) -> store.Claim:
    """``take_turn``'s claim, in ``session``: a transaction that commits before WHMCS is called, and
    before ``follow`` is (it may raise ``RetryLater``, which must not undo the claim's writes)."""
    return store.claim(session, client_id, period, key, ctx.now(), settings.uncertain_quiet, done=done)


def follow(ctx: HandlerContext, whmcs: Whmcs, turn: store.Claim, client_id: int, period: str, key: str) -> int | None:
    """What ``take_turn`` does once its claim committed: see there."""
    if turn.action == "done":
        ctx.log.info("nothing to do for this client and period", client_id=client_id, period=period, status=turn.status)
        return None
    if turn.action == "wait":
        raise RetryLater(
            f"the outcome of an earlier CreateInvoice for client {client_id}, {period} is unknown; "
            "looking it up once WHMCS has had time to finish",
            turn.wait_seconds,
        )
    if turn.look_up_first:
        try:
            earlier = whmcs.find_invoice_by_marker(client_id, notes_marker(key))
            invoice = whmcs.get_invoice(earlier.id) if earlier is not None else None
        except BaseException:
            with ctx.record_now() as session:
                store.mark_uncertain(session, client_id, period, since=None)  # nothing new was sent
            raise
        if earlier is not None and invoice is not None:
            record_found(ctx, earlier, invoice, period, key)
            return None
        ctx.log.info(
            "no invoice under the run key after the quiet time; creating it", client_id=client_id, period=period
        )
    return turn.attempts


def create(
    ctx: HandlerContext,
    whmcs: Whmcs,
    settings: InvoicerSettings,
    draft: InvoiceDraft,
    attempt: int,
    priced: PricedUsage | None = None,
    *,
    supersede: str | None = None,
) -> None:
    """Send CreateInvoice for the owned ``attempt`` and record the invoice (and, with ``supersede``, why
    a hold of the (client, period) nobody decided on no longer waits); a lost outcome marks the row
    uncertain, a refusal marks it failed, and either is raised to the bus."""
    client_id, period = draft.client_id, draft.period.key
    try:
        invoice_id = whmcs.create_invoice(
            client_id,
            draft.lines,
            date=draft.invoice_date,
            due_date=draft.due_date,
            notes=draft.notes,
            send_invoice=settings.invoice_send_email,
            payment_method=settings.invoice_payment_method,
        )
    except UpstreamOutcomeUnknown:
        OUTCOMES_UNCERTAIN.inc()
        with ctx.record_now() as session:
            store.mark_uncertain(session, client_id, period, since=ctx.now())
        ctx.log.warning(
            "CreateInvoice outcome unknown; the invoice is looked up after the quiet time",
            client_id=client_id,
            period=period,
            quiet_seconds=settings.whmcs_uncertain_quiet_seconds,
            attempt=attempt,
        )
        if attempt >= settings.whmcs_uncertain_max_attempts:
            raise  # WHMCS keeps failing this one: let the delivery's retries run out and park it for a person
        # The look-up after the quiet time settles it; a lost outcome is no failure of this delivery's own.
        raise RetryLater(
            f"CreateInvoice for client {client_id}, {period}: outcome unknown, looked up after the quiet time",
            settings.whmcs_uncertain_quiet_seconds,
        ) from None
    except UpstreamError:
        with ctx.record_now() as session:
            store.mark_failed(session, client_id, period, attempt)
        raise
    # ctx.writer: on PostgreSQL the handler's connection, no Session made; the InvoiceCreated outbox row
    # is a part of record_created's one statement there.
    invoice = invoice_created(draft, invoice_id)
    recording.record_created(
        ctx.writer,
        draft,
        invoice_id,
        priced,
        ctx.now(),
        supersede=supersede,
        outbox=ctx.outbox,
        created=ctx.emitted(invoice, key="invoice"),
    )
    log_recorded(ctx, invoice)


def invoice_created(draft: InvoiceDraft, invoice_id: int) -> InvoiceCreated:
    return InvoiceCreated(
        whmcs_client_id=draft.client_id,
        period=draft.period.key,
        invoice_id=invoice_id,
        currency=draft.currency,
        total=draft.total,
        line_count=len(draft.lines),
        due_date=draft.due_date,
        run_key=draft.run_key,
    )


def record_found(ctx: HandlerContext, found: WhmcsInvoiceSummary, invoice: WhmcsInvoice, period: str, key: str) -> None:
    """An earlier attempt created the invoice and its outcome was lost: record that one."""
    ctx.log.warning(
        "invoice found by its run key after an attempt whose outcome was lost; recording it",
        client_id=found.client_id,
        period=period,
        invoice_id=found.id,
    )
    currency = found.currency_code
    if not currency:
        raise PermanentError(f"WHMCS did not tell the currency of invoice {found.id}")
    record(
        ctx,
        InvoiceCreated(
            whmcs_client_id=found.client_id,
            period=period,
            invoice_id=found.id,
            currency=currency,
            total=sum((item.amount for item in invoice.items), Decimal(0)),
            line_count=len(invoice.items),
            due_date=found.due_date or invoice.due_date,
            run_key=key,
        ),
    )


def record(ctx: HandlerContext, invoice: InvoiceCreated) -> None:
    store.record_invoice(
        ctx.session,
        invoice.whmcs_client_id,
        invoice.period,
        invoice_id=invoice.invoice_id,
        currency=invoice.currency,
        total=invoice.total,
        line_count=invoice.line_count,
        due_date=invoice.due_date,
        now=ctx.now(),
    )
    announce(ctx, invoice)


def announce(ctx: HandlerContext, invoice: InvoiceCreated) -> None:
    """``InvoiceCreated`` into the outbox, and the operator's log line, once the ledger row is written."""
    ctx.emit(invoice, key="invoice")
    log_recorded(ctx, invoice)


def log_recorded(ctx: HandlerContext, invoice: InvoiceCreated) -> None:
    """The operator's one line per invoice."""
    ctx.log.info(
        "invoice recorded",
        client_id=invoice.whmcs_client_id,
        period=invoice.period,
        invoice_id=invoice.invoice_id,
        currency=invoice.currency,
        total=str(invoice.total),
    )
