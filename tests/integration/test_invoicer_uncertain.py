"""WHMCS finishing a CreateInvoice after postpay gave up on it: the ledger row is "uncertain since T",
and no second CreateInvoice is sent until a look-up made after the quiet time finds nothing. Meanwhile
the delivery waits on the retry queues without using up its attempts (RabbitMQ + PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.invoicer.settings import InvoicerSettings
from shared.bus.rabbit import RabbitBus
from shared.clock import ManualClock
from shared.db import Database
from shared.upstream.http import Timeouts
from tests.support.billing import PRICES, BillingHarness, VmHistory, assert_invoice_matches, expected_lines
from tests.support.bus_helpers import metric, wait_until
from tests.support.system import Upstreams

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]

PERIOD = "2026-10"
NOW = datetime(2026, 11, 1, 0, 15, tzinfo=UTC)
START = datetime(2026, 10, 1, tzinfo=UTC)
QUIET = 600.0
QUEUE = "invoicer.create_invoice"


def test_an_invoice_whmcs_finishes_after_the_invoicer_timed_out_is_made_once(
    rabbit_bus: RabbitBus, postgres_database: Database
) -> None:
    clock = ManualClock(NOW)
    settings = InvoicerSettings(token_prices=PRICES, whmcs_uncertain_quiet_seconds=QUIET)
    with Upstreams(now=NOW) as upstreams:
        harness = BillingHarness(
            upstreams,
            rabbit_bus,
            postgres_database,
            clock=clock,
            invoicer=settings,
            timeouts=Timeouts(connect=2, read=0.3),
        ).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            customer = harness.add_customer("EUR", [VmHistory("web", plan, [(START, None)])])
            harness.enroll([customer])
            # The invoicer gives up after 0.3 s; WHMCS writes the invoice 2 s after the request arrived.
            upstreams.whmcs.fault(kind="late_commit", route="CreateInvoice", count=1, hang_seconds=2.0)
            retried = metric("postpay_messages_retried_total", handler=QUEUE)
            harness.close(PERIOD)

            uncertain = wait_until(
                lambda: (
                    (e := harness.ledger(PERIOD).get(customer.client_id)) is not None and e.status == "uncertain" and e
                ),
                what="the ledger row uncertain",
            )
            assert uncertain.uncertain_since == NOW
            (late,) = wait_until(
                lambda: harness.invoices_of(customer.client_id),
                timeout=20,
                what="WHMCS finishing the invoice it was still working on",
            )
            # Retries keep coming (more than the two retry delays there are: waiting uses up no attempt)
            # and none of them creates or even looks anything up before the quiet time has passed.
            wait_until(
                lambda: metric("postpay_messages_retried_total", handler=QUEUE) >= retried + 4,
                timeout=30,
                what="the delivery retried while waiting",
            )
            assert upstreams.whmcs.calls["CreateInvoice"] == 1
            assert upstreams.whmcs.calls["GetInvoices"] == 0
            assert harness.ledger(PERIOD)[customer.client_id].status == "uncertain"

            clock.advance(seconds=QUIET - 5)
            wait_until(
                lambda: metric("postpay_messages_retried_total", handler=QUEUE) >= retried + 6,
                timeout=30,
                what="retries just before the quiet time ends",
            )
            assert upstreams.whmcs.calls["CreateInvoice"] == 1 and upstreams.whmcs.calls["GetInvoices"] == 0

            clock.advance(seconds=6)
            harness.wait_settled(PERIOD, 1, timeout=30)
        finally:
            harness.stop()

        assert [i.id for i in harness.invoices_of(customer.client_id)] == [late.id], "no second invoice"
        assert upstreams.whmcs.calls["CreateInvoice"] == 1
        entry = harness.ledger(PERIOD)[customer.client_id]
        assert (entry.status, entry.invoice_id, entry.attempts, entry.uncertain_since) == ("invoiced", late.id, 2, None)
        period = harness.period(PERIOD)
        assert_invoice_matches(late, expected_lines(customer, period, PRICES["EUR"], now=NOW), period)
        assert harness.status(PERIOD).invoiced_totals == {"EUR": late.subtotal}


def test_when_whmcs_never_wrote_it_the_invoice_is_created_after_the_quiet_time(
    rabbit_bus: RabbitBus, postgres_database: Database
) -> None:
    clock = ManualClock(NOW)
    settings = InvoicerSettings(token_prices=PRICES, whmcs_uncertain_quiet_seconds=QUIET)
    with Upstreams(now=NOW) as upstreams:
        harness = BillingHarness(
            upstreams,
            rabbit_bus,
            postgres_database,
            clock=clock,
            invoicer=settings,
            timeouts=Timeouts(connect=2, read=0.3),
        ).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            customer = harness.add_customer("USD", [VmHistory("web", plan, [(START, None)])])
            harness.enroll([customer])
            # A 504 after the request was sent: nothing was written, but postpay cannot know that.
            upstreams.whmcs.fault(kind="server_error", route="CreateInvoice", count=1, status=504)
            harness.close(PERIOD)
            wait_until(
                lambda: (e := harness.ledger(PERIOD).get(customer.client_id)) is not None and e.status == "uncertain",
                what="the ledger row uncertain",
            )
            assert harness.invoices_of(customer.client_id) == []
            clock.advance(seconds=QUIET + timedelta(seconds=1).total_seconds())
            harness.wait_settled(PERIOD, 1, timeout=30)
        finally:
            harness.stop()
        (invoice,) = harness.invoices_of(customer.client_id)
        assert upstreams.whmcs.calls["CreateInvoice"] == 2 and upstreams.whmcs.calls["GetInvoices"] >= 1
        assert harness.ledger(PERIOD)[customer.client_id].invoice_id == invoice.id


def test_lost_outcomes_in_a_row_wait_for_the_look_up_instead_of_parking_the_customer(
    rabbit_bus: RabbitBus, postgres_database: Database
) -> None:
    """More ambiguous CreateInvoice answers in a row than the bus has retries: each is settled by the
    look-up after the quiet time, not counted as a failure, so the customer is invoiced once, not parked."""
    clock = ManualClock(NOW)
    settings = InvoicerSettings(token_prices=PRICES, whmcs_uncertain_quiet_seconds=QUIET)
    lost = len(rabbit_bus.retry_delays) + 2
    with Upstreams(now=NOW) as upstreams:
        harness = BillingHarness(
            upstreams,
            rabbit_bus,
            postgres_database,
            clock=clock,
            invoicer=settings,
            timeouts=Timeouts(connect=2, read=0.3),
        ).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            customer = harness.add_customer("USD", [VmHistory("web", plan, [(START, None)])])
            harness.enroll([customer])
            upstreams.whmcs.fault(kind="server_error", route="CreateInvoice", count=lost, status=502)
            harness.close(PERIOD)
            for sent in range(1, lost + 1):
                wait_until(  # the predicate runs before the loop moves on
                    lambda: (
                        upstreams.whmcs.calls["CreateInvoice"] == sent  # noqa: B023
                        and (e := harness.ledger(PERIOD).get(customer.client_id)) is not None
                        and e.status == "uncertain"
                    ),
                    what=f"lost outcome {sent} recorded",
                )
                clock.advance(seconds=QUIET + 1)
            harness.wait_settled(PERIOD, 1, timeout=30)
        finally:
            harness.stop()
        (invoice,) = harness.invoices_of(customer.client_id)
        assert upstreams.whmcs.calls["CreateInvoice"] == lost + 1
        assert harness.ledger(PERIOD)[customer.client_id].invoice_id == invoice.id
        assert rabbit_bus.parking_lot().list(rabbit_bus.naming.parking_lot(QUEUE)) == []


def test_a_whmcs_that_keeps_losing_the_outcome_is_parked_for_a_person_after_the_cap(
    rabbit_bus: RabbitBus, postgres_database: Database
) -> None:
    clock = ManualClock(NOW)
    settings = InvoicerSettings(
        token_prices=PRICES, whmcs_uncertain_quiet_seconds=QUIET, whmcs_uncertain_max_attempts=2
    )
    with Upstreams(now=NOW) as upstreams:
        harness = BillingHarness(
            upstreams,
            rabbit_bus,
            postgres_database,
            clock=clock,
            invoicer=settings,
            timeouts=Timeouts(connect=2, read=0.3),
        ).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            customer = harness.add_customer("USD", [VmHistory("web", plan, [(START, None)])])
            harness.enroll([customer])
            upstreams.whmcs.fault(kind="server_error", route="CreateInvoice", count=100, status=502)
            harness.close(PERIOD)
            lot = rabbit_bus.naming.parking_lot(QUEUE)
            wait_until(lambda: upstreams.whmcs.calls["CreateInvoice"] == 1, what="the first lost outcome")

            def parked_after_each_quiet_time() -> list:
                clock.advance(seconds=QUIET + 1)  # each later attempt is a look-up and a CreateInvoice again
                return rabbit_bus.parking_lot().list(lot)

            (parked,) = wait_until(parked_after_each_quiet_time, timeout=30, what="the delivery parked")
        finally:
            harness.stop()
        assert "CreateInvoice" in parked.error
        # The cap's two lost outcomes, then the bus's own retries, each after a look-up that found nothing.
        assert upstreams.whmcs.calls["CreateInvoice"] == 2 + len(rabbit_bus.retry_delays)
        assert harness.invoices_of(customer.client_id) == []
        assert harness.ledger(PERIOD)[customer.client_id].status == "uncertain", "the look-up still comes first"
