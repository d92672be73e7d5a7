"""A whole month close for 200 customers on real RabbitMQ, PostgreSQL and both simulators, started by
the scheduler's own loop; every invoice checked line by line against amounts the test computes itself."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from services.scheduler.settings import SchedulerSettings
from shared.bus.rabbit import RabbitBus
from shared.clock import ManualClock
from shared.db import Database
from shared.periods import BillingPeriod
from tests.support.billing import (
    PRICES,
    BillingHarness,
    Customer,
    Plan,
    VmHistory,
    assert_invoice_matches,
    expected_lines,
)
from tests.support.system import Upstreams

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres, pytest.mark.slow]

CUSTOMERS = 200
LATE = 5  # enrolled after the month ended: not part of this close
TIMEZONE = "Europe/Berlin"


def random_history(rng: random.Random, plans: list[Plan], start: datetime, end: datetime) -> list[VmHistory]:
    """0 to 4 VMs: running all month, started or stopped inside it, short-lived, deleted, or idle."""
    vms = []
    for n in range(rng.choice([0, 1, 1, 2, 3, 4])):
        plan = rng.choice(plans)
        kind = rng.choice(["all month", "starts inside", "stops inside", "minutes", "deleted", "before"])
        offset = timedelta(seconds=rng.randrange(0, int((end - start).total_seconds()) - 3600))
        deleted_at = None
        if kind == "all month":
            runs = [(start - timedelta(days=rng.randint(1, 40)), None)]
        elif kind == "starts inside":
            runs = [(start + offset, None)]
        elif kind == "stops inside":
            runs = [(start - timedelta(hours=rng.randint(1, 100)), start + offset)]
        elif kind == "minutes":
            run_start = start + offset
            deleted_at = run_start + timedelta(minutes=rng.randint(1, 59))
            runs = [(run_start, deleted_at)]
        elif kind == "deleted":
            run_start = start + offset / 2
            deleted_at = run_start + timedelta(hours=rng.randint(1, 200), seconds=rng.randint(0, 3599))
            deleted_at = min(deleted_at, end + timedelta(minutes=10))
            runs = [(run_start, deleted_at)]
        else:
            runs = [(start - timedelta(days=30), start - timedelta(hours=rng.randint(1, 48)))]
        vms.append(VmHistory(f"vm-{n}-{kind.replace(' ', '-')}", plan, runs, deleted_at))
    return vms


def test_a_month_close_for_200_customers_invoices_every_one_exactly(
    rabbit_bus: RabbitBus, postgres_database: Database
) -> None:
    period = BillingPeriod.parse("2026-10", TIMEZONE)
    now = period.ends_at + timedelta(minutes=20)
    scheduler = SchedulerSettings(
        billing_timezone=TIMEZONE, scheduler_first_period="2026-10", scheduler_poll_seconds=0.1
    )
    rng = random.Random(20261031)
    with Upstreams(now=now) as upstreams:
        harness = BillingHarness(
            upstreams, rabbit_bus, postgres_database, clock=ManualClock(now), scheduler=scheduler, chunk_size=64
        )
        plans = [
            harness.add_plan("S", 7, 5000),
            harness.add_plan("M", 14, 10000),
            harness.add_plan("L", 28, 20000),
            harness.add_plan("Tiny", 1, 300),
        ]
        customers: list[Customer] = []
        for n in range(CUSTOMERS):
            currency = rng.choice(["USD", "EUR", "GBP"])
            enrolled = (
                period.ends_at + timedelta(minutes=1)
                if n < LATE
                else period.starts_at - timedelta(days=rng.randint(0, 90))
            )
            customers.append(
                harness.add_customer(
                    currency, random_history(rng, plans, period.starts_at, period.ends_at), enrolled_at=enrolled
                )
            )
        harness.start()
        try:
            harness.enroll(customers)
            # Starting the scheduler's loop is all it takes: its first tick closes October.
            harness.start_scheduler()
            status = harness.wait_settled("2026-10", CUSTOMERS - LATE, timeout=120)
        finally:
            harness.stop()

    assert (status.expected, status.requested, status.fanout_finished) == (CUSTOMERS - LATE, CUSTOMERS - LATE, True)
    billed = 0
    totals: dict[str, Decimal] = {}
    for customer in customers:
        invoices = harness.invoices_of(customer.client_id)
        expected = expected_lines(customer, period, PRICES[customer.currency], now=now)
        if customer.enrolled_at >= period.ends_at or sum(line.amount for line in expected) == 0:
            assert invoices == [], customer
            continue
        (invoice,) = invoices
        assert_invoice_matches(invoice, expected, period)
        assert invoice.status == "Unpaid" and invoice.duedate == invoice.date + timedelta(days=14)
        billed += 1
        totals[customer.currency] = totals.get(customer.currency, Decimal(0)) + invoice.subtotal
    assert billed > CUSTOMERS // 2
    assert upstreams.whmcs.calls["CreateInvoice"] == billed
    assert status.invoiced == billed and status.nothing_to_bill == CUSTOMERS - LATE - billed
    assert status.invoiced_totals == totals
