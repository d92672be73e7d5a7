"""A closed month keeps its window. Closing, replaying or previewing it again under another
``POSTPAY_BILLING_TIMEZONE`` uses the window recorded at its first close; a new zone takes effect from
the first month not closed yet, which starts exactly where the month before it ended, so no hour is
billed twice and none is dropped (RabbitMQ + PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

from postpay.cli import app
from shared.bus.rabbit import RabbitBus
from shared.clock import ManualClock
from shared.db import Database
from simulators.whmcs.state import Invoice
from tests.support.billing import PRICES, BillingHarness, Customer, VmHistory, assert_invoice_matches, expected_lines
from tests.support.bus_helpers import metric, wait_until
from tests.support.system import SOLUSVM_TOKEN, Upstreams

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]

BERLIN = "Europe/Berlin"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def invoice_for(harness: BillingHarness, customer: Customer, key: str) -> Invoice | None:
    found = [i for i in harness.invoices_of(customer.client_id) if f"[postpay:{customer.client_id}:{key}]" in i.notes]
    assert len(found) <= 1, found
    return found[0] if found else None


def hours_billed(invoice: Invoice | None) -> int:
    if invoice is None:
        return 0
    (item,) = invoice.items
    return int(item.description.split(": ")[1].split(" hour")[0])


@pytest.mark.parametrize(("october", "november", "november_hours"), [("UTC", BERLIN, 719), (BERLIN, "UTC", 721)])
def test_a_zone_change_takes_effect_from_the_next_month_without_gap_or_overlap(
    october: str, november: str, november_hours: int, rabbit_bus: RabbitBus, postgres_database: Database
) -> None:
    now = utc(2027, 1, 1, 0, 20)
    with Upstreams(now=now) as upstreams:
        harness = BillingHarness(upstreams, rabbit_bus, postgres_database, clock=ManualClock(now)).start()
        try:
            metered = harness.add_plan("Metered", 100, 10_000_000)
            always = harness.add_customer("USD", [VmHistory("always", metered, [(utc(2026, 9, 1), None)])])
            # The hour that is October in UTC and November in Berlin.
            edge = harness.add_customer(
                "USD", [VmHistory("edge", metered, [(utc(2026, 10, 31, 23), utc(2026, 11, 1))])]
            )
            harness.enroll([always, edge])

            harness.close("2026-10", timezone=october)
            harness.wait_settled("2026-10", 2)
            harness.close("2026-11", timezone=november)
            harness.wait_settled("2026-11", 2)
            harness.close("2026-12", timezone=november)
            harness.wait_settled("2026-12", 1)
        finally:
            harness.stop()

        oct_, nov, dec = (harness.period(key) for key in ("2026-10", "2026-11", "2026-12"))
        months = [invoice_for(harness, always, key) for key in ("2026-10", "2026-11", "2026-12")]
        # Three months billed back to back are exactly the hours from October's start to December's end.
        assert sum(hours_billed(i) for i in months) == (dec.ends_at - oct_.starts_at) // timedelta(hours=1)
        assert [hours_billed(i) for i in months] == [oct_.hours, november_hours, dec.hours]
        assert (oct_.timezone, nov.timezone, dec.timezone) == (october, november, november)
        assert nov.starts_at == oct_.ends_at and dec.starts_at == nov.ends_at
        assert nov.hours == november_hours and not dec.shifted
        for invoice, period in zip(months, (oct_, nov, dec)):
            assert invoice is not None
            assert_invoice_matches(invoice, expected_lines(always, period, PRICES["USD"], now=now), period)
        # The edge hour is billed exactly once: in October if October ran to UTC's midnight, else in November.
        edge_months = [hours_billed(invoice_for(harness, edge, key)) for key in ("2026-10", "2026-11")]
        assert edge_months == ([1, 0] if october == "UTC" else [0, 1])


PERIOD = "2025-10"
NOW = utc(2025, 11, 1, 0, 20)


def test_closing_replaying_or_previewing_a_closed_month_under_another_zone_keeps_its_window(
    rabbit_bus: RabbitBus, postgres_database: Database, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Upstreams(now=NOW) as upstreams:
        for name, value in {
            "POSTPAY_DATABASE_URL": f"{postgres_url}?options={quote(f'-csearch_path={postgres_database.schema}')}",
            "POSTPAY_AMQP_URL": rabbit_bus.url,
            "POSTPAY_BUS_NAMESPACE": rabbit_bus.naming.namespace,
            "POSTPAY_SOLUSVM_URL": upstreams.solusvm_url,
            "POSTPAY_SOLUSVM_API_TOKEN": SOLUSVM_TOKEN,
            "POSTPAY_WHMCS_URL": upstreams.whmcs.url,
            "POSTPAY_TOKEN_PRICES": '{"USD": "0.0010"}',
            "POSTPAY_BILLING_TIMEZONE": "UTC",
            "COLUMNS": "220",
        }.items():
            monkeypatch.setenv(name, value)
        cli = CliRunner()

        def postpay(*args: str) -> str:
            result = cli.invoke(app, list(args), catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.output

        harness = BillingHarness(upstreams, rabbit_bus, postgres_database, clock=ManualClock(NOW)).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            steady = harness.add_customer("USD", [VmHistory("steady", plan, [(utc(2025, 9, 1), None)])])
            # Ran only in the hour that is October 1st in Berlin and still September in UTC.
            berlin_hour = harness.add_customer(
                "USD", [VmHistory("early", plan, [(utc(2025, 9, 30, 22), utc(2025, 9, 30, 23))])]
            )
            harness.enroll([steady, berlin_hour])
            first = postpay("close-period", PERIOD)
            harness.wait_settled(PERIOD, 2)
            assert "2025-10-01T00:00:00+00:00 to 2025-11-01T00:00:00+00:00" in first
            assert invoice_for(harness, berlin_hour, PERIOD) is None

            monkeypatch.setenv("POSTPAY_BILLING_TIMEZONE", BERLIN)
            duplicates = metric(
                "postpay_messages_handled_total", handler="usage_collector.fan_out", outcome="duplicate"
            )
            again = postpay("close-period", PERIOD)
            assert "was already closed" in again
            assert f"was closed in UTC: its recorded window is used, not POSTPAY_BILLING_TIMEZONE={BERLIN}" in again
            assert "2025-10-01T00:00:00+00:00 to 2025-11-01T00:00:00+00:00" in again
            wait_until(
                lambda: (
                    metric("postpay_messages_handled_total", handler="usage_collector.fan_out", outcome="duplicate")
                    > duplicates
                ),
                what="the repeated close skipped as a duplicate",
            )

            preview = postpay("replay", "--period", PERIOD, "--dry-run")
            assert f"client {berlin_hour.client_id}: nothing to bill" in preview
            assert "was closed in UTC" in preview

            priced = metric("postpay_messages_handled_total", handler="invoicer.create_invoice", outcome="done")
            replayed = postpay("replay", "--period", PERIOD)
            assert "2025-10-01T00:00:00+00:00 to 2025-11-01T00:00:00+00:00" in replayed
            wait_until(
                lambda: (
                    metric("postpay_messages_handled_total", handler="invoicer.create_invoice", outcome="done")
                    >= priced + 2
                ),
                timeout=60,
                what="the replay priced",
            )

            status = postpay("period", "status", PERIOD)
            assert "2025-10 (UTC: 2025-10-01T00:00:00+00:00 to 2025-11-01T00:00:00+00:00)" in status
        finally:
            harness.stop()

        assert invoice_for(harness, berlin_hour, PERIOD) is None, "the Berlin hour of September was billed"
        assert len(harness.invoices_of(steady.client_id)) == 1
        assert upstreams.whmcs.calls["CreateInvoice"] == 1


def test_a_month_never_closed_cannot_be_replayed(
    rabbit_bus: Any, postgres_database: Database, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "POSTPAY_DATABASE_URL", f"{postgres_url}?options={quote(f'-csearch_path={postgres_database.schema}')}"
    )
    monkeypatch.delenv("POSTPAY_AMQP_URL", raising=False)
    with Upstreams(now=NOW) as upstreams:
        harness = BillingHarness(upstreams, rabbit_bus, postgres_database, clock=ManualClock(NOW))
        harness.runtime.create_tables()
        result = CliRunner().invoke(app, ["replay", "--period", PERIOD])
    assert result.exit_code == 2 and "has not been closed" in result.output, result.output
