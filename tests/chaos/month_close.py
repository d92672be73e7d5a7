"""What every month close of tests/chaos/ shares: seeding thousands of customers with their VMs' history,
the oracle's expectations, waiting until nothing is left in flight, and the final check that each
customer has exactly one invoice matching the oracle line by line, with parking lots and outboxes empty.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from postpay.bootstrap import SERVICES, service_builder
from services.invoicer import store as invoicer_store
from shared.bus.rabbit import RabbitBus
from shared.dependencies import Dependencies
from shared.periods import BillingPeriod
from tests.chaos.chaos import add_customers
from tests.support.billing import (
    PRICES,
    BillingHarness,
    Customer,
    Plan,
    VmHistory,
    assert_invoice_matches,
    expected_lines,
)


def vm_history(rng: random.Random, n: int, plans: list[Plan], start: datetime, end: datetime) -> VmHistory:
    """A VM that ran inside the period: all of it, from or until a moment in it, minutes, or until deleted."""
    plan = rng.choice(plans)
    span = int((end - start).total_seconds())
    moment = start + timedelta(seconds=rng.randrange(60, span - 7200))
    kind = rng.choice(["all month", "starts inside", "stops inside", "minutes", "deleted"])
    deleted_at = None
    if kind == "all month":
        runs = [(start - timedelta(days=rng.randint(1, 60)), None)]
    elif kind == "starts inside":
        runs = [(moment, None)]
    elif kind == "stops inside":
        runs = [(start - timedelta(hours=rng.randint(1, 300)), moment)]
    elif kind == "minutes":
        deleted_at = moment + timedelta(minutes=rng.randint(1, 59), seconds=rng.randint(0, 59))
        runs = [(moment, deleted_at)]
    else:
        deleted_at = min(moment + timedelta(hours=rng.randint(1, 400), seconds=rng.randint(0, 3599)), end)
        runs = [(moment, deleted_at)]
    return VmHistory(f"vm-{n}-{kind.replace(' ', '-')}", plan, runs, deleted_at)


def seed_customers(
    harness: BillingHarness, rng: random.Random, count: int, vms_per_customer: int, period: BillingPeriod, now: datetime
) -> tuple[list[Customer], dict[int, list]]:
    """``count`` customers in both simulators, each with VMs that ran in ``period``, and the oracle's
    expected invoice lines of each (by WHMCS client id)."""
    plans = [
        harness.add_plan("S", 7, 5000),
        harness.add_plan("M", 14, 10000),
        harness.add_plan("L", 28, 20000),
        harness.add_plan("Tiny", 1, 300),
    ]
    customers = add_customers(
        harness,
        [
            (
                rng.choice(["USD", "EUR", "GBP"]),
                [vm_history(rng, n, plans, period.starts_at, period.ends_at) for n in range(vms_per_customer)],
                period.starts_at - timedelta(days=rng.randint(0, 90)),
            )
            for _ in range(count)
        ],
    )
    oracle = {c.client_id: expected_lines(c, period, PRICES[c.currency], now=now) for c in customers}
    assert all(len(lines) == vms_per_customer for lines in oracle.values()), "every VM ran in the period"
    return customers, oracle


def every_queue(bus: RabbitBus) -> list[str]:
    """Every queue of every postpay service (the processes declare them all), retry queues included."""
    subscriptions = [
        s for name in SERVICES for s in service_builder(name)(Dependencies(None, None, None)).subscriptions
    ]
    names = [bus.naming.queue(s.queue) for s in subscriptions]
    names += [bus.naming.retry_queue(s.queue, delay) for s in subscriptions for delay in bus.retry_delays]
    return names


def parked_counts(bus: RabbitBus) -> dict[str, int]:
    parking_lots = [name + ".parked" for name in every_queue(bus) if ".retry." not in name]
    return queue_depths(bus, parking_lots)


def queue_depths(bus: RabbitBus, queues: list[str]) -> dict[str, int]:
    depths = {}
    with bus.connection() as connection:
        channel = bus.open_channel(connection)
        for queue in queues:
            depths[queue] = channel.queue_declare(queue, passive=True).message_count
    return {name: depth for name, depth in depths.items() if depth}


def outbox_backlogs(harness: BillingHarness) -> dict[str, int]:
    with harness.db.transaction() as session:
        counts = {name: service.outbox.backlog(session) for name, service in harness.context.services.items()}
    return {name: count for name, count in counts.items() if count}


def wait_quiet(harness: BillingHarness, bus: RabbitBus, timeout: float = 60.0) -> None:
    """Until no outbox holds an event and no queue of the close holds a message."""
    queues = [bus.naming.queue(s.queue) for service in harness.context.services.values() for s in service.subscriptions]
    queues += [
        bus.naming.retry_queue(s.queue, d)
        for service in harness.context.services.values()
        for s in service.subscriptions
        for d in bus.retry_delays
    ]
    deadline = time.monotonic() + timeout
    while True:
        backlog, depths = outbox_backlogs(harness), queue_depths(bus, queues)
        if not backlog and not depths:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not quiet after the close: outboxes {backlog}, queues {depths}")
        time.sleep(0.3)


def check_every_customer_invoiced_once(
    harness: BillingHarness, customers: list[Customer], oracle: dict[int, list], period: BillingPeriod
) -> None:
    invoices_by_client = Counter(invoice.client_id for invoice in harness.all_invoices())
    missing = [c.client_id for c in customers if invoices_by_client[c.client_id] == 0]
    duplicated = {client: n for client, n in invoices_by_client.items() if n > 1}
    strangers = set(invoices_by_client) - {c.client_id for c in customers}
    assert not missing, f"{len(missing)} customers have no invoice, e.g. {missing[:10]}"
    assert not duplicated, (
        f"{len(duplicated)} customers have more than one invoice: {dict(list(duplicated.items())[:10])}"
    )
    assert not strangers, f"invoices for clients who are not customers: {sorted(strangers)[:10]}"

    totals: dict[str, Decimal] = {}
    ledger = harness.ledger(period.key)
    for customer in customers:
        (invoice,) = harness.invoices_of(customer.client_id)
        assert_invoice_matches(invoice, oracle[customer.client_id], period)
        assert invoice.status == "Unpaid" and invoice.duedate == invoice.date + timedelta(days=14), invoice
        entry = ledger[customer.client_id]
        assert (entry.status, entry.invoice_id, entry.total) == (invoicer_store.INVOICED, invoice.id, invoice.subtotal)
        totals[customer.currency] = totals.get(customer.currency, Decimal(0)) + invoice.subtotal

    assert not parked_counts(harness.bus), f"parking lots are not empty: {parked_counts(harness.bus)}"
    assert not outbox_backlogs(harness), f"outboxes are not drained: {outbox_backlogs(harness)}"
    status = harness.status(period.key)
    assert (status.invoiced, status.nothing_to_bill, status.fanout_finished) == (len(customers), 0, True), status
    assert status.invoiced_totals == totals
    with harness.db.transaction() as session:
        rows = session.execute(select(func.count()).select_from(invoicer_store.ledger)).scalar_one()
    assert rows == len(customers)


class Phases:
    """Prints how long each phase took (the CI budget is tight; a slow phase should be visible)."""

    def __init__(self, tag: str = "chaos") -> None:
        self.tag = tag
        self.last = time.monotonic()

    def done(self, what: str) -> None:
        now = time.monotonic()
        print(f"[{self.tag}] {what}: {now - self.last:.1f}s", flush=True)
        self.last = now
