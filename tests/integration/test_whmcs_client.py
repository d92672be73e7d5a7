"""The WHMCS client against the simulator on loopback, under every injectable fault (§8.1, §10).

Calls are counted by the simulator per action, so "retried" and "sent once" are facts about the wire.
Waits between retries are recorded by an injected sleep instead of slept.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from shared.upstream.errors import (
    UpstreamAuthError,
    UpstreamNotFound,
    UpstreamOutcomeUnknown,
    UpstreamRateLimited,
    UpstreamUnavailable,
    UpstreamValidationError,
)
from shared.upstream.http import Timeouts
from shared.upstream.retries import RetryPolicy
from shared.upstream.whmcs import WhmcsClient
from shared.upstream.whmcs_models import InvoiceLine
from simulators.whmcs.testing import RunningWhmcs
from tests.support.bus_helpers import wait_until
from tests.support.whmcs import WHMCS_NOW

NOW = WHMCS_NOW
FAST_RETRY = RetryPolicy(max_attempts=3, deadline_seconds=5, initial_backoff=0.01, max_backoff=0.02, max_retry_after=5)
EMAIL = "jane@example.com"
LINES = [InvoiceLine("vm-1 (720 h)", Decimal("7.20"), taxed=True), InvoiceLine("vm-2 (10 h)", Decimal("0.10"))]
FAILURE_MODES = ["server_error", "timeout", "drop"]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(whmcs: RunningWhmcs, sleeps: list[float]) -> Iterator[WhmcsClient]:
    with make_client(whmcs, sleeps) as whmcs_client:
        yield whmcs_client


def make_client(whmcs: RunningWhmcs, sleeps: list[float] | None = None, **options: Any) -> WhmcsClient:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("timeouts", Timeouts(connect=1.0, read=0.5))
    recorded = sleeps if sleeps is not None else []
    return WhmcsClient(
        whmcs.url, SecretStr(whmcs.identifier), SecretStr(whmcs.secret), sleep=recorded.append, **options
    )


def signup(client: WhmcsClient, email: str = EMAIL, **extra: Any) -> Any:
    return client.find_or_add_client(
        firstname="Jane", lastname="Doe", email=email, password=SecretStr("correct horse"), **extra
    )


def create_invoice(client: WhmcsClient, client_id: int, marker: str) -> int:
    return client.create_invoice(
        client_id,
        LINES,
        date=date(2026, 2, 1),
        due_date=date(2026, 2, 15),
        notes=f"postpay {marker}",
        send_invoice=True,
        payment_method="mailin",
    )


def clients_with_email(whmcs: RunningWhmcs, email: str) -> list[Any]:
    return [c for c in whmcs.state.clients.values() if c.email.lower() == email.lower()]


# -- the happy path ------------------------------------------------------------------------------


def test_find_or_add_creates_once_then_finds(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    created = signup(client, currency_id=2, companyname="Acme")
    assert (created.email, created.companyname, created.currency_id, created.currency_code) == (EMAIL, "Acme", 2, "EUR")
    assert created.allow_sso is True and created.status == "Active"
    again = signup(client, email="JANE@example.com")
    assert again.id == created.id
    assert whmcs.calls["AddClient"] == 1 and len(whmcs.state.clients) == 1
    assert whmcs.state.emails == []  # noemail=True by default: postpay sends its own mail


def test_invoice_lifecycle(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    customer = signup(client, currency_id=2)
    invoice_id = create_invoice(client, customer.id, "run=2026-01")
    invoice = client.get_invoice(invoice_id, include_currency=True)
    assert [(i.description, i.amount, i.taxed) for i in invoice.items] == [
        ("vm-1 (720 h)", Decimal("7.20"), True),
        ("vm-2 (10 h)", Decimal("0.10"), False),
    ]
    assert (invoice.total, invoice.balance, invoice.status, invoice.currency_code) == (
        Decimal("7.30"),
        Decimal("7.30"),
        "Unpaid",
        "EUR",
    )
    assert invoice.date_paid is None and invoice.due_date == date(2026, 2, 15)
    client.add_invoice_payment(
        invoice_id,
        transid="bank-1",
        gateway="banktransfer",
        amount=Decimal("3.00"),
        date=datetime(2026, 2, 11, 9, tzinfo=UTC),
    )
    assert client.get_invoice(invoice_id).balance == Decimal("4.30")
    client.add_invoice_payment(invoice_id, transid="bank-2", gateway="banktransfer", date=NOW)
    paid = client.get_invoice(invoice_id)
    assert (paid.status, paid.balance, paid.date_paid) == ("Paid", Decimal("0.00"), NOW)
    assert [t.amount_in for t in paid.transactions] == [Decimal("3.00"), Decimal("4.30")]


def test_update_invoice_and_cancelled_invoices_take_no_payment(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    invoice_id = create_invoice(client, signup(client).id, "run=x")
    client.update_invoice(invoice_id, status="Cancelled", notes="postpay run=x (cancelled)")
    assert client.get_invoice(invoice_id).status == "Cancelled"
    with pytest.raises(UpstreamValidationError, match="Cancelled"):
        client.add_invoice_payment(invoice_id, transid="t", gateway="mailin", date=NOW)


def test_get_invoices_reads_every_page_and_filters_overdue(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    customer = signup(client)
    for n in range(230):
        whmcs.call(
            "CreateInvoice",
            userid=customer.id,
            itemdescription1="x",
            itemamount1="1.00",
            notes=f"n{n}",
            duedate="2026-02-01" if n % 10 == 0 else "2026-03-01",
        )
    whmcs.calls.clear()
    invoices = client.get_invoices(customer.id)
    assert [inv.notes for inv in invoices] == [f"n{n}" for n in range(230)]
    assert whmcs.calls["GetInvoices"] == 3  # pages of 100
    overdue = client.get_invoices(customer.id, status="Overdue")
    assert len(overdue) == 23 and all(inv.status == "Unpaid" for inv in overdue)


def test_find_invoice_by_marker_only_looks_at_that_clients_notes(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    jane, john = signup(client), signup(client, "john@example.com")
    create_invoice(client, john.id, "run=2026-01")
    assert client.find_invoice_by_marker(jane.id, "run=2026-01") is None
    mine = create_invoice(client, jane.id, "run=2026-01")
    found = client.find_invoice_by_marker(jane.id, "run=2026-01")
    assert found is not None and found.id == mine and found.total == Decimal("7.30")
    assert client.find_invoice_by_marker(jane.id, "run=2026-02") is None


def test_sso_token_signs_in_once(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    customer = signup(client)
    token = client.create_sso_token(customer.id, destination="sso:custom_redirect", redirect_path="index.php?m=postpay")
    with httpx.Client(follow_redirects=False) as browser:
        first = browser.get(token.redirect_url)
        assert (first.status_code, first.headers["location"]) == (302, "/index.php?m=postpay")
        assert browser.get(token.redirect_url).status_code == 403


def test_send_email_with_customvars(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    customer = signup(client)
    client.send_email(
        customtype="general",
        related_id=customer.id,
        subject="Confirm your email",
        message="Hi {$client_first_name}, open {$verify_url}",
        customvars={"verify_url": "https://signup.example/v/äbc"},
    )
    (email,) = whmcs.state.emails
    assert (email.to, email.message) == (EMAIL, "Hi Jane, open https://signup.example/v/äbc")


def test_update_client(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    customer = signup(client)
    client.update_client(customer.id, status="Inactive", customfields={3: "enrolled"})
    updated = client.get_client(customer.id)
    assert updated is not None and updated.status == "Inactive" and updated.customfields == {3: "enrolled"}


# -- refusals ------------------------------------------------------------------------------------


def test_ip_refusal_is_an_auth_error_with_the_reason_and_is_not_retried(
    whmcs: RunningWhmcs, client: WhmcsClient
) -> None:
    whmcs.access.allowed_ips = {"192.0.2.10"}
    with pytest.raises(UpstreamAuthError, match="Invalid IP 127.0.0.1"):
        client.get_client(1)
    assert whmcs.calls["GetClientsDetails"] == 1


def test_accesskey_gets_past_the_allow_list(whmcs: RunningWhmcs) -> None:
    whmcs.access.allowed_ips, whmcs.access.accesskey = {"192.0.2.10"}, "k3y"
    try:
        with make_client(whmcs, accesskey=SecretStr("k3y")) as keyed:
            assert keyed.get_client(1) is None
    finally:
        whmcs.access.accesskey = None


def test_wrong_secret_is_authentication_failed(whmcs: RunningWhmcs) -> None:
    with WhmcsClient(whmcs.url, SecretStr(whmcs.identifier), SecretStr("wrong"), retry=FAST_RETRY) as wrong:
        with pytest.raises(UpstreamAuthError, match="Authentication Failed"):
            wrong.get_invoices(1)


# -- faults on reads: retried --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["server_error", "html", "drop", "timeout"])
def test_reads_are_retried_through_transient_faults(
    whmcs: RunningWhmcs, client: WhmcsClient, sleeps: list[float], kind: str
) -> None:
    customer = signup(client)
    whmcs.calls.clear()
    whmcs.fault(kind=kind, route="GetClientsDetails", count=2, hang_seconds=1.0)
    assert client.get_client(customer.id) == customer
    assert whmcs.calls["GetClientsDetails"] == 3
    assert len(sleeps) == 2


def test_reads_give_up_after_the_policys_attempts(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    whmcs.fault(kind="html", route="GetInvoices")
    with pytest.raises(UpstreamUnavailable):
        client.get_invoices(1)
    assert whmcs.calls["GetInvoices"] == FAST_RETRY.max_attempts


def test_429_waits_the_retry_after_the_server_asked_for(
    whmcs: RunningWhmcs, client: WhmcsClient, sleeps: list[float]
) -> None:
    whmcs.fault(kind="rate_limit", route="GetInvoices", retry_after=3, count=1)
    assert client.get_invoices(1) == []
    assert sleeps == [3.0] and whmcs.calls["GetInvoices"] == 2


def test_a_real_timeout_is_bounded_by_the_read_timeout(whmcs: RunningWhmcs) -> None:
    whmcs.fault(kind="timeout", route="GetInvoices", count=1, hang_seconds=2.0)
    with make_client(whmcs, timeouts=Timeouts(connect=1.0, read=0.2), retry=RetryPolicy.no_retries()) as impatient:
        started = datetime.now(UTC)
        with pytest.raises(UpstreamUnavailable):
            impatient.get_invoices(1)
        assert (datetime.now(UTC) - started).total_seconds() < 1.5


def test_status_error_quirk_on_a_read_is_an_error_not_an_empty_answer(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    whmcs.fault(kind="status_error", route="GetInvoices", count=1)
    with pytest.raises(UpstreamNotFound, match="Client ID Not Found"):
        client.get_invoices(1)
    assert whmcs.calls["GetInvoices"] == 1  # an application error is not retried


def test_warning_only_reply_is_an_error(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    whmcs.fault(kind="warning", route="AddInvoicePayment", count=1)
    with pytest.raises(UpstreamValidationError, match="Payment Information"):
        client.add_invoice_payment(1, transid="t", gateway="mailin", date=NOW)


# -- faults on writes: never retried -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["server_error", "html", "drop", "timeout"])
def test_writes_are_sent_once_and_report_an_unknown_outcome(
    whmcs: RunningWhmcs, client: WhmcsClient, kind: str
) -> None:
    customer = signup(client)
    whmcs.fault(kind=kind, route="CreateInvoice", count=1, hang_seconds=1.0)
    with pytest.raises(UpstreamOutcomeUnknown):
        create_invoice(client, customer.id, "run=lost")
    assert whmcs.calls["CreateInvoice"] == 1
    assert client.find_invoice_by_marker(customer.id, "run=lost") is None  # this fault struck before the commit


def test_429_on_a_write_is_rate_limited_and_not_retried(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    whmcs.fault(kind="rate_limit", route="AddClient", count=1, retry_after=1)
    with pytest.raises(UpstreamRateLimited):
        client.add_client(firstname="A", lastname="B", email=EMAIL, password=SecretStr("pw"))
    assert whmcs.calls["AddClient"] == 1 and whmcs.state.clients == {}


@pytest.mark.parametrize("then", FAILURE_MODES)
def test_find_or_add_client_under_commit_then_fail_creates_exactly_one(
    whmcs: RunningWhmcs, client: WhmcsClient, then: str
) -> None:
    whmcs.fault(kind="commit_then_fail", route="AddClient", count=1, then=then, hang_seconds=1.0)
    customer = signup(client)
    assert customer.email == EMAIL
    assert whmcs.calls["AddClient"] == 1
    assert [c.id for c in clients_with_email(whmcs, EMAIL)] == [customer.id]


def test_find_or_add_client_when_the_create_was_lost_before_commit(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    whmcs.fault(kind="server_error", route="AddClient", count=1)
    with pytest.raises(UpstreamOutcomeUnknown, match="no client has that email"):
        signup(client)
    assert whmcs.state.clients == {}
    customer = signup(client)  # what the bus's retry does: look up first, then create
    assert [c.id for c in clients_with_email(whmcs, EMAIL)] == [customer.id]
    assert whmcs.calls["AddClient"] == 2


@pytest.mark.parametrize("then", FAILURE_MODES)
def test_create_invoice_under_commit_then_fail_is_found_by_its_marker(
    whmcs: RunningWhmcs, client: WhmcsClient, then: str
) -> None:
    customer = signup(client)
    whmcs.fault(kind="commit_then_fail", route="CreateInvoice", count=1, then=then, hang_seconds=1.0)
    with pytest.raises(UpstreamOutcomeUnknown):
        create_invoice(client, customer.id, "run=2026-01")
    found = client.find_invoice_by_marker(customer.id, "run=2026-01")
    assert found is not None and found.total == Decimal("7.30")
    assert [i.id for i in whmcs.state.invoices_of(customer.id)] == [found.id]
    assert whmcs.calls["CreateInvoice"] == 1


def test_a_create_invoice_that_finishes_after_the_client_timed_out_appears_only_later(
    whmcs: RunningWhmcs, client: WhmcsClient
) -> None:
    customer = signup(client)
    whmcs.fault(kind="late_commit", route="CreateInvoice", count=1, hang_seconds=1.5)
    with make_client(whmcs, timeouts=Timeouts(connect=1.0, read=0.3), retry=RetryPolicy.no_retries()) as impatient:
        with pytest.raises(UpstreamOutcomeUnknown):
            create_invoice(impatient, customer.id, "run=2026-02")
    # A look-up right after the timeout finds nothing: WHMCS is still working on it.
    assert client.find_invoice_by_marker(customer.id, "run=2026-02") is None
    found = wait_until(
        lambda: client.find_invoice_by_marker(customer.id, "run=2026-02"), timeout=10, what="the late invoice"
    )
    assert [i.id for i in whmcs.state.invoices_of(customer.id)] == [found.id]
    assert whmcs.calls["CreateInvoice"] == 1


# -- races ---------------------------------------------------------------------------------------


def test_concurrent_signups_with_one_email_make_one_client(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: signup(client), range(8)))
    assert len({r.id for r in results}) == 1
    assert len(clients_with_email(whmcs, EMAIL)) == 1


class _SignupBeforeAddClient(httpx.BaseTransport):
    """Lets another "process" create the client between our lookup and our AddClient."""

    def __init__(self, whmcs: RunningWhmcs) -> None:
        self.whmcs, self.inner, self.done = whmcs, httpx.HTTPTransport(), False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if b"action=AddClient" in request.content and not self.done:
            self.done = True
            self.whmcs.call(
                "AddClient",
                firstname="Jane",
                lastname="Doe",
                email=EMAIL,
                password2="other",
                skipvalidation=1,
                noemail=1,
            )
        return self.inner.handle_request(request)


def test_a_client_created_meanwhile_is_returned_not_duplicated(whmcs: RunningWhmcs) -> None:
    with httpx.Client(transport=_SignupBeforeAddClient(whmcs)) as http:
        racing = WhmcsClient(whmcs.url, SecretStr(whmcs.identifier), SecretStr(whmcs.secret), http=http)
        customer = signup(racing)
    assert [c.id for c in clients_with_email(whmcs, EMAIL)] == [customer.id]


def test_an_existing_login_with_the_email_gets_the_client_attached(whmcs: RunningWhmcs, client: WhmcsClient) -> None:
    first = signup(client)
    client.update_client(first.id, email="jane.work@example.com")  # the login keeps jane@example.com
    customer = signup(client)
    assert customer.id != first.id and customer.email == EMAIL
    assert customer.owner_user_id == first.owner_user_id
