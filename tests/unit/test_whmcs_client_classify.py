"""How the WHMCS client reads answers (§8.1) and writes requests (§1.7), against a scripted transport."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from shared.logging import configure_logging
from shared.settings import UpstreamSettings
from shared.upstream.errors import (
    UpstreamAuthError,
    UpstreamNotFound,
    UpstreamOutcomeUnknown,
    UpstreamRateLimited,
    UpstreamUnavailable,
    UpstreamValidationError,
)
from shared.upstream.retries import RetryPolicy
from shared.upstream.whmcs import WhmcsClient
from shared.upstream.whmcs_models import InvoiceLine
from shared.upstream.whmcs_wire import encode_form, format_amount

Reply = Callable[[httpx.Request], httpx.Response]
NO_RETRY = RetryPolicy.no_retries()


class Scripted:
    """A transport answering with ``reply`` and keeping every request's decoded form."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.forms: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode(), keep_blank_values=True).items()}
        self.forms.append(form)
        return self.reply(request)


def make(reply: Reply, *, retry: RetryPolicy = NO_RETRY, **options: Any) -> tuple[WhmcsClient, Scripted]:
    script = Scripted(reply)
    http = httpx.Client(transport=httpx.MockTransport(script))
    client = WhmcsClient(
        "https://billing.example/",
        SecretStr("the-identifier"),
        SecretStr("the-secret"),
        retry=retry,
        http=http,
        sleep=lambda _: None,
        **options,
    )
    return client, script


def answer(body: Any = None, status: int = 200, **kwargs: Any) -> Reply:
    if body is not None:
        kwargs["json"] = body
    return lambda request: httpx.Response(status, **kwargs)


SUCCESS_INVOICES = {"result": "success", "totalresults": 0, "startnumber": 0, "numreturned": 0, "invoices": ""}


# -- classification ------------------------------------------------------------------------------


def test_html_page_with_200_is_unavailable_never_an_empty_result() -> None:
    client, _ = make(answer(status=200, html="<html>Down for Maintenance</html>"))
    with pytest.raises(UpstreamUnavailable) as caught:
        client.get_invoices(1)
    assert not isinstance(caught.value, UpstreamOutcomeUnknown)


def test_html_page_after_a_write_is_outcome_unknown() -> None:
    client, _ = make(answer(status=200, html="<html>WAF</html>"))
    with pytest.raises(UpstreamOutcomeUnknown):
        client.create_invoice(
            1,
            [InvoiceLine("VM", Decimal("1"))],
            date=date(2026, 2, 1),
            due_date=date(2026, 2, 8),
            notes="m",
            send_invoice=False,
            payment_method=None,
        )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"result": "error", "message": "Invoice ID Not Found"}, UpstreamNotFound),
        ({"status": "error", "message": "Client ID Not Found"}, UpstreamNotFound),
        ({"result": "error", "message": "Invalid status Bogus"}, UpstreamValidationError),
        ({"warning": "Invalid or Missing Payment Information - Please Reload and Try Again"}, UpstreamValidationError),
        ({"result": "error", "message": "Authentication Failed"}, UpstreamAuthError),
        ({"something": "else"}, UpstreamUnavailable),
        (["not", "an", "object"], UpstreamUnavailable),
    ],
)
def test_json_envelopes(body: Any, error: type[Exception]) -> None:
    client, _ = make(answer(body))
    with pytest.raises(error) as caught:
        client.get_invoice(1)
    if isinstance(body, dict) and "message" in body:
        assert body["message"] in str(caught.value)


def test_403_carries_the_reason_from_the_body() -> None:
    client, _ = make(answer({"result": "error", "message": "Invalid IP 203.0.113.9"}, status=403))
    with pytest.raises(UpstreamAuthError, match="Invalid IP 203.0.113.9") as caught:
        client.get_invoices(1)
    assert caught.value.status == 403


def test_403_without_json_is_still_an_auth_error() -> None:
    client, _ = make(answer(status=403, html="<h1>Forbidden</h1>"))
    with pytest.raises(UpstreamAuthError):
        client.get_invoices(1)


def test_429_is_rate_limited_with_retry_after() -> None:
    client, _ = make(answer({"message": "Too Many Attempts."}, status=429, headers={"Retry-After": "7"}))
    with pytest.raises(UpstreamRateLimited) as caught:
        client.add_invoice_payment(1, transid="t", gateway="mailin", date=datetime(2026, 2, 1, tzinfo=UTC))
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_unavailable_for_reads_and_outcome_unknown_for_writes(status: int) -> None:
    client, _ = make(answer(status=status))
    with pytest.raises(UpstreamUnavailable) as read:
        client.get_client(1)
    assert not isinstance(read.value, UpstreamOutcomeUnknown)
    with pytest.raises(UpstreamOutcomeUnknown):
        client.update_client(1, companyname="x")


def test_not_found_reads_become_none_for_clients() -> None:
    client, _ = make(answer({"result": "error", "message": "Client Not Found"}))
    assert client.get_client(5) is None
    assert client.get_client_by_email("a@b.c") is None


def test_reads_are_retried_and_writes_are_not() -> None:
    replies = iter([httpx.Response(503), httpx.Response(200, json=SUCCESS_INVOICES)])
    client, script = make(lambda request: next(replies), retry=RetryPolicy(max_attempts=3, initial_backoff=0))
    assert client.get_invoices(1) == []
    assert len(script.forms) == 2
    client, script = make(answer(status=503), retry=RetryPolicy(max_attempts=3, initial_backoff=0))
    with pytest.raises(UpstreamOutcomeUnknown):
        client.send_email(messagename="Client Signup Email", related_id=1)
    assert len(script.forms) == 1


# -- request encoding ----------------------------------------------------------------------------


def test_create_invoice_sends_the_documented_numbered_form() -> None:
    client, script = make(answer({"result": "success", "invoiceid": "42", "status": "Unpaid"}))
    invoice_id = client.create_invoice(
        7,
        [InvoiceLine("VM one", Decimal("10.005"), taxed=True), InvoiceLine("VM two", Decimal("3"))],
        date=date(2026, 2, 1),
        due_date=date(2026, 2, 15),
        notes="postpay run=abc",
        send_invoice=False,
        payment_method="mailin",
    )
    assert invoice_id == 42
    form = script.forms[0]
    assert {k: form[k] for k in ("action", "userid", "date", "duedate", "notes", "sendinvoice", "draft")} == {
        "action": "CreateInvoice",
        "userid": "7",
        "date": "2026-02-01",
        "duedate": "2026-02-15",
        "notes": "postpay run=abc",
        "sendinvoice": "0",
        "draft": "0",
    }
    assert (form["itemdescription1"], form["itemamount1"], form["itemtaxed1"]) == ("VM one", "10.01", "1")
    assert (form["itemdescription2"], form["itemamount2"], form["itemtaxed2"]) == ("VM two", "3.00", "0")
    assert form["responsetype"] == "json" and "taxrate" not in form


def test_dates_from_aware_datetimes_use_the_installations_zone() -> None:
    client, script = make(answer({"result": "success"}), timezone=timezone(timedelta(hours=-5)))
    client.add_invoice_payment(3, transid="t", gateway="g", date=datetime(2026, 2, 1, 2, 30, tzinfo=UTC))
    assert script.forms[0]["date"] == "2026-01-31 21:30:00"
    assert "amount" not in script.forms[0]
    with pytest.raises(ValueError):
        client.add_invoice_payment(3, transid="t", gateway="g", date=datetime(2026, 2, 1))


def test_encode_form_php_conventions() -> None:
    pairs = encode_form(
        {"a": True, "b": False, "c": None, "d": {5: "x"}, "e": [1, 2], "f": Decimal("1E+1"), "g": SecretStr("s")}
    )
    assert pairs == [("a", "1"), ("b", "0"), ("d[5]", "x"), ("e[0]", "1"), ("e[1]", "2"), ("f", "10"), ("g", "s")]
    with pytest.raises(TypeError):
        encode_form({"amount": 1.5})
    with pytest.raises(TypeError):
        format_amount(1.5)  # type: ignore[arg-type]


def test_credentials_and_accesskey_are_sent_and_never_logged() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    try:
        client, script = make(answer({"result": "success", "clientid": "3"}), accesskey=SecretStr("the-key"))
        client.add_client(firstname="A", lastname="B", email="a@b.c", password=SecretStr("hunter2-pass"))
    finally:
        configure_logging("WARNING")
    form = script.forms[0]
    assert (form["identifier"], form["secret"], form["accesskey"], form["password2"]) == (
        "the-identifier",
        "the-secret",
        "the-key",
        "hunter2-pass",
    )
    logged = stream.getvalue()
    assert "AddClient" in logged
    for secret in ("the-identifier", "the-secret", "the-key", "hunter2-pass"):
        assert secret not in logged


def test_from_settings_uses_the_whmcs_settings() -> None:
    settings = UpstreamSettings(whmcs_url="https://w.example", upstream_max_attempts=2)
    client = WhmcsClient.from_settings(settings)
    try:
        assert client._endpoint == "https://w.example/includes/api.php"
        assert client._retry.max_attempts == 2
    finally:
        client.close()


def test_send_email_needs_a_template_or_a_full_custom_message() -> None:
    client, script = make(answer({"result": "success"}))
    with pytest.raises(ValueError):
        client.send_email(related_id=1, customtype="general", subject="no body")
    client.send_email(related_id=1, customtype="general", subject="S", message="M", customvars={"url": "https://x"})
    form = script.forms[0]
    assert (form["id"], form["customtype"], form["customsubject"], form["custommessage"]) == ("1", "general", "S", "M")
    assert form["customvars"]  # base64 of a PHP array; round trip tested in test_whmcs_phpserialize


def test_redirect_path_needs_the_custom_redirect_destination() -> None:
    client, _ = make(answer({"result": "success", "access_token": "t", "redirect_url": "u"}))
    with pytest.raises(ValueError):
        client.create_sso_token(1, redirect_path="/viewinvoice.php?id=1")


def test_a_create_answering_success_without_an_id_is_an_unknown_outcome() -> None:
    # The object exists but cannot be named: the caller must reconcile by lookup, as after a lost answer.
    client, _ = make(answer({"result": "success"}))
    with pytest.raises(UpstreamOutcomeUnknown, match="no clientid"):
        client.add_client(firstname="A", lastname="B", email="a@b.c", password=SecretStr("p"))
    with pytest.raises(UpstreamOutcomeUnknown, match="no invoiceid"):
        client.create_invoice(
            1,
            [InvoiceLine("VM", Decimal("1"))],
            date=date(2026, 2, 1),
            due_date=date(2026, 2, 8),
            notes="m",
            send_invoice=False,
            payment_method=None,
        )


def test_an_answer_of_the_wrong_shape_is_a_validation_error_not_a_crash() -> None:
    client, script = make(
        answer({"result": "success", "invoiceid": "x", "userid": 1, "status": "Unpaid"}),
        retry=RetryPolicy(max_attempts=3, initial_backoff=0),
    )
    with pytest.raises(UpstreamValidationError, match="unexpected answer shape"):
        client.get_invoice(1)
    assert len(script.forms) == 1  # a contract break is not retried
