"""The account lifecycle end to end, on the real services, bus and database: overdue → suspended once,
paid → reactivated once, a paid invoice, another product's invoice and the never-suspend list never
suspend; a closed or deleted client is locked; a changed email follows; the client-area panel says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from shared.bus.rabbit import RabbitBus
from shared.db import Database
from shared.events.billing import InvoiceCreated
from simulators.smtp import text_of
from simulators.solusvm.seeding import seed as seed_solusvm
from tests.support.accounts import LONG_AGO, AccountsHarness, Member
from tests.support.bus_helpers import publish, wait_until
from tests.support.enrollment import panel_headers, signup_web
from tests.support.system import Upstreams

DUE = date(2026, 11, 1)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with Upstreams() as running:
        yield running


@pytest.fixture
def clean_upstreams(upstreams: Upstreams) -> Iterator[Upstreams]:
    yield upstreams
    upstreams.whmcs.faults.clear()
    upstreams.solusvm_faults.clear()


def test_overdue_suspends_once_payment_reactivates_once_and_nothing_else_suspends(
    clean_upstreams: Upstreams, bus: Any, database: Database
) -> None:
    harness = AccountsHarness(clean_upstreams, bus, database).start()
    try:
        ada, bob, cleo, dan, eve = (harness.add_customer() for _ in range(5))
        harness.settings.accounts_never_suspend.append(cleo.client_id)  # the operator's allow-list
        ada_invoice = harness.add_invoice(ada, due=DUE)
        harness.pay(harness.add_invoice(bob, due=DUE))
        cleo_invoice = harness.add_invoice(cleo, due=DUE)
        harness.add_invoice(dan, due=DUE, postpay=False)  # another product's invoice: not postpay's business
        # An invoice known only from the invoicer's event (its notes carry no run key).
        eve_invoice = harness.add_invoice(eve, due=DUE, postpay=False)
        publish(
            bus,
            InvoiceCreated(
                whmcs_client_id=eve.client_id,
                period="2026-10",
                invoice_id=eve_invoice,
                currency="USD",
                total="12.34",
                line_count=1,
                due_date=DUE,
                run_key=f"postpay:{eve.client_id}:2026-10",
            ),
            producer="invoicer",
        )
        wait_until(lambda: eve_invoice in _recorded_invoices(harness, eve), what="InvoiceCreated recorded")

        harness.sync(date(2026, 11, 14))  # 13 days late: within the 14 days' grace
        assert [harness.solusvm_status(m) for m in (ada, bob, cleo, dan, eve)] == ["active"] * 5

        harness.sync(date(2026, 11, 15))
        harness.sync(date(2026, 11, 15))  # the same day's tick again: no second sync is even asked for
        harness.sync(date(2026, 11, 15), manual=True)  # an operator's sync, and the next days': no change
        harness.sync(date(2026, 11, 16))
        assert [harness.solusvm_status(m) for m in (ada, bob, cleo, dan, eve)] == [
            "suspended",
            "active",
            "active",
            "active",
            "suspended",
        ]
        assert harness.status_history(ada) == [("active", "suspended")]
        assert harness.status_history(eve) == [("active", "suspended")]
        assert [harness.status_history(m) for m in (bob, cleo, dan)] == [[], [], []]
        assert harness.account(ada).revision == 1, "one recorded change, however many checks ran"
        (notice,) = harness.wait_emails(ada, "suspended")
        assert f"Invoice #{ada_invoice}: USD 12.34, due 2026-11-01" in text_of(notice)
        assert f"https://billing.example.com/viewinvoice.php?id={ada_invoice}" in text_of(notice)
        panel = harness.panel(ada)
        assert panel is not None and (panel.status, panel.overdue_invoice_ids) == ("suspended", (ada_invoice,))
        # The allow-listed customer is reported overdue, and stays active.
        cleo_panel = harness.panel(cleo)
        assert cleo_panel is not None and (cleo_panel.status, cleo_panel.overdue_invoice_ids) == (
            "active",
            (cleo_invoice,),
        )
        assert harness.emails_to(cleo, "suspended") == []

        harness.pay(ada_invoice)
        harness.sync(date(2026, 11, 18))
        harness.sync(date(2026, 11, 19), manual=True)
        assert harness.solusvm_status(ada) == "active"
        assert harness.status_history(ada) == [("active", "suspended"), ("suspended", "active")]
        (welcome_back,) = harness.wait_emails(ada, "active again")
        assert f"invoice #{ada_invoice}" in text_of(welcome_back)
        panel = harness.panel(ada)
        assert panel is not None and (panel.status, panel.overdue_invoice_ids, panel.revision) == ("active", (), 2)
        assert len(harness.emails_to(ada, "suspended")) == 1
    finally:
        harness.stop()


def test_closed_or_deleted_client_is_locked_a_reopened_one_active_and_a_new_email_follows(
    clean_upstreams: Upstreams, rabbit_bus: RabbitBus, postgres_database: Database
) -> None:
    harness = AccountsHarness(clean_upstreams, rabbit_bus, postgres_database).start()
    try:
        fay, gus, hal, ivy = (harness.add_customer() for _ in range(4))
        harness.whmcs.update_client(fay.client_id, status="Closed")
        assert httpx.delete(f"{clean_upstreams.whmcs.url}/_sim/clients/{gus.client_id}").status_code == 200
        harness.whmcs.update_client(hal.client_id, email=f"new-{hal.email}")
        # ivy's new WHMCS email belongs to another SolusVM 2 user (say, an old test account): the
        # status still follows, the email waits (tried again every day) with a note for the operator.
        squatter = f"old-{ivy.email}"
        (squatter_id,) = seed_solusvm(clean_upstreams.solusvm_state, {"users": [{"email": squatter}]}, LONG_AGO)[
            "users"
        ]
        harness.whmcs.update_client(ivy.client_id, email=squatter)
        harness.sync(date(2026, 11, 20))

        assert [harness.solusvm_status(m) for m in (fay, gus, hal, ivy)] == ["locked", "locked", "active", "active"]
        assert harness.account(gus).reason == "the WHMCS client no longer exists"
        assert harness.solusvm_user(hal).email == f"new-{hal.email}"
        found = harness.deps.solusvm.find_user_by_email(f"new-{hal.email}")
        assert found is not None and found.id == hal.user_id, "exact-email lookups find the user again"
        assert harness.solusvm_user(ivy).email == ivy.email
        assert harness.account(ivy).note is not None and "email" in harness.account(ivy).note
        panel = harness.panel(fay)
        assert panel is not None and panel.status == "locked"

        # The operator deletes the old account: ivy's email goes through at the next check.
        clean_upstreams.solusvm_state.delete_user(squatter_id)
        harness.whmcs.update_client(fay.client_id, status="Active")
        harness.sync(date(2026, 11, 21))
        assert harness.solusvm_user(ivy).email == squatter
        assert harness.account(ivy).note is None
        assert harness.solusvm_status(fay) == "active"
        assert harness.status_history(fay) == [("active", "locked"), ("locked", "active")]
        harness.wait_emails(fay, "active again")
    finally:
        harness.stop()


def test_the_client_area_panel_shows_suspended_with_the_invoice_to_pay_then_locked(
    clean_upstreams: Upstreams, memory_bus: Any, sqlite_database: Database
) -> None:
    harness = AccountsHarness(clean_upstreams, memory_bus, sqlite_database).start()
    app = signup_web(harness.services["signup"], sqlite_database)
    try:
        ada = harness.add_customer()
        invoice = harness.add_invoice(ada, due=DUE)
        with TestClient(app) as web:
            assert _panel(web, ada, harness)["state"] == "active"
            harness.sync(date(2026, 11, 20))
            body = _panel(web, ada, harness)
            assert (body["state"], body["overdue_invoice_ids"]) == ("suspended", [invoice])
            assert body["title"] == f"Suspended — pay invoice #{invoice} to reactivate"
            assert f'href="viewinvoice.php?id={invoice}"' in body["html"]
            harness.whmcs.update_client(ada.client_id, status="Closed")
            harness.sync(date(2026, 11, 21))
            body = _panel(web, ada, harness)
            assert (body["state"], body["title"]) == ("locked", "SolusVM 2 account locked")
            assert "Log in to SolusVM 2" not in body["html"]
            assert _panel(web, Member(10**6, 1, "nobody@example.com"), harness)["state"] == "not_enrolled"
    finally:
        harness.stop()


def _panel(web: TestClient, member: Member, harness: AccountsHarness) -> dict[str, Any]:
    # The web app's clock is the harness's.
    response = web.get(
        f"/api/v1/panel/{member.client_id}", headers=panel_headers(member.client_id, "panel", clock=harness.clock)
    )
    assert response.status_code == 200, response.text
    return json.loads(response.text)


def _recorded_invoices(harness: AccountsHarness, member: Member) -> set[int]:
    from services.provisioner.store import invoice_ids_of

    with harness.db.transaction() as session:
        return invoice_ids_of(session, member.client_id)
