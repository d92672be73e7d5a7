"""The invoicer against WHMCS's failures and its own settings: an unknown outcome never doubles an
invoice, the invoice options come from settings, zero usage is "nothing to bill" unless zero invoices are
wanted, and each currency rounds to its own minor unit."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rich.console import Console

from postpay.ops.reports import render_status
from services.invoicer.settings import InvoicerSettings
from shared.bus.memory import InMemoryBus
from shared.clock import ManualClock
from shared.db import Database
from simulators.whmcs.state import Currency
from tests.support.billing import PRICES, BillingHarness, VmHistory, assert_invoice_matches, expected_lines
from tests.support.bus_helpers import wait_until
from tests.support.system import Upstreams

PERIOD = "2026-10"
NOW = datetime(2026, 11, 1, 0, 15, tzinfo=UTC)
START = datetime(2026, 10, 1, tzinfo=UTC)
QUIET = 120.0


@pytest.mark.parametrize("then", ["server_error", "drop"])
def test_an_invoice_whose_creation_outcome_was_lost_is_found_by_its_run_key_not_created_again(
    then: str, memory_bus: InMemoryBus, database: Database
) -> None:
    clock = ManualClock(NOW)
    settings = InvoicerSettings(token_prices=PRICES, whmcs_uncertain_quiet_seconds=QUIET)
    with Upstreams(now=NOW) as upstreams:
        harness = BillingHarness(upstreams, memory_bus, database, clock=clock, invoicer=settings).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            customer = harness.add_customer("USD", [VmHistory("web", plan, [(START, None)])])
            harness.enroll([customer])
            # WHMCS creates the invoice, then the answer is lost.
            upstreams.whmcs.fault(kind="commit_then_fail", route="CreateInvoice", count=1, then=then)
            harness.close(PERIOD)
            # Nothing is looked up, let alone created, until the quiet time has passed.
            wait_until(
                lambda: (
                    harness.ledger(PERIOD).get(customer.client_id, None) is not None
                    and harness.ledger(PERIOD)[customer.client_id].status == "uncertain"
                ),
                what="uncertain",
            )
            assert harness.status(PERIOD).invoiced == 0
            clock.advance(seconds=QUIET + 1)
            harness.wait_settled(PERIOD, 1)
        finally:
            harness.stop()
        (invoice,) = harness.invoices_of(customer.client_id)
        assert upstreams.whmcs.calls["CreateInvoice"] == 1, "the retry looked the invoice up instead"
        entry = harness.ledger(PERIOD)[customer.client_id]
        assert (entry.status, entry.invoice_id, entry.attempts) == ("invoiced", invoice.id, 2)
        period = harness.period(PERIOD)
        assert_invoice_matches(invoice, expected_lines(customer, period, PRICES["USD"], now=NOW), period)
        assert harness.status(PERIOD).invoiced_totals == {"USD": invoice.subtotal}


def test_invoice_options_come_from_settings(memory_bus: InMemoryBus, sqlite_database: Database) -> None:
    settings = InvoicerSettings(
        token_prices=PRICES,
        invoice_due_days=30,
        invoice_send_email=False,
        invoice_payment_method="banktransfer",
        invoice_items_taxed=True,
    )
    with Upstreams(now=NOW) as upstreams:
        upstreams.whmcs.state.tax.taxrate = Decimal("19.000")
        harness = BillingHarness(
            upstreams, memory_bus, sqlite_database, clock=ManualClock(NOW), invoicer=settings
        ).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            customer = harness.add_customer(
                "EUR",
                [
                    VmHistory("web", plan, [(START, None)]),
                    VmHistory("db", plan, [(START, START + timedelta(hours=100))]),
                ],
            )
            harness.enroll([customer])
            harness.close(PERIOD)
            harness.wait_settled(PERIOD, 1)
        finally:
            harness.stop()
        (invoice,) = harness.invoices_of(customer.client_id)
        assert invoice.paymentmethod == "banktransfer"
        assert (invoice.date.isoformat(), invoice.duedate.isoformat()) == ("2026-11-01", "2026-12-01")
        assert all(item.taxed for item in invoice.items)
        assert invoice.subtotal == Decimal("4.50") + Decimal("0.63")
        assert invoice.tax == (invoice.subtotal * Decimal("0.19")).quantize(Decimal("0.01"))
        assert [e for e in upstreams.whmcs.state.emails if e.messagename == "Invoice Created"] == []


def test_zero_usage_is_nothing_to_bill_by_default_and_a_zero_invoice_when_configured(
    memory_bus: InMemoryBus, sqlite_database: Database
) -> None:
    with Upstreams(now=NOW) as upstreams:
        default = BillingHarness(upstreams, memory_bus, sqlite_database, clock=ManualClock(NOW)).start()
        try:
            free = default.add_plan("Free", 0, 0)
            tiny = default.add_plan("Tiny", 1, 1000)
            no_vms = default.add_customer("USD")
            free_vm = default.add_customer("USD", [VmHistory("free", free, [(START, None)])])
            rounds_to_zero = default.add_customer(
                "USD", [VmHistory("blip", tiny, [(START, START + timedelta(hours=4))])]
            )
            default.enroll([no_vms, free_vm, rounds_to_zero])
            default.close(PERIOD)
            status = default.wait_settled(PERIOD, 3)
        finally:
            default.stop()
        assert (status.invoiced, status.nothing_to_bill) == (0, 3)
        assert default.all_invoices() == []
        assert {e.status for e in default.ledger(PERIOD).values()} == {"nothing_to_bill"}

        zero = BillingHarness(
            upstreams,
            memory_bus,
            sqlite_database,
            clock=ManualClock(NOW),
            invoicer=InvoicerSettings(token_prices=PRICES, invoice_zero_usage=True),
        ).start()
        try:
            zero.replay(PERIOD)
            status = wait_until(lambda: (s := zero.status(PERIOD)).invoiced == 3 and s, what="zero invoices")
        finally:
            zero.stop()
    (empty,) = zero.invoices_of(no_vms.client_id)
    assert [(i.description, i.amount) for i in empty.items] == [
        ("SolusVM 2 usage: none, 2026-10-01 to 2026-10-31", Decimal("0.00"))
    ]
    (free_invoice,) = zero.invoices_of(free_vm.client_id)
    assert [i.amount for i in free_invoice.items] == [Decimal("0.00")] and "0 tokens" in free_invoice.items[
        0
    ].description
    (rounded,) = zero.invoices_of(rounds_to_zero.client_id)
    assert [i.amount for i in rounded.items] == [Decimal("0.00")] and "4 tokens" in rounded.items[0].description
    assert status.nothing_to_bill == 0


def test_each_currency_rounds_to_its_own_minor_unit(memory_bus: InMemoryBus, sqlite_database: Database) -> None:
    settings = InvoicerSettings(token_prices={**PRICES, "JPY": Decimal("0.15")}, currency_minor_units={"JPY": 0})
    with Upstreams(now=NOW) as upstreams:
        upstreams.whmcs.state.currencies[4] = Currency(4, "JPY", "¥", " JPY")
        harness = BillingHarness(
            upstreams, memory_bus, sqlite_database, clock=ManualClock(NOW), invoicer=settings
        ).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            yen = harness.add_customer(
                "USD",
                [
                    VmHistory("a", plan, [(START, START + timedelta(hours=1))]),
                    VmHistory("b", plan, [(START, START + timedelta(hours=3))]),
                ],
            )
            upstreams.whmcs.state.clients[yen.client_id].currency_id = 4
            harness.enroll([yen])
            harness.close(PERIOD)
            harness.wait_settled(PERIOD, 1)
        finally:
            harness.stop()
    (invoice,) = harness.invoices_of(yen.client_id)
    # 7 tokens × 0.15 = 1.05 → 1; 21 tokens × 0.15 = 3.15 → 3. The total is the sum of the rounded lines.
    assert [item.amount for item in invoice.items] == [Decimal("1.00"), Decimal("3.00")]
    assert invoice.subtotal == Decimal("4.00")
    assert harness.ledger(PERIOD)[yen.client_id].currency == "JPY"


def test_yen_is_billed_in_whole_yen_by_default_and_status_prints_it_so(
    memory_bus: InMemoryBus, sqlite_database: Database
) -> None:
    # No POSTPAY_CURRENCY_MINOR_UNITS: the minor unit comes from ISO 4217 (JPY has none).
    settings = InvoicerSettings(token_prices={**PRICES, "JPY": Decimal("0.15")})
    with Upstreams(now=NOW) as upstreams:
        upstreams.whmcs.state.currencies[4] = Currency(4, "JPY", "¥", " JPY")
        harness = BillingHarness(
            upstreams, memory_bus, sqlite_database, clock=ManualClock(NOW), invoicer=settings
        ).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            yen = harness.add_customer("USD", [VmHistory("a", plan, [(START, START + timedelta(hours=10))])])
            upstreams.whmcs.state.clients[yen.client_id].currency_id = 4
            harness.enroll([yen])
            harness.close(PERIOD)
            harness.wait_settled(PERIOD, 1)
        finally:
            harness.stop()
        (invoice,) = harness.invoices_of(yen.client_id)
        # 70 tokens × 0.15 = 10.50 → 11 yen, not 10.50.
        assert [item.amount for item in invoice.items] == [Decimal("11")]
        status = harness.status(PERIOD)
        assert status.invoiced_totals == {"JPY": Decimal("11")}
        printed = io.StringIO()
        render_status(Console(file=printed, width=200), status)
        rows = [line.split() for line in printed.getvalue().splitlines()]
        assert ["invoiced", "JPY", "11"] in rows, printed.getvalue()
