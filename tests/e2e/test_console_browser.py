"""The operator console clicked through in headless Chromium after a real month close: login, periods,
a period's invoices, an invoice's line provenance, the customer page, the replay dry run, a held invoice
released with a reason, parking lots and the audit log. A screenshot of each page at desktop width is saved in the test artifacts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from postpay.console.app import create_app
from postpay.console.server import console_for
from postpay.console.settings import ConsoleSettings
from postpay.operators import accounts
from postpay.operators.schema import console_definition
from services.invoicer.public import InvoicerSettings
from shared import migrations
from shared.bus.memory import InMemoryBus
from shared.bus.topology import Naming
from shared.clock import ManualClock
from shared.db import Database
from simulators.common import ServerThread
from tests.e2e.test_enrollment_browser import CHROMIUM_ARGS
from tests.support.billing import PRICES, BillingHarness, VmHistory
from tests.support.bus_helpers import wait_until
from tests.support.system import Upstreams

pytestmark = [pytest.mark.browser]

NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
PASSWORD = "Harbour-Signal-4410"


def test_an_operator_clicks_through_every_console_page(tmp_path: Path, artifacts_dir: Path) -> None:
    for stale in artifacts_dir.glob("*.png"):
        stale.unlink()
    db = Database(f"sqlite:///{tmp_path / 'postpay.sqlite'}")
    with Upstreams(now=NOW) as upstreams:
        clock = ManualClock(NOW)
        system = upstreams.system(
            InMemoryBus(retry_delays=[0.2], naming=Naming("e2e")),
            db,
            clock=clock,
            overrides=[InvoicerSettings(token_prices=PRICES)],
        )
        migrations.upgrade(db, console_definition())
        harness = BillingHarness(upstreams, system.bus, db, clock=clock).start(background=True)
        start = harness.period("2026-10").starts_at
        plan = harness.add_plan("S-2", 40, 1000)
        customer = harness.add_customer("EUR", [VmHistory("db-1", plan, [(start, start + timedelta(hours=31))])])
        broken = harness.add_plan("Broken", 1_000_000_000, 10**15)
        held = harness.add_customer("USD", [VmHistory("web-9", broken, [(start, start + timedelta(hours=10))])])
        harness.enroll([customer, held])
        harness.close("2026-10")
        harness.wait_settled("2026-10", 1)
        wait_until(lambda: harness.status("2026-10").held == 1, what="the absurd invoice held")
        (invoice,) = harness.invoices_of(customer.client_id)
        with db.transaction() as session:
            accounts.add_operator(session, "ada", PASSWORD, created_by="test", now=NOW)
        server = ServerThread(create_app(console_for(system, ConsoleSettings()))).start()
        shots = 0
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()

                def shot(name: str) -> None:
                    nonlocal shots
                    shots += 1
                    page.screenshot(path=str(artifacts_dir / f"{shots:02d}-{name}.png"), full_page=True)

                page.goto(f"{server.url}/")
                expect(page.get_by_role("heading", name="Operator login")).to_be_visible()
                shot("login")
                page.get_by_label("Username").fill("ada")
                page.get_by_label("Password").fill("wrong-password-000")
                page.get_by_role("button", name="Log in").click()
                expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
                page.get_by_label("Username").fill("ada")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Log in").click()
                expect(page.get_by_role("heading", name="Billing periods")).to_be_visible()
                expect(page.locator("tr", has_text="2026-10")).to_contain_text("closed")
                shot("periods")
                page.get_by_role("link", name="2026-10", exact=True).first.click()
                expect(page.get_by_role("heading", name="2026-10")).to_be_visible()
                shot("period")
                page.get_by_role("link", name=f"#{invoice.id}").click()
                expect(page.get_by_role("heading", name=f"Invoice #{invoice.id}")).to_be_visible()
                row = page.locator("tr", has_text="db-1").first
                expect(row).to_contain_text("applied: 31 h × 40 > 1000")
                expect(row).to_contain_text("EUR 0.90")
                shot("invoice-provenance")
                page.get_by_role("link", name=str(customer.client_id)).first.click()
                expect(page.get_by_text("billed since")).to_be_visible()
                shot("customer")
                page.goto(f"{server.url}/periods/2026-10/dry-run")
                expect(page.get_by_text(f"client {customer.client_id}: unchanged")).to_be_visible()
                shot("dry-run")
                page.get_by_role("link", name="Customers").click()
                shot("customers")
                page.get_by_role("link", name="Held invoices").click()
                expect(page.get_by_role("heading", name="Held invoices")).to_be_visible()
                row = page.locator("tr", has_text=str(held.client_id)).first
                expect(row).to_contain_text("total-over-ceiling")
                expect(row).to_contain_text("USD 10000000.00")
                shot("holds")
                row.get_by_role("link", name="held").click()
                expect(page.get_by_role("heading", name=f"Held: client {held.client_id}, 2026-10")).to_be_visible()
                expect(page.locator("tr", has_text="web-9").first).to_contain_text("1000000000")
                shot("hold")
                page.get_by_label("Why release").fill("plan confirmed by sales")
                page.get_by_role("button", name="Release: invoice it as computed").click()
                expect(page.locator("tr", has_text="decided")).to_contain_text("released by ada (console)")
                expect(page.get_by_role("button", name="Release: invoice it as computed")).to_have_count(0)
                (released,) = wait_until(lambda: harness.invoices_of(held.client_id), what="the released invoice")
                assert released.subtotal == Decimal("10000000.00")
                shot("hold-released")
                page.get_by_role("link", name="Parking lots").click()
                expect(page.get_by_role("heading", name="Parking lots")).to_be_visible()
                shot("parking-lots")
                page.get_by_role("link", name="invoicer.create_invoice").click()
                expect(page.get_by_text("Nothing parked here.")).to_be_visible()
                shot("parking-lot")
                page.get_by_role("link", name="Audit log").click()
                expect(page.locator("tr", has_text="login").first).to_be_visible()
                expect(page.locator("tr", has_text="holds.release")).to_contain_text("plan confirmed by sales")
                shot("audit")
                page.get_by_role("button", name="Log out").click()
                expect(page.get_by_role("heading", name="Operator login")).to_be_visible()
                browser.close()
        finally:
            server.stop()
            harness.stop()
            db.dispose()
    assert len(list(artifacts_dir.glob("*.png"))) == shots == 13
