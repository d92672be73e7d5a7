"""The account lifecycle's rule, without I/O: overdue → suspended, paid → active, closed → locked,
email in step; deciding again from the same standing changes nothing."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.invoicer.invoice_document import InvoiceDraft, notes_marker, run_key
from services.provisioner.settings import ProvisionerSettings
from services.provisioner.standing import (
    Policy,
    PostpayInvoice,
    Recorded,
    Standing,
    decide,
    is_postpay_notes,
    recorded_after,
)
from shared.periods import BillingPeriod

TODAY = date(2026, 12, 20)
GRACE = 14
STATUSES = ("Unpaid", "Paid", "Cancelled", "Refunded", "Collections", "Payment Pending", "Draft")

invoices = st.lists(
    st.builds(
        PostpayInvoice,
        invoice_id=st.integers(1, 40),
        status=st.sampled_from(STATUSES),
        due_date=st.one_of(st.none(), st.dates(TODAY - timedelta(days=60), TODAY + timedelta(days=30))),
        total=st.decimals(Decimal("0"), Decimal("999"), places=2),
        currency=st.sampled_from(["USD", "EUR", ""]),
    ),
    max_size=6,
    unique_by=lambda invoice: invoice.invoice_id,
).map(tuple)
standings = st.builds(
    Standing,
    client_status=st.sampled_from([None, "Active", "Inactive", "Closed"]),
    email=st.sampled_from(["a@example.com", "b@example.com", "A@example.com"]),
    invoices=invoices,
)
recordeds = st.builds(
    Recorded,
    status=st.sampled_from(["active", "suspended", "locked"]),
    overdue_invoice_ids=st.lists(st.integers(1, 40), max_size=4, unique=True).map(lambda ids: tuple(sorted(ids))),
    email=st.sampled_from(["a@example.com", "b@example.com"]),
    unconfirmed=st.booleans(),
)
policies = st.builds(Policy, grace_days=st.integers(1, 30), never_suspend=st.booleans())


def invoice(invoice_id: int, status: str, days_overdue: int, total: str = "12.34") -> PostpayInvoice:
    return PostpayInvoice(invoice_id, status, TODAY - timedelta(days=days_overdue), Decimal(total), "USD")


def active(**changes: object) -> Recorded:
    values: dict[str, object] = {"status": "active", "overdue_invoice_ids": (), "email": "a@example.com"}
    values.update(changes)
    return Recorded(**values)  # type: ignore[arg-type]


def client(*rows: PostpayInvoice, status: str = "Active", email: str = "a@example.com") -> Standing:
    return Standing(status, email, rows)


@given(recordeds, standings, policies)
def test_deciding_again_after_applying_changes_nothing(recorded: Recorded, standing: Standing, policy: Policy) -> None:
    """The heart of "exactly once however many ticks run": a second check of the same standing has
    nothing to write and nothing to announce."""
    first = decide(recorded, standing, policy, TODAY)
    second = decide(recorded_after(recorded, first), standing, policy, TODAY)
    assert not second.changed and not second.writes_upstream
    assert second.status == first.status


@given(recordeds, standings, policies)
def test_an_invoice_that_is_not_owed_never_suspends(recorded: Recorded, standing: Standing, policy: Policy) -> None:
    unowed = Standing(
        standing.client_status,
        standing.email,
        tuple(i for i in standing.invoices if i.status not in ("Unpaid", "Collections")),
    )
    assert decide(recorded, unowed, policy, TODAY).status != "suspended"


@given(recordeds, standings, st.integers(1, 30))
def test_a_client_on_the_never_suspend_list_is_never_suspended(
    recorded: Recorded, standing: Standing, grace: int
) -> None:
    assert decide(recorded, standing, Policy(grace, never_suspend=True), TODAY).status != "suspended"


@given(recordeds, standings, policies)
def test_a_closed_or_deleted_client_is_locked_whatever_it_owes(
    recorded: Recorded, standing: Standing, policy: Policy
) -> None:
    decision = decide(recorded, standing, policy, TODAY)
    assert (decision.status == "locked") == (standing.client_status in (None, "Closed"))


def test_an_unpaid_invoice_suspends_on_the_day_its_grace_ends_not_before() -> None:
    assert decide(active(), client(invoice(5, "Unpaid", GRACE - 1)), Policy(GRACE), TODAY).status == "active"
    decision = decide(active(), client(invoice(5, "Unpaid", GRACE)), Policy(GRACE), TODAY)
    assert decision.status == "suspended" and decision.status_changed
    assert decision.overdue_ids == (5,) and [i.invoice_id for i in decision.newly_overdue] == [5]
    assert "invoice #5 is 14 days past its due date 2026-12-06" in decision.reason


def test_collections_is_owed_but_payment_pending_is_not() -> None:
    assert decide(active(), client(invoice(5, "Collections", 30)), Policy(GRACE), TODAY).status == "suspended"
    assert decide(active(), client(invoice(5, "Payment Pending", 30)), Policy(GRACE), TODAY).status == "active"


def test_paying_every_overdue_invoice_reactivates_and_says_which_were_settled() -> None:
    suspended = Recorded("suspended", (5, 6), "a@example.com")
    partly = decide(suspended, client(invoice(5, "Paid", 30), invoice(6, "Unpaid", 20)), Policy(GRACE), TODAY)
    assert partly.status == "suspended" and not partly.status_changed
    assert partly.no_longer_overdue == ((5, "Paid"),) and partly.changed
    paid = decide(suspended, client(invoice(5, "Paid", 30), invoice(6, "Cancelled", 20)), Policy(GRACE), TODAY)
    assert paid.status == "active" and paid.previous_status == "suspended"
    assert paid.no_longer_overdue == ((5, "Paid"), (6, "Cancelled"))


def test_a_deleted_client_is_locked_and_keeps_what_was_known_to_be_overdue() -> None:
    decision = decide(Recorded("suspended", (5,), "a@example.com"), Standing(None, None), Policy(GRACE), TODAY)
    assert decision.status == "locked" and decision.overdue_ids == (5,) and decision.no_longer_overdue == ()
    assert decision.new_email is None and decision.reason == "the WHMCS client no longer exists"


def test_inactive_is_not_closed() -> None:
    """WHMCS marks clients without products Inactive by itself: post-pay customers have none."""
    assert decide(active(), client(status="Inactive"), Policy(GRACE), TODAY).status == "active"


def test_a_changed_email_is_followed_and_an_unchanged_one_is_not_rewritten() -> None:
    changed = decide(active(), client(email=" new@example.com "), Policy(GRACE), TODAY)
    assert (changed.new_email, changed.previous_email, changed.status_changed) == (
        "new@example.com",
        "a@example.com",
        False,
    )
    assert changed.writes_upstream and changed.changed
    same = decide(active(), client(), Policy(GRACE), TODAY)
    assert same.new_email is None and not same.writes_upstream


def test_an_unconfirmed_write_is_sent_again_without_announcing_anything() -> None:
    decision = decide(active(unconfirmed=True), client(), Policy(GRACE), TODAY)
    assert decision.reassert and decision.writes_upstream and not decision.changed


@given(st.integers(1, 10**9), st.integers(1, 10**9), st.sampled_from(["2026-01", "2026-11"]))
def test_the_invoicers_run_key_marks_an_invoice_as_postpay_for_its_own_client_only(
    client_id: int, other: int, period: str
) -> None:
    draft = InvoiceDraft(
        client_id, BillingPeriod.parse(period, "UTC"), run_key(client_id, period), "USD", (), TODAY, TODAY
    )
    assert is_postpay_notes(draft.notes, client_id)
    assert is_postpay_notes(f"other text {notes_marker(run_key(client_id, period))}", client_id)
    assert is_postpay_notes(draft.notes, other) == (client_id == other)
    assert not is_postpay_notes("postpay:12:2026-10 without brackets", 12)


def test_settings_read_the_never_suspend_list_and_need_an_invoice_placeholder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTPAY_ACCOUNTS_NEVER_SUSPEND", "12, 7,")
    monkeypatch.setenv("POSTPAY_ACCOUNTS_GRACE_DAYS", "21")
    settings = ProvisionerSettings()
    assert (settings.accounts_never_suspend, settings.accounts_grace_days) == ([12, 7], 21)
    assert settings.invoice_url(42) == "http://127.0.0.1:8482/viewinvoice.php?id=42"
    with pytest.raises(ValidationError, match="invoice_id"):
        ProvisionerSettings(accounts_invoice_url="https://billing.example.com/viewinvoice.php")
    with pytest.raises(ValidationError):
        ProvisionerSettings(accounts_grace_days=0)
