"""What the invoicer does with one customer's usage of a period, decided without side effects: nothing
to bill, an invoice, or an invoice **held** for an operator, with the reasons.

The invoicer and ``postpay replay --dry-run`` both call ``decide``, so a preview is the decision itself.

Checks made before any CreateInvoice:

- physical: no VM has more hours than the period (its window, rounded up), nor more tokens than its
  monthly cap, nor tokens other than the charging rule gives; no count is negative;
- business: the total is at most the currency's ceiling (``POSTPAY_INVOICE_HOLD_ABOVE``, else the price
  of ``POSTPAY_INVOICE_HOLD_ABOVE_TOKENS`` tokens), and at most K times the client's largest earlier
  invoice in that currency, when there is one (``POSTPAY_INVOICE_HOLD_GROWTH_FACTOR``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from services.invoicer.holds_store import Reason
from services.invoicer.invoice_document import InvoiceDraft, draft_invoice
from services.invoicer.pricing import PricedUsage, Tariff, price_usage, vm_tokens
from services.invoicer.settings import InvoicerSettings
from shared.errors import PermanentError
from shared.events.billing import VmUsage
from shared.periods import BillingPeriod

Outcome = Literal["nothing-to-bill", "invoice", "hold"]


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    draft: InvoiceDraft | None = None
    reasons: tuple[Reason, ...] = ()
    # The pricing behind the draft, kept so each line's provenance can be recorded with the invoice.
    priced: PricedUsage | None = None


def physical_problems(vms: Sequence[VmUsage], period: BillingPeriod) -> list[Reason]:
    """What no real VM can report: more hours than the period has, tokens above the monthly cap or
    off the charging rule."""
    reasons = []
    for vm in vms:
        counts = {
            "hours": vm.hours,
            "tokens": vm.tokens,
            "tokens per hour": vm.tokens_per_hour,
            "tokens per month": vm.tokens_per_month,
        }
        negative = [name for name, value in counts.items() if value < 0]
        if negative:
            # The event schema refuses these already; a usage that got past it is not priced at all.
            raise PermanentError(f"VM {vm.server_id}: negative {', '.join(negative)} in the usage")
        if vm.hours > period.hours:
            reasons.append(
                Reason("hours-over-period", f"VM {vm.server_id}: {vm.hours} hours in a period of {period.hours} hours")
            )
        rule = vm_tokens(vm.hours, vm.tokens_per_hour, vm.tokens_per_month)
        if vm.tokens > vm.tokens_per_month:
            reasons.append(
                Reason(
                    "tokens-over-cap",
                    f"VM {vm.server_id}: {vm.tokens} tokens, above its monthly cap of {vm.tokens_per_month}",
                )
            )
        elif vm.tokens != rule:
            reasons.append(
                Reason(
                    "tokens-off-rule",
                    f"VM {vm.server_id}: {vm.tokens} tokens, but min({vm.hours} h × "
                    f"{vm.tokens_per_hour}, {vm.tokens_per_month}) = {rule}",
                )
            )
    return reasons


def ceiling(tariff: Tariff, settings: InvoicerSettings) -> Decimal:
    configured = settings.invoice_hold_above.get(tariff.currency)
    return configured if configured is not None else tariff.token_price * settings.invoice_hold_above_tokens


def business_problems(
    total: Decimal, tariff: Tariff, settings: InvoicerSettings, largest_earlier: Decimal | None
) -> list[Reason]:
    """An amount no customer is billed without a person looking: above the ceiling, or a jump."""
    reasons = []
    limit = ceiling(tariff, settings)
    if total > limit:
        reasons.append(Reason("total-over-ceiling", f"total {tariff.currency} {total} is above the ceiling of {limit}"))
    factor = settings.invoice_hold_growth_factor
    floor = settings.invoice_hold_growth_floor.get(tariff.currency, Decimal(0))
    if largest_earlier is not None and largest_earlier > 0 and total > floor and total > factor * largest_earlier:
        reasons.append(
            Reason(
                "growth",
                f"total {tariff.currency} {total} is more than {factor}× the client's "
                f"largest earlier invoice ({largest_earlier})",
            )
        )
    return reasons


def decide(
    vms: Sequence[VmUsage],
    period: BillingPeriod,
    tariff: Tariff,
    settings: InvoicerSettings,
    *,
    client_id: int,
    now: datetime,
    largest_earlier: Decimal | None,
    provenance: str = "",
) -> Decision:
    """Nothing to bill, the invoice to create, or the invoice to hold and why."""
    if sum(vm.tokens for vm in vms) == 0 and not settings.invoice_zero_usage:
        return Decision("nothing-to-bill")
    physical = physical_problems(vms, period)
    priced = price_usage(vms, tariff, check=False)
    if priced.total == 0 and not settings.invoice_zero_usage:
        return Decision("nothing-to-bill")
    draft = draft_invoice(
        client_id,
        period,
        priced,
        now=now,
        due_days=settings.invoice_due_days,
        taxed=settings.invoice_items_taxed,
        provenance=provenance,
    )
    reasons = physical + business_problems(draft.total, tariff, settings, largest_earlier)
    return Decision("hold" if reasons else "invoice", draft, tuple(reasons), priced)
