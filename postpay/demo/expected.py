"""What each demo invoice must say, from the scenario alone.

Deliberately its own arithmetic, sharing nothing with the invoicer or the SolusVM 2 simulator: running
seconds inside ``[start, end)``, whole hours rounded up per VM, tokens capped at the plan's monthly
price, each line priced and rounded half up to the cent. If the product and this disagree, the demo
says so and fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from postpay.demo.scenario import CustomerSpec, VmSpec
from shared.periods import BillingPeriod

CENT = Decimal("0.01")


@dataclass(frozen=True)
class ExpectedLine:
    vm: str
    plan: str
    hours: int
    tokens: int
    amount: Decimal


def seconds_inside(vm: VmSpec, start: datetime, end: datetime, now: datetime) -> int:
    total = 0
    for run_start, run_end in vm.runs:
        overlap = min(run_end or now, end) - max(run_start, start)
        total += max(0, int(overlap.total_seconds()))
    return total


def expected_lines(customer: CustomerSpec, period: BillingPeriod, price: Decimal, now: datetime) -> list[ExpectedLine]:
    """One line per VM that ran in the period, in the order the VMs were created."""
    lines = []
    for vm in customer.vms:
        seconds = seconds_inside(vm, period.starts_at, period.ends_at, now)
        if seconds == 0:
            continue
        hours = -(-seconds // 3600)
        tokens = min(hours * vm.plan.tokens_per_hour, vm.plan.tokens_per_month)
        lines.append(ExpectedLine(vm.name, vm.plan.name, hours, tokens, (price * tokens).quantize(CENT, ROUND_HALF_UP)))
    return lines


def expected_total(lines: list[ExpectedLine]) -> Decimal:
    return sum((line.amount for line in lines), Decimal("0.00"))
