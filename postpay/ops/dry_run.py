"""``postpay replay --dry-run``: what a replay would invoice, computed without changing anything.

For each customer of the period (the usage collector's enrolment list, read in keyset pages so memory
stays flat) it fetches the period's usage from SolusVM 2 (or, with ``POSTPAY_USAGE_SOURCE=meter``,
computes it from the meter's records) and the client's currency from WHMCS (reads only), prices it with the invoicer's own code, and compares the result with the invoice already issued
for that (client, period), if any. Nothing is written: not to postpay's tables, not to the outboxes,
not upstream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from services.invoicer import public as invoicer
from services.invoicer.public import (
    Decision,
    InvoiceDraft,
    InvoicerSettings,
    Line,
    LineChange,
    Reason,
    client_tariff,
    decide,
    diff_lines,
    has_differences,
    notes_marker,
    run_key,
)
from services.usage_collector.public import (
    Customer,
    MeterNotThere,
    UsageCollectorSettings,
    customers_page,
    metered_period,
    vm_usages,
)
from shared.db import Database
from shared.errors import PermanentError
from shared.events.metering import describe_metering
from shared.periods import BillingPeriod
from shared.upstream.errors import UpstreamError
from shared.upstream.whmcs_models import WhmcsInvoice

Verdict = Literal["would-create", "would-hold", "would-pause", "unchanged", "differs", "nothing-to-bill", "failed"]
PAGE_SIZE = 200


@dataclass(frozen=True)
class ClientPreview:
    client_id: int
    verdict: Verdict
    draft: InvoiceDraft | None = None
    issued: WhmcsInvoice | None = None
    changes: list[LineChange] = field(default_factory=list)
    error: str | None = None
    reasons: tuple[Reason, ...] = ()


def preview_period(
    db: Database,
    solusvm: Any,
    whmcs: Any,
    period: BillingPeriod,
    settings: InvoicerSettings,
    *,
    now: datetime,
    client_ids: Sequence[int] | None = None,
    collector: UsageCollectorSettings | None = None,
) -> Iterator[ClientPreview]:
    """One preview per customer enrolled before the period ended, by client id."""
    after = 0
    while True:
        with db.transaction() as session:
            page = customers_page(
                session, enrolled_before=period.ends_at, after=after, limit=PAGE_SIZE, only=client_ids
            )
        for customer in page:
            yield preview_client(db, solusvm, whmcs, period, settings, customer, now=now, collector=collector)
        if len(page) < PAGE_SIZE:
            return
        after = page[-1].whmcs_client_id


def preview_client(
    db: Database,
    solusvm: Any,
    whmcs: Any,
    period: BillingPeriod,
    settings: InvoicerSettings,
    customer: Customer,
    *,
    now: datetime,
    collector: UsageCollectorSettings | None = None,
) -> ClientPreview:
    client_id = customer.whmcs_client_id
    try:
        issued = _issued_invoice(db, whmcs, client_id, period)
        provenance = ""
        if collector is not None and collector.usage_source == "meter":
            with db.transaction() as session:
                vms, metering = metered_period(session, customer.solusvm_user_id, period, collector)
            provenance = describe_metering(metering)
        else:
            usage = solusvm.period_usage(customer.solusvm_user_id, period.starts_at, period.ends_at)
            vms = vm_usages(usage)
        decision = _decision(db, whmcs, client_id, period, settings, vms, now, provenance)
    except (PermanentError, UpstreamError, MeterNotThere) as exc:
        return ClientPreview(client_id, "failed", error=f"{type(exc).__name__}: {exc}")
    draft = decision.draft if decision.outcome != "nothing-to-bill" else None
    issued_lines = [Line(item.description, item.amount) for item in issued.items] if issued else []
    proposed_lines = [Line(line.description, line.amount) for line in draft.lines] if draft else []
    changes = diff_lines(issued_lines, proposed_lines) if issued else []
    if draft is None:
        verdict: Verdict = "differs" if issued else "nothing-to-bill"
    elif issued is None:
        verdict = (
            "would-hold" if decision.outcome == "hold" else "would-pause" if _paused(db, period) else "would-create"
        )
    else:
        same_currency = issued.currency_code in (None, draft.currency)
        verdict = "differs" if has_differences(changes) or not same_currency else "unchanged"
    return ClientPreview(client_id, verdict, draft, issued, changes, reasons=decision.reasons)


def _decision(
    db: Database,
    whmcs: Any,
    client_id: int,
    period: BillingPeriod,
    settings: InvoicerSettings,
    vms: tuple,
    now: datetime,
    provenance: str = "",
) -> Decision:
    """The invoicer's own decision (``decide``) on this usage: nothing to bill, an invoice, or a hold."""
    if sum(vm.tokens for vm in vms) == 0 and not settings.invoice_zero_usage:
        return Decision("nothing-to-bill")
    tariff = client_tariff(whmcs, client_id, settings)
    with db.transaction() as session:
        earlier = invoicer.largest_earlier_invoices(session, client_id, period.key)
    return decide(
        vms,
        period,
        tariff,
        settings,
        client_id=client_id,
        now=now,
        largest_earlier=earlier.get(tariff.currency),
        provenance=provenance,
    )


def _paused(db: Database, period: BillingPeriod) -> bool:
    with db.transaction() as session:
        pause = invoicer.pause_of(session, period.key)
    return pause is not None and pause.active


def _issued_invoice(db: Database, whmcs: Any, client_id: int, period: BillingPeriod) -> WhmcsInvoice | None:
    """The invoice of record: by the ledger, or by its run key when an attempt's outcome is unrecorded."""
    with db.transaction() as session:
        entry = invoicer.entry(session, client_id, period.key)
    if entry is None or entry.status not in (invoicer.INVOICED, *invoicer.BUSY, invoicer.RELEASING):
        return None
    if entry.status == invoicer.INVOICED and entry.invoice_id is not None:
        return whmcs.get_invoice(entry.invoice_id, include_currency=True)  # type: ignore[no-any-return]
    found = whmcs.find_invoice_by_marker(client_id, notes_marker(run_key(client_id, period.key)))
    return whmcs.get_invoice(found.id, include_currency=True) if found is not None else None
