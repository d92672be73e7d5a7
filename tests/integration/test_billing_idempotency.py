"""Exactly one invoice per client per period, however often the period is closed or replayed, on
both buses and both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.scheduler.closing import Scheduler
from services.scheduler.settings import SchedulerSettings
from shared.clock import ManualClock
from shared.db import Database
from tests.support.billing import PRICES, BillingHarness, VmHistory, assert_invoice_matches, expected_lines
from tests.support.bus_helpers import metric, wait_until
from tests.support.system import Upstreams

NOW = datetime(2026, 11, 1, 0, 15, tzinfo=UTC)
CREATE_INVOICE = "invoicer.create_invoice"


def handled(queue: str) -> float:
    return metric("postpay_messages_handled_total", handler=queue, outcome="done")


def test_closing_a_period_three_times_and_replaying_it_invoices_each_client_once(bus: Any, database: Database) -> None:
    clock = ManualClock(NOW)
    with Upstreams(now=NOW) as upstreams:
        settings = SchedulerSettings(scheduler_first_period="2026-10")
        harness = BillingHarness(upstreams, bus, database, clock=clock, scheduler=settings, chunk_size=4).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            start = harness.period("2026-10").starts_at
            customers = [
                harness.add_customer(currency, [VmHistory(f"vm-{n}", plan, [(start + timedelta(hours=n), None)])])
                for n, currency in enumerate(["USD", "EUR", "GBP", "USD", "EUR"], start=1)
            ]
            idle = harness.add_customer("USD")
            harness.enroll([*customers, idle])

            scheduler = Scheduler(database, harness.context.services["scheduler"].outbox, settings, clock)
            (scheduled,) = scheduler.tick()
            assert scheduler.tick() == [], "a closed period is not closed again by the tick"
            again = [harness.close("2026-10"), harness.close("2026-10")]
            assert {e.event_id for e in again} == {scheduled.event_id}
            assert not any(e.newly_closed for e in again)
            harness.wait_settled("2026-10", len(customers) + 1)

            before = handled(CREATE_INVOICE)
            harness.replay("2026-10")
            harness.replay("2026-10", [customers[0].client_id, idle.client_id])
            wait_until(
                lambda: handled(CREATE_INVOICE) >= before + len(customers) + 1 + 2,
                timeout=60,
                what="both replays priced again",
            )
        finally:
            harness.stop()

        period = harness.period("2026-10")
        for customer in customers:
            (invoice,) = harness.invoices_of(customer.client_id)
            assert_invoice_matches(
                invoice, expected_lines(customer, period, PRICES[customer.currency], now=NOW), period
            )
        assert harness.invoices_of(idle.client_id) == []
        assert upstreams.whmcs.calls["CreateInvoice"] == len(customers)
        ledger = harness.ledger("2026-10")
        assert {entry.status for c, entry in ledger.items() if c != idle.client_id} == {"invoiced"}
        assert ledger[idle.client_id].status == "nothing_to_bill"
        # The replays found the invoices on record: no second attempt, not even a lookup in WHMCS.
        assert all(entry.attempts == 1 for c, entry in ledger.items() if c != idle.client_id)
        status = harness.status("2026-10")
        assert (status.expected, status.invoiced, status.nothing_to_bill) == (6, 5, 1)
