"""UsageCollected → one WHMCS invoice per (client, period), or a record that there is nothing to bill.

Why no crash can make a second invoice:

1. ``begin_attempt`` commits a ``pending`` ledger row (attempts + 1) *before* WHMCS is called;
2. the handler's own transaction then locks that row, so two deliveries for the same (client, period)
   take turns, and the second finds it ``invoiced``;
3. when the locked row shows more than one attempt, an earlier one may have reached WHMCS and died
   before its commit: the invoice is looked up by the run key in its notes before anything is created.

The lookup costs a paged GetInvoices read, so it only happens when an earlier attempt is on record.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from shared.bus.processing import HandlerContext
from shared.errors import PermanentError
from shared.events.billing import InvoiceCreated, NothingToBill, UsageCollected
from shared.events.metering import describe_metering
from shared.periods import BillingPeriod
from shared.upstream.whmcs_models import WhmcsInvoiceSummary

from services.invoicer import store
from services.invoicer.invoice_document import InvoiceDraft, draft_invoice, notes_marker, run_key
from services.invoicer.pricing import Tariff, price_usage, tariff_for
from services.invoicer.settings import InvoicerSettings


def create_invoice(event: UsageCollected, ctx: HandlerContext, whmcs: Any, settings: InvoicerSettings) -> None:
    period = _period(event)
    client_id = event.whmcs_client_id
    key = run_key(client_id, period.key)
    if event.total_tokens == 0 and not settings.invoice_zero_usage:
        _settle_nothing_to_bill(event, ctx, whmcs, key)
        return
    with ctx.separate_transaction() as session:
        attempts = store.begin_attempt(session, client_id, period.key, key, ctx.now())
    if attempts is None:
        ctx.log.info("already invoiced; nothing to do", client_id=client_id, period=period.key)
        return
    priced = price_usage(event.vms, client_tariff(whmcs, client_id, settings))
    if priced.total == 0 and not settings.invoice_zero_usage:
        _settle_nothing_to_bill(event, ctx, whmcs, key, own_attempts=1)
        return
    draft = draft_invoice(client_id, period, priced, now=ctx.now(), due_days=settings.invoice_due_days,
                          taxed=settings.invoice_items_taxed,
                          provenance=describe_metering(event.metering) if event.metering else "")
    locked = store.entry(ctx.session, client_id, period.key, lock=True)
    if locked is None or locked.status == store.INVOICED:
        ctx.log.info("invoiced meanwhile by another delivery", client_id=client_id, period=period.key)
        return
    earlier = _earlier_invoice(whmcs, client_id, key) if locked.attempts > 1 else None
    if earlier is not None:
        _record_earlier(ctx, whmcs, earlier, period, key)
        return
    invoice_id = whmcs.create_invoice(
        client_id,
        draft.lines,
        date=draft.invoice_date,
        due_date=draft.due_date,
        notes=draft.notes,
        send_invoice=settings.invoice_send_email,
        payment_method=settings.invoice_payment_method,
    )
    _record(ctx, invoice_created(draft, invoice_id))


def client_tariff(whmcs: Any, client_id: int, settings: InvoicerSettings) -> Tariff:
    """The tariff of the client's WHMCS currency (read each time: an operator may change it)."""
    client = whmcs.get_client(client_id)
    if client is None:
        raise PermanentError(f"WHMCS client {client_id} does not exist")
    if not client.currency_code:
        raise PermanentError(f"WHMCS did not tell the currency of client {client_id}")
    return tariff_for(client.currency_code, settings.token_prices, settings.currency_minor_units)


def _period(event: UsageCollected) -> BillingPeriod:
    try:
        return event.billing_period()
    except ValueError as exc:
        raise PermanentError(str(exc)) from exc


def _earlier_invoice(whmcs: Any, client_id: int, key: str) -> WhmcsInvoiceSummary | None:
    return whmcs.find_invoice_by_marker(client_id, notes_marker(key))  # type: ignore[no-any-return]


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


def _record_earlier(ctx: HandlerContext, whmcs: Any, found: WhmcsInvoiceSummary, period: BillingPeriod,
                    key: str) -> None:
    """An earlier attempt created the invoice and died before recording it: record that one."""
    invoice = whmcs.get_invoice(found.id)
    ctx.log.warning("invoice found by its run key after an interrupted attempt; recording it",
                    client_id=found.client_id, period=period.key, invoice_id=found.id)
    currency = found.currency_code
    if not currency:
        raise PermanentError(f"WHMCS did not tell the currency of invoice {found.id}")
    summary = InvoiceCreated(
        whmcs_client_id=found.client_id,
        period=period.key,
        invoice_id=found.id,
        currency=currency,
        total=sum((item.amount for item in invoice.items), Decimal(0)),
        line_count=len(invoice.items),
        due_date=found.due_date or invoice.due_date,
        run_key=key,
    )
    _record(ctx, summary)


def _record(ctx: HandlerContext, invoice: InvoiceCreated) -> None:
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
    ctx.emit(invoice, key="invoice")
    ctx.log.info("invoice recorded", client_id=invoice.whmcs_client_id, period=invoice.period,
                 invoice_id=invoice.invoice_id, currency=invoice.currency, total=str(invoice.total))


def _settle_nothing_to_bill(event: UsageCollected, ctx: HandlerContext, whmcs: Any, key: str,
                            own_attempts: int = 0) -> None:
    client_id, period = event.whmcs_client_id, event.period
    locked = store.entry(ctx.session, client_id, period, lock=True)
    if locked is not None and locked.status == store.INVOICED:
        return
    if locked is not None and locked.status == store.PENDING and locked.attempts > own_attempts:
        # An earlier delivery saw usage and may have reached WHMCS: that invoice stands.
        earlier = _earlier_invoice(whmcs, client_id, key)
        if earlier is not None:
            _record_earlier(ctx, whmcs, earlier, event.billing_period(), key)
            return
    if store.record_nothing_to_bill(ctx.session, client_id, period, key, ctx.now()):
        ctx.emit(NothingToBill(whmcs_client_id=client_id, period=period), key="nothing-to-bill")
        ctx.log.info("nothing to bill", client_id=client_id, period=period, total_tokens=event.total_tokens)
