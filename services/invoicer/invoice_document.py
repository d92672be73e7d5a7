"""What the WHMCS invoice for one (client, period) says: its lines, dates, notes and run key.

Pure: the invoicer sends a draft to WHMCS, and ``postpay replay --dry-run`` prints the same draft, so
what an operator previews is exactly what would be created.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from services.invoicer.pricing import PricedUsage
from shared.events.billing import VmUsage
from shared.periods import BillingPeriod, zone
from shared.upstream.whmcs_models import InvoiceLine

_SERVER_REFERENCE = re.compile(r"\(#(\d+)[,)]")


def run_key(client_id: int, period: str) -> str:
    """The stable key of the one invoice a client gets for a period."""
    return f"postpay:{client_id}:{period}"


def notes_marker(key: str) -> str:
    """The run key as written into the invoice notes; bracketed, so no key is a substring of another."""
    return f"[{key}]"


def server_reference(description: str) -> int | None:
    """The SolusVM server id a line is about, read back from an issued invoice's description."""
    match = _SERVER_REFERENCE.search(description)
    return int(match.group(1)) if match else None


def period_span(period: BillingPeriod) -> str:
    return f"{period.first_day.isoformat()} to {period.last_day.isoformat()}"


def ran_span(vm: VmUsage, period: BillingPeriod) -> str:
    """The days (in the billing time zone) the VM ran within the period, e.g. "ran 2026-11-03"; the whole
    period when the usage does not say (a usage from before it carried the dates)."""
    if vm.ran_from is None or vm.ran_until is None:
        return period_span(period)
    local = zone(period.timezone)
    first = vm.ran_from.astimezone(local).date()
    # ran_until is the end of the last running instant: a VM that ran up to midnight ran the day before.
    last = max(first, (vm.ran_until - timedelta(microseconds=1)).astimezone(local).date())
    return f"ran {first.isoformat()}" if first == last else f"ran {first.isoformat()} to {last.isoformat()}"


def describe_vm(vm: VmUsage, period: BillingPeriod) -> str:
    hours = "hour" if vm.hours == 1 else "hours"
    tokens = "token" if vm.tokens == 1 else "tokens"
    return (
        f"{vm.name} (#{vm.server_id}, plan {vm.plan_name}): {vm.hours} {hours}, {vm.tokens} {tokens}, "
        f"{ran_span(vm, period)}"
    )


def describe_no_usage(period: BillingPeriod) -> str:
    return f"SolusVM 2 usage: none, {period_span(period)}"


@dataclass(frozen=True)
class InvoiceDraft:
    client_id: int
    period: BillingPeriod
    run_key: str
    currency: str
    lines: tuple[InvoiceLine, ...]
    invoice_date: date
    due_date: date
    # Where the usage came from, when it was not the usage endpoint (the meter's gaps, for one).
    provenance: str = ""

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def notes(self) -> str:
        provenance = f"{self.provenance} " if self.provenance else ""
        return (
            f"SolusVM 2 usage for {self.period.key} ({period_span(self.period)}, {self.period.timezone}). "
            f"{provenance}postpay run key: {notes_marker(self.run_key)}"
        )


def draft_invoice(
    client_id: int,
    period: BillingPeriod,
    priced: PricedUsage,
    *,
    now: datetime,
    due_days: int,
    taxed: bool,
    provenance: str = "",
) -> InvoiceDraft:
    """One line per VM; a usage with no VM at all (a zero invoice) gets one line saying so."""
    lines = tuple(InvoiceLine(describe_vm(line.vm, period), line.amount, taxed) for line in priced.vms) or (
        InvoiceLine(describe_no_usage(period), priced.tariff.zero, taxed),
    )
    return dated(client_id, period, priced.tariff.currency, lines, now=now, due_days=due_days, provenance=provenance)


def dated(
    client_id: int,
    period: BillingPeriod,
    currency: str,
    lines: Sequence[InvoiceLine],
    *,
    now: datetime,
    due_days: int,
    provenance: str = "",
) -> InvoiceDraft:
    """The draft of these lines issued ``now`` (a held invoice released later is dated the day it is released)."""
    invoice_date = now.astimezone(zone(period.timezone)).date()
    return InvoiceDraft(
        client_id=client_id,
        period=period,
        run_key=run_key(client_id, period.key),
        currency=currency,
        lines=tuple(lines),
        invoice_date=invoice_date,
        due_date=invoice_date + timedelta(days=due_days),
        provenance=provenance,
    )
