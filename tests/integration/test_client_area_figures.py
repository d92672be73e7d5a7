"""What an enrolled customer sees of their account in the client-area panel and on the account page:
the month's usage so far per VM (hours, tokens, amount) with an estimate for the month, from either usage
source, and the latest invoices with their pay links. The signup asks the usage collector by events and
never calls SolusVM 2 itself; a figure it cannot refresh is shown with its time, marked as old.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from postpay.ops.context import BILLING_SERVICES
from services.meter.settings import MeterSettings
from services.signup import schema as signup_schema
from services.signup import store as signup_store
from services.signup.figures_store import usage as usage_table
from services.usage_collector import meter_progress
from services.usage_collector.settings import UsageCollectorSettings
from shared.bus.memory import InMemoryBus
from shared.db import Database
from shared.events.accounts import AccountStanding, InvoicePaid
from shared.events.billing import InvoiceCreated
from simulators.faults import FaultRule
from tests.support.billing import BillingHarness, Customer, VmHistory
from tests.support.bus_helpers import publish, wait_until
from tests.support.enrollment import panel_headers, signup_settings, signup_web
from tests.support.metering import drive_meter
from tests.support.system import Upstreams

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
START = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with Upstreams(now=NOW) as running:
        yield running


def start(
    upstreams: Upstreams, bus: Any, db: Database, *, source: str = "endpoint"
) -> tuple[BillingHarness, TestClient]:
    settings = signup_settings(panel_usage_wait_seconds=3.0, panel_usage_max_age_seconds=300)
    extra: list[Any] = [settings]
    services: tuple[str, ...] = (*BILLING_SERVICES, "signup")
    if source == "meter":
        extra.append(MeterSettings(meter_interval_seconds=3600))
        services = (*services, "meter")
    harness = BillingHarness(
        upstreams,
        bus,
        db,
        clock=upstreams.solusvm_clock.now,
        services=services,
        collector=UsageCollectorSettings(usage_source=source),
        extra_settings=extra,
    )  # type: ignore[arg-type]
    signup = harness.context.services["signup"]
    harness.start()
    client = TestClient(signup_web(signup, db), base_url=settings.public_url)
    return harness, client


def customer_of(harness: BillingHarness) -> Customer:
    plan = harness.add_plan("S", 7, 5000)
    customer = harness.add_customer(
        "EUR",
        [
            VmHistory("web", plan, [(START - 5 * 24 * H, None)]),  # running all month
            VmHistory(
                "tmp",
                plan,
                [(START + 50 * H, START + 50 * H + timedelta(minutes=40))],  # 40 minutes, 3 Nov
                deleted_at=START + 50 * H + timedelta(minutes=40),
            ),
        ],
    )
    harness.enroll([customer])
    with harness.db.transaction() as session:  # the customer signed up through the signup service
        signup_id = uuid.uuid4()
        signup_store.insert_signup(
            session,
            signup_id=signup_id,
            email=customer.email,
            email_key=customer.email,
            name="Ada Lovelace",
            company="",
            encrypted_password="x",
            registration_ip=None,
            now=NOW,
            currency="EUR",
            country="DE",
        )
        session.execute(
            update(signup_schema.signups)
            .where(signup_schema.signups.c.id == signup_id)
            .values(
                stage="enrolled",
                whmcs_client_id=customer.client_id,
                solusvm_user_id=customer.solusvm_user_id,
                billing_currency="EUR",
                encrypted_password=None,
            )
        )
    return customer


def panel(client: TestClient, harness: BillingHarness, client_id: int) -> dict[str, Any]:
    answer = client.get(f"/api/v1/panel/{client_id}", headers=panel_headers(client_id, "panel", clock=harness.clock))
    assert answer.status_code == 200
    return answer.json()


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
def test_the_panel_shows_the_month_so_far_priced_by_the_billing_rules_with_an_estimate(
    upstreams: Upstreams, memory_bus: InMemoryBus, database: Database
) -> None:
    harness, client = start(upstreams, memory_bus, database)
    try:
        customer = customer_of(harness)
        shown = panel(client, harness, customer.client_id)
        html = shown["html"]
        assert shown["state"] == "active"
        assert "Usage as of 2026-11-15 12:00 (UTC)" in html and "may have changed" not in html
        # web: 14 days and 12 hours = 348 hours × 7 = 2436 tokens × 0.0009 = EUR 2.19 (rounded per line).
        assert "<td>web" in html and ">348<" in html and ">2436<" in html and "EUR 2.19" in html
        # tmp: 40 minutes bill one hour: 7 tokens = EUR 0.01.
        assert "<td>tmp" in html and "not running" in html and ">7<" in html and "EUR 0.01" in html
        assert ">2443<" in html and "EUR 2.20" in html
        # web running to the month's end: 348 + 372 hours would be 5040 tokens, capped at 5000 = EUR 4.50.
        assert "Estimated for the whole month" in html and "EUR 4.51" in html
        assert "No invoice yet" in html
    finally:
        harness.stop()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_latest_invoices_with_pay_links_and_an_old_figure_is_shown_with_its_time(
    upstreams: Upstreams, memory_bus: InMemoryBus, database: Database
) -> None:
    harness, client = start(upstreams, memory_bus, database)
    try:
        customer = customer_of(harness)
        panel(client, harness, customer.client_id)
        publish(
            memory_bus,
            InvoiceCreated(
                whmcs_client_id=customer.client_id,
                period="2026-10",
                invoice_id=77,
                currency="EUR",
                total=Decimal("3.21"),
                line_count=2,
                due_date=date(2026, 11, 15),
                run_key=f"postpay:{customer.client_id}:2026-10",
            ),
        )
        publish(
            memory_bus,
            InvoiceCreated(
                whmcs_client_id=customer.client_id,
                period="2026-09",
                invoice_id=61,
                currency="EUR",
                total=Decimal("1.00"),
                line_count=1,
                due_date=date(2026, 10, 15),
                run_key=f"postpay:{customer.client_id}:2026-09",
            ),
        )
        publish(
            memory_bus,
            InvoicePaid(
                whmcs_client_id=customer.client_id,
                invoice_id=61,
                status="Paid",
                standing=AccountStanding(status="active", revision=2),
            ),
        )

        def invoices_listed() -> str | None:
            html = panel(client, harness, customer.client_id)["html"]
            return html if "Invoice #77 for" in html and "2026-10-15 — paid" in html else None

        html = wait_until(invoices_listed, what="both invoices on the panel")
        assert html.index("Invoice #77 for 2026-10: EUR 3.21, due 2026-11-15") < html.index("Invoice #61")
        assert 'href="http://127.0.0.1:8482/viewinvoice.php?id=77">View and pay invoice #77' in html
        assert ">View invoice #61</a>" in html

        # Ten minutes later SolusVM 2 does not answer: the panel shows the figure it has, with its time.
        upstreams.solusvm_faults.add(FaultRule(kind="server_error", route="GET /api/v1/users/*/usage", count=50))
        upstreams.solusvm_clock.set(NOW + 10 * timedelta(minutes=1))
        html = panel(client, harness, customer.client_id)["html"]
        assert "Usage as of 2026-11-15 12:00 (UTC)" in html and "may have changed since" in html
        assert "EUR 2.20" in html
    finally:
        harness.stop()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_busy_panel_asks_the_usage_collector_once_not_at_every_view(
    upstreams: Upstreams, memory_bus: InMemoryBus, database: Database
) -> None:
    harness, client = start(upstreams, memory_bus, database)
    try:
        customer = customer_of(harness)
        solusvm, calls = harness.context.deps.solusvm, []
        real = solusvm.period_usage
        solusvm.period_usage = lambda *args, **kw: calls.append(args) or real(*args, **kw)
        for _ in range(5):
            panel(client, harness, customer.client_id)
        with harness.db.transaction() as session:
            row = session.execute(select(usage_table).where(usage_table.c.whmcs_client_id == customer.client_id)).one()
        assert row.as_of == NOW and row.requested_at == NOW
        assert len(calls) == 1, "five views within the figure's age ask SolusVM 2 once"
    finally:
        harness.stop()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_with_the_meter_source_the_figure_is_as_of_the_meters_last_complete_sweep(
    upstreams: Upstreams, memory_bus: InMemoryBus, database: Database
) -> None:
    upstreams.solusvm_clock.set(START - 2 * H)
    harness, client = start(upstreams, memory_bus, database, source="meter")
    try:
        customer = customer_of(harness)
        drive_meter(harness, upstreams.solusvm_clock, until=NOW + timedelta(minutes=30))
        wait_until(lambda: collected_past(harness, NOW - H), what="the collector holding the meter's sweeps")
        html = panel(client, harness, customer.client_id)["html"]
        # The meter swept hourly; its last complete sweep began at 12:00 at the latest.
        assert "Usage as of 2026-11-15 1" in html
        assert "<td>web" in html and "<td>tmp" in html and "EUR 0.01" in html
        assert "Estimated for the whole month" in html and "EUR 4.51" in html
    finally:
        harness.stop()


def collected_past(harness: BillingHarness, moment: datetime) -> bool:
    with harness.db.transaction() as session:
        meter_progress.advance(session)
        return meter_progress.coverage(session).covers(moment)
