"""The provisioner's handlers on fakes: a SolusVM 2 user for each customer who accepted the terms (or
was imported), and each user kept in step with the customer's standing in WHMCS, the customer told."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.provisioner import store
from services.provisioner.settings import ProvisionerSettings
from shared.events.accounts import (
    AccountsSyncRequested,
    AccountStanding,
    CustomerStandingCheckRequested,
    OverdueInvoice,
    UserSuspended,
)
from shared.events.billing import InvoiceCreated
from shared.events.enrollment import AcceptedTerms, TermsAccepted
from shared.events.imports import CustomerImported
from shared.upstream.errors import UpstreamUnavailable
from shared.upstream.whmcs_models import InvoiceLine
from tests.fakes.service import NOW, ServiceUnderTest

TERMS = (AcceptedTerms(kind="postpay_terms", url="https://example.com/terms", version="1"),)
ENROLLED = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def provisioner() -> Iterator[ServiceUnderTest]:
    settings = ProvisionerSettings(accounts_grace_days=14, accounts_fanout_chunk_size=2)
    with ServiceUnderTest("provisioner", settings=[settings]) as service:
        yield service


def accepted(client_id: int, email: str) -> TermsAccepted:
    return TermsAccepted(
        signup_id=uuid.uuid4(), email=email, whmcs_client_id=client_id, accepted=TERMS, accepted_at=NOW
    )


def provisioned(service: ServiceUnderTest) -> list[tuple[int, int, str]]:
    return [(e.whmcs_client_id, e.solusvm_user_id, e.email) for e in service.published("UserProvisioned")]


def test_accepting_the_terms_creates_the_user_tied_to_the_client_once(provisioner: ServiceUnderTest) -> None:
    event = provisioner.envelope(accepted(7, "ada@example.com"))
    assert provisioner.deliver("provision_user", event).kind == "done"
    assert provisioner.deliver("provision_user", event).kind == "duplicate"
    assert provisioner.deliver("provision_user", accepted(7, "ada@example.com")).kind == "done"  # a replay

    (user,) = provisioner.solusvm.users.values()
    assert (user.email, user.billing_user_id, user.status) == ("ada@example.com", 7, "active")
    assert len(provisioner.solusvm.passwords[user.id]) >= 16  # a random password the customer never sees
    assert provisioner.solusvm.calls.count("find_or_create_user") == 1
    # The replay announces the same customer again (the same ids), for a consumer that missed it.
    assert provisioned(provisioner) == [(7, user.id, "ada@example.com")] * 2
    assert [(c.whmcs_client_id, c.solusvm_user_id) for c in provisioner.rows(store.customers)] == [(7, user.id)]


def test_an_existing_user_with_another_billing_id_is_tied_to_the_client(provisioner: ServiceUnderTest) -> None:
    existing = provisioner.solusvm.add_user("ada@example.com", billing_user_id=99)
    provisioner.deliver("provision_user", accepted(7, "ada@example.com"))
    assert provisioner.solusvm.users[existing.id].billing_user_id == 7
    assert provisioned(provisioner) == [(7, existing.id, "ada@example.com")]


def test_a_user_already_provisioned_for_another_client_is_refused(provisioner: ServiceUnderTest) -> None:
    provisioner.deliver("provision_user", accepted(7, "ada@example.com"))
    outcome = provisioner.deliver("provision_user", accepted(8, "ADA@example.com"))
    assert (outcome.kind, outcome.reason) == ("park", "rejected") and "client 7, not 8" in outcome.error
    assert len(provisioned(provisioner)) == 1


def test_an_imported_customer_adopts_its_existing_user_from_the_given_date(provisioner: ServiceUnderTest) -> None:
    user = provisioner.solusvm.add_user("old@example.com", billing_user_id=None)
    imported = CustomerImported(
        signup_id=uuid.uuid4(),
        email="old@example.com",
        whmcs_client_id=5,
        solusvm_user_id=user.id,
        enrolled_at=ENROLLED,
        imported_by="operator",
    )
    assert provisioner.deliver("adopt_user", imported).kind == "done"
    assert provisioner.solusvm.users[user.id].billing_user_id == 5
    assert "find_or_create_user" not in provisioner.solusvm.calls  # nothing is created for an import
    (event,) = provisioner.published("UserProvisioned")
    assert (event.whmcs_client_id, event.solusvm_user_id, event.enrolled_at) == (5, user.id, ENROLLED)

    missing = CustomerImported(
        signup_id=uuid.uuid4(),
        email="x@example.com",
        whmcs_client_id=6,
        solusvm_user_id=404,
        enrolled_at=ENROLLED,
        imported_by="operator",
    )
    assert provisioner.deliver("adopt_user", missing).kind == "park"


def test_a_sync_asks_for_one_check_per_customer(provisioner: ServiceUnderTest) -> None:
    for client_id in (1, 2, 3):
        provisioner.deliver("provision_user", accepted(client_id, f"c{client_id}@example.com"))
    sync = provisioner.envelope(AccountsSyncRequested(as_of=NOW))
    assert provisioner.deliver("fan_out_checks", sync).kind == "done"
    assert provisioner.deliver("fan_out_checks", sync).kind == "duplicate"
    checks = provisioner.published("CustomerStandingCheckRequested")
    assert [c.whmcs_client_id for c in checks] == [1, 2, 3] and all(c.as_of == NOW for c in checks)


def enrolled_with_invoice(service: ServiceUnderTest, *, due: date, notes: str | None = None) -> tuple[int, int, int]:
    client = service.whmcs.add_existing_client("ada@example.com")
    service.deliver("provision_user", accepted(client.id, "ada@example.com"))
    (user,) = service.solusvm.users.values()
    invoice_id = service.whmcs.create_invoice(
        client.id,
        [InvoiceLine("vm-1", Decimal("12.30"))],
        date=due - timedelta(days=14),
        due_date=due,
        notes=f"postpay run key: [postpay:{client.id}:2026-09]" if notes is None else notes,
        send_invoice=False,
        payment_method=None,
    )
    return client.id, user.id, invoice_id


def check(service: ServiceUnderTest, client_id: int, user_id: int) -> str:
    event = CustomerStandingCheckRequested(whmcs_client_id=client_id, solusvm_user_id=user_id, as_of=service.clock())
    return service.deliver("check_standing", event).kind


def test_an_invoice_overdue_past_the_grace_suspends_once_and_paying_it_reactivates(
    provisioner: ServiceUnderTest,
) -> None:
    client_id, user_id, invoice_id = enrolled_with_invoice(provisioner, due=NOW.date() - timedelta(days=13))
    assert check(provisioner, client_id, user_id) == "done"
    assert provisioner.solusvm.users[user_id].status == "active"  # 13 days: still inside the grace
    provisioner.clock.advance(days=1)

    assert check(provisioner, client_id, user_id) == "done"
    assert check(provisioner, client_id, user_id) == "done"  # the next tick: nothing new
    assert provisioner.solusvm.users[user_id].status == "suspended"
    assert provisioner.solusvm.calls.count("set_status") == 1
    (suspended,) = provisioner.published("UserSuspended")
    assert [i.invoice_id for i in suspended.overdue_invoices] == [invoice_id]
    assert [e.invoice_id for e in provisioner.published("InvoiceOverdue")] == [invoice_id]

    provisioner.whmcs.set_invoice_status(invoice_id, "Paid")
    assert check(provisioner, client_id, user_id) == "done"
    assert provisioner.solusvm.users[user_id].status == "active"
    (reactivated,) = provisioner.published("UserReactivated")
    assert (reactivated.previous_status, reactivated.settled_invoice_ids) == ("suspended", (invoice_id,))
    (account,) = provisioner.rows(store.accounts)
    assert account.status == "active"


def test_a_check_that_cannot_read_whmcs_decides_nothing(provisioner: ServiceUnderTest) -> None:
    client_id, user_id, _ = enrolled_with_invoice(provisioner, due=NOW.date() - timedelta(days=30))
    provisioner.whmcs.fail("get_invoices", UpstreamUnavailable("down", upstream="whmcs"))
    assert check(provisioner, client_id, user_id) == "retry"
    assert provisioner.solusvm.users[user_id].status == "active" and provisioner.published("UserSuspended") == []


def test_only_postpays_invoices_suspend_known_by_their_run_key_or_their_invoicecreated(
    provisioner: ServiceUnderTest,
) -> None:
    overdue = NOW.date() - timedelta(days=30)
    client_id, user_id, invoice_id = enrolled_with_invoice(provisioner, due=overdue, notes="a domain renewal")
    assert check(provisioner, client_id, user_id) == "done"
    assert provisioner.solusvm.users[user_id].status == "active"  # not postpay's invoice: none of its business

    recorded = InvoiceCreated(
        whmcs_client_id=client_id,
        period="2026-09",
        invoice_id=invoice_id,
        currency="USD",
        total=Decimal("12.30"),
        line_count=1,
        due_date=overdue,
        run_key="postpay:1:2026-09",
    )
    assert provisioner.deliver("record_invoice", recorded).kind == "done"
    assert check(provisioner, client_id, user_id) == "done"
    assert provisioner.solusvm.users[user_id].status == "suspended"


def test_a_closed_client_locks_the_user_and_a_new_email_in_whmcs_reaches_solusvm(provisioner: ServiceUnderTest) -> None:
    client_id, user_id, _ = enrolled_with_invoice(provisioner, due=NOW.date())
    provisioner.whmcs.update_client(client_id, email="ada.new@example.com")
    assert check(provisioner, client_id, user_id) == "done"
    assert provisioner.solusvm.users[user_id].email == "ada.new@example.com"
    (changed,) = provisioner.published("CustomerEmailChanged")
    assert (changed.email, changed.previous_email) == ("ada.new@example.com", "ada@example.com")

    provisioner.whmcs.update_client(client_id, status="Closed")
    assert check(provisioner, client_id, user_id) == "done"
    assert provisioner.solusvm.users[user_id].status == "locked"
    (locked,) = provisioner.published("UserLocked")
    assert locked.reason == "the WHMCS client is Closed" and locked.standing.status == "locked"
    assert provisioner.published("UserSuspended") == []


def test_a_suspended_customer_is_told_why_and_how_to_pay_once(provisioner: ServiceUnderTest) -> None:
    event = provisioner.envelope(
        UserSuspended(
            whmcs_client_id=7,
            solusvm_user_id=70,
            email="ada@example.com",
            suspended_at=NOW,
            overdue_invoices=(
                OverdueInvoice(invoice_id=31, due_date=date(2026, 10, 15), total=Decimal("12.30"), currency="EUR"),
            ),
            standing=AccountStanding(status="suspended", overdue_invoice_ids=(31,), revision=2),
        )
    )
    assert provisioner.deliver("notify_customer", event).kind == "done"
    assert provisioner.deliver("notify_customer", event).kind == "duplicate"
    ((email, key),) = provisioner.mailer.sent
    assert email.to == "ada@example.com" and "31" in email.text and "12.30" in email.text
    assert key is not None and str(event.event_id) in key
