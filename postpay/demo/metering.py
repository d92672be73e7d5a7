"""The meter in the demo: last month swept at accelerated time, and its bill beside the endpoint's.

The demo bills from the usage endpoint (its invoices are checked to the cent against the scenario);
the meter runs beside it, as a provider trying ``POSTPAY_USAGE_SOURCE=meter`` would run it, and its
view of each VM is printed next to the exact hours with the documented bound (docs/usage-sources.md).
Its poll loop is postpay's own; only its waits move the demo clock an interval at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rich.console import Console
from rich.table import Table

from postpay.demo.expected import seconds_inside
from postpay.demo.journey import Enrolled
from postpay.demo.stack import DEMO_METER_INTERVAL_SECONDS, DemoClock, Stack
from services.meter.public import meter_of
from services.usage_collector import public as collector
from services.usage_collector.public import UsageCollectorSettings, metered_period
from shared.periods import BillingPeriod


def meter_month(stack: Stack, clock: DemoClock, until: datetime, *, timeout: float) -> int:
    """Run the meter's loop until the demo clock passes ``until``, then wait for the collector to hold
    every sweep. Returns the number of sweeps."""
    assert stack.system is not None
    meter = meter_of(stack.system.service("meter"))
    stop = threading.Event()
    sweeps = 0

    def accelerate(stop_event: threading.Event, moment: datetime) -> None:
        nonlocal sweeps
        sweeps += 1
        if moment > until:
            stop_event.set()
        else:
            clock.move_to(moment)

    meter.run(stop, wait=accelerate)
    deadline = time.monotonic() + timeout
    while not _held_past(stack, until - timedelta(seconds=DEMO_METER_INTERVAL_SECONDS)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the collector did not record the meter's sweeps within {timeout:g} s")
        time.sleep(0.1)
    return sweeps


def _held_past(stack: Stack, moment: datetime) -> bool:
    assert stack.system is not None
    with stack.system.db.transaction() as session:
        collector.advance_meter(session)
        return collector.meter_coverage(session).covers(moment)


@dataclass(frozen=True)
class Row:
    customer: str
    vm: str
    exact: int
    metered: int
    bound: int


def meter_view(stack: Stack, enrolled: Sequence[Enrolled], period: BillingPeriod, now: datetime) -> list[Row]:
    """Per VM that ran: the exact hours, the meter's (observed estimate), and the documented bound."""
    assert stack.system is not None
    settings = UsageCollectorSettings(usage_source="meter")
    rows = []
    for customer in enrolled:
        with stack.system.db.transaction() as session:
            vms, _ = metered_period(session, customer.solusvm_user_id, period, settings)
        metered = {vm.name: vm.hours for vm in vms}
        for vm in customer.spec.vms:
            seconds = seconds_inside(vm, period.starts_at, period.ends_at, now)
            if seconds == 0 and vm.name not in metered:
                continue
            runs = sum(
                1 for start, end in vm.runs if start < period.ends_at and (end is None or end > period.starts_at)
            )
            bound = -(-runs * 2 * DEMO_METER_INTERVAL_SECONDS // 3600)
            rows.append(Row(customer.spec.name, vm.name, -(-seconds // 3600), metered.get(vm.name, 0), bound))
    return rows


def render_meter_view(console: Console, rows: Sequence[Row]) -> bool:
    """The table, and whether every VM is within its bound and never above the exact hours."""
    table = Table(title="the meter beside the exact hours (hourly sweeps)")
    for column in ("customer", "VM", "exact h", "metered h", "bound h", ""):
        table.add_column(column, justify="left" if column in ("customer", "VM", "") else "right")
    ok = True
    for row in rows:
        fine = 0 <= row.exact - row.metered <= row.bound
        ok = ok and fine
        table.add_row(
            row.customer, row.vm, str(row.exact), str(row.metered), str(row.bound), "✓" if fine else "outside the bound"
        )
    console.print(table)
    return ok
