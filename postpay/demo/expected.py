"""What each demo invoice must say, from the scenario alone.

The arithmetic is the invoice oracle's (``simulators.oracle``), which shares nothing with the invoicer
or the SolusVM 2 simulator's usage endpoint: if the product and the oracle disagree, the demo says so and
fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from postpay.demo.scenario import CustomerSpec, VmSpec
from shared.periods import BillingPeriod
from simulators.oracle import ServerUse, invoice_lines, invoice_total, running_seconds


@dataclass(frozen=True)
class ExpectedLine:
    vm: str
    plan: str
    hours: int
    tokens: int
    amount: Decimal


def seconds_inside(vm: VmSpec, start: datetime, end: datetime, now: datetime) -> int:
    return running_seconds(vm.runs, start, end, now)


def expected_lines(customer: CustomerSpec, period: BillingPeriod, price: Decimal, now: datetime) -> list[ExpectedLine]:
    """One line per VM that ran in the period, in the order the VMs were created."""
    vms = customer.vms
    servers = [
        ServerUse(n, vm.plan.tokens_per_hour, vm.plan.tokens_per_month, vm.runs, deleted_at=vm.deleted_at)
        for n, vm in enumerate(vms)
    ]
    lines = invoice_lines(
        servers, start=period.starts_at, end=period.ends_at, timezone=period.timezone, price=price, now=now
    )
    return [
        ExpectedLine(vms[line.key].name, vms[line.key].plan.name, line.hours, line.tokens, line.amount)
        for line in lines
    ]


def expected_total(lines: list[ExpectedLine]) -> Decimal:
    return invoice_total(lines)
