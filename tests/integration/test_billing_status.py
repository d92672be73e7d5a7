"""A currency without a token price is parked with that reason, never guessed; ``postpay period
status --follow`` follows a running close to its end on RabbitMQ + PostgreSQL, counting parked work;
after the price is configured, requeueing the parked message invoices the client once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

import postpay.commands.billing as billing_commands
from postpay.cli import app
from postpay.ops.status import count_parked
from services.invoicer.settings import InvoicerSettings
from shared.bus.parking import Selection
from shared.bus.rabbit import RabbitBus
from shared.clock import ManualClock
from shared.db import Database
from tests.support.billing import PRICES, BillingHarness, VmHistory
from tests.support.system import SOLUSVM_TOKEN, Upstreams

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]

PERIOD = "2025-10"
NOW = datetime(2025, 11, 1, 0, 20, tzinfo=UTC)
INVOICE_QUEUE = "invoicer.create_invoice"


def test_a_client_in_an_unpriced_currency_is_parked_and_followed_by_period_status(
    rabbit_bus: RabbitBus, postgres_database: Database, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_gbp = {code: price for code, price in PRICES.items() if code != "GBP"}
    with Upstreams(now=NOW) as upstreams:
        for name, value in {
            "POSTPAY_DATABASE_URL": f"{postgres_url}?options={quote(f'-csearch_path={postgres_database.schema}')}",
            "POSTPAY_AMQP_URL": rabbit_bus.url,
            "POSTPAY_BROKER_USERS": rabbit_bus.login_user,
            "POSTPAY_BUS_NAMESPACE": rabbit_bus.naming.namespace,
            "POSTPAY_SOLUSVM_URL": upstreams.solusvm_url,
            "POSTPAY_SOLUSVM_API_TOKEN": SOLUSVM_TOKEN,
            "POSTPAY_WHMCS_URL": upstreams.whmcs.url,
            "COLUMNS": "200",
        }.items():
            monkeypatch.setenv(name, value)
        harness = BillingHarness(
            upstreams,
            rabbit_bus,
            postgres_database,
            clock=ManualClock(NOW),
            invoicer=InvoicerSettings(token_prices=without_gbp),
        ).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            start = harness.period(PERIOD).starts_at
            customers = [
                harness.add_customer(currency, [VmHistory("vm", plan, [(start, start + timedelta(hours=10))])])
                for currency in ("USD", "GBP", "EUR")
            ]
            pound = customers[1]
            harness.enroll(customers)

            polled, original_status = threading.Event(), billing_commands.period_status

            def polling_status(*args: Any, **kwargs: Any) -> Any:
                polled.set()
                return original_status(*args, **kwargs)

            monkeypatch.setattr(billing_commands, "period_status", polling_status)
            followed: dict[str, str] = {}
            follower = threading.Thread(
                target=lambda: followed.update(
                    output=CliRunner()
                    .invoke(app, ["period", "status", PERIOD, "--follow", "--interval", "0.2"], catch_exceptions=False)
                    .output
                )
            )
            follower.start()
            assert polled.wait(30), "the follower never polled"
            harness.close(PERIOD)  # only now: the bar follows a close that runs while it watches
            follower.join(timeout=60)
            assert not follower.is_alive(), "--follow did not end when the close was complete"

            lot = rabbit_bus.parking_lot()
            (parked,) = lot.list(rabbit_bus.naming.parking_lot(INVOICE_QUEUE))
            assert parked.reason == "rejected"
            assert "no token price for currency GBP" in parked.error
            assert harness.invoices_of(pound.client_id) == []
            assert count_parked(rabbit_bus, harness.period(PERIOD)) == 1
            assert count_parked(rabbit_bus, harness.period("2025-09")) == 0
        finally:
            harness.stop()

        output = followed["output"]
        assert "invoiced 2" in output and "parked 1" in output, output
        rows = {tuple(line.split()[:-1]): line.split()[-1] for line in output.splitlines() if line.strip()}
        assert rows[("customers", "expected")] == "3"
        assert rows[("parked",)] == "1" and rows[("invoiced",)] == "2" and rows[("still", "to", "do")] == "0"

        # The operator adds the price and requeues: the client is invoiced once, in pounds.
        fixed = BillingHarness(
            upstreams,
            rabbit_bus,
            postgres_database,
            clock=ManualClock(NOW),
            invoicer=InvoicerSettings(token_prices=PRICES),
        ).start()
        try:
            moved = rabbit_bus.parking_lot().requeue(
                rabbit_bus.naming.parking_lot(INVOICE_QUEUE),
                Selection(everything=True),
                actor="test",
                reason="GBP priced",
            )
            assert len(moved) == 1
            fixed.wait_settled(PERIOD, 3)
        finally:
            fixed.stop()
        (invoice,) = fixed.invoices_of(pound.client_id)
        assert invoice.subtotal == (PRICES["GBP"] * 70).quantize(Decimal("0.01"))
        # The parked try failed before any CreateInvoice (no price for GBP), so it left no attempt behind:
        # the requeued one is the first, and needed no look-up in WHMCS.
        assert fixed.ledger(PERIOD)[pound.client_id].attempts == 1
