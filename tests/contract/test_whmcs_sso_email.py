"""CreateSsoToken and its browser redemption (§5), SendEmail and GetEmails (§6, §1.4)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from shared.upstream.phpserialize import encode_base64
from simulators.whmcs.sso import SESSION_COOKIE
from simulators.whmcs.testing import RunningWhmcs
from tests.support.whmcs import add_client as client
from tests.support.whmcs import error, ok


def browser(whmcs: RunningWhmcs) -> httpx.Client:
    return httpx.Client(base_url=whmcs.url, follow_redirects=False)


# -- CreateSsoToken -----------------------------------------------------------------------------


def test_sso_token_response_shape(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    body = ok(whmcs, "CreateSsoToken", client_id=client_id)
    assert set(body) == {"result", "access_token", "redirect_url"}
    url = urlparse(body["redirect_url"])
    assert url.path == "/oauth/singlesignon.php"
    assert parse_qs(url.query) == {"access_token": [body["access_token"]]}
    assert len(body["access_token"]) == 40


def test_token_is_single_use_and_signs_the_browser_in(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    redirect_url = ok(whmcs, "CreateSsoToken", client_id=client_id, destination="clientarea:invoices")["redirect_url"]
    with browser(whmcs) as http:
        first = http.get(redirect_url)
        assert first.status_code == 302
        assert first.headers["location"] == "/clientarea.php?action=invoices"
        page = http.get(first.headers["location"])
        assert page.status_code == 200 and "Signed in as Jane Doe" in page.text
        assert f"data-client-id='{client_id}'" in page.text
    with browser(whmcs) as other:
        reused = other.get(redirect_url)
        assert reused.status_code == 403
        assert "Not signed in" in other.get("/clientarea.php").text


def test_token_expires_after_60_seconds_of_simulator_time(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    fresh = ok(whmcs, "CreateSsoToken", client_id=client_id)["redirect_url"]
    stale = ok(whmcs, "CreateSsoToken", client_id=client_id)["redirect_url"]
    whmcs.clock.advance(60)
    with browser(whmcs) as http:
        assert http.get(fresh).status_code == 302  # exactly 60 s old: still valid
    whmcs.clock.advance(1)
    with browser(whmcs) as http:
        assert http.get(stale).status_code == 403
        assert http.get("/oauth/singlesignon.php?access_token=made-up").status_code == 403


@pytest.mark.parametrize("path", ["/viewinvoice.php?id=123", "viewinvoice.php?id=123"])
def test_custom_redirect_with_or_without_leading_slash(whmcs: RunningWhmcs, path: str) -> None:
    client_id = client(whmcs)
    body = ok(whmcs, "CreateSsoToken", client_id=client_id, destination="sso:custom_redirect", sso_redirect_path=path)
    with browser(whmcs) as http:
        assert http.get(body["redirect_url"]).headers["location"] == "/viewinvoice.php?id=123"


def test_sso_token_errors(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    other = client(whmcs, "other@example.com")
    owner_of_other = whmcs.state.clients[other].owner_user_id
    assert error(whmcs, "CreateSsoToken") == "A valid client_id or user_id is required"
    assert error(whmcs, "CreateSsoToken", client_id=999) == "Invalid client_id"
    assert error(whmcs, "CreateSsoToken", user_id=999) == "Invalid user_id"
    assert error(whmcs, "CreateSsoToken", client_id=client_id, user_id=owner_of_other) == "Invalid user_id for client"
    assert error(whmcs, "CreateSsoToken", client_id=client_id, destination="clientarea:nowhere") == (
        "Invalid destination"
    )
    whmcs.state.clients[client_id].allow_sso = False
    assert error(whmcs, "CreateSsoToken", client_id=client_id) == f"SSO authentication blocked for client {client_id}"
    assert ok(whmcs, "GetClientsDetails", clientid=client_id)["client"]["allowSingleSignOn"] == 0


# -- SendEmail ----------------------------------------------------------------------------------


def test_custom_email_renders_customvars_and_client_merge_fields_and_is_recorded(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    link = "https://signup.example/verify?t=abc&x=✓"
    ok(
        whmcs,
        "SendEmail",
        customtype="general",
        id=client_id,
        customsubject="Verify, {$client_first_name}",
        custommessage="<p>Open {$verify_url}</p>",
        customvars=encode_base64({"verify_url": link}),
    )
    (email,) = whmcs.state.emails
    assert (email.to, email.subject, email.message) == ("jane@example.com", "Verify, Jane", f"<p>Open {link}</p>")
    assert email.customvars == {"verify_url": link} and email.related_id == client_id


def test_template_email_by_name_with_an_invoice_related_id(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    invoice_id = int(
        ok(whmcs, "CreateInvoice", userid=client_id, itemdescription1="x", itemamount1="3.00", duedate="2026-03-01")[
            "invoiceid"
        ]
    )
    ok(whmcs, "SendEmail", messagename="invoice created", id=invoice_id)
    (email,) = whmcs.state.emails
    assert email.messagename == "Invoice Created" and email.client_id == client_id
    assert "$3.00 USD" in email.message and "2026-03-01" in email.message


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"id": 1}, "You must provide either an existing email template name or a custom message type"),
        ({"messagename": "Client Signup Email"}, "A related ID is required"),
        ({"messagename": "No Such Template", "id": 1}, "Email Template not found"),
        ({"customtype": "sms", "customsubject": "s", "custommessage": "m", "id": 1}, "Invalid message type provided"),
        ({"customtype": "general", "custommessage": "m", "id": 1}, "A subject is required for a custom message"),
        ({"customtype": "general", "customsubject": "s", "id": 1}, "A message body is required for a custom message"),
        (
            {"customtype": "general", "customsubject": "s", "custommessage": "m", "id": 1, "customvars": "%%%"},
            "The custom variables you provided are invalid.",
        ),
        (
            {"customtype": "general", "customsubject": "s", "custommessage": "m", "id": 999},
            "Sending Failed. Please see documentation.",
        ),
        (
            {"customtype": "general", "customsubject": "s", "custommessage": "{$empty}", "id": 1},
            "Sending Failed. Please see documentation.",
        ),
        ({"messagename": "Order Confirmation", "id": 1}, "Sending Failed. Please see documentation."),
    ],
)
def test_send_email_documented_errors(whmcs: RunningWhmcs, params: dict[str, Any], message: str) -> None:
    client(whmcs)
    assert error(whmcs, "SendEmail", **params) == message
    assert whmcs.state.emails == []


def test_disabled_template(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    whmcs.state.templates["client signup email"].disabled = True
    assert error(whmcs, "SendEmail", messagename="Client Signup Email", id=client_id) == "Email Template is disabled"


# -- GetEmails ----------------------------------------------------------------------------------


def test_get_emails_unknown_client_uses_status_not_result(whmcs: RunningWhmcs) -> None:
    response = whmcs.call("GetEmails", clientid=404)
    assert response.status_code == 200
    assert response.json() == {"status": "error", "message": "Client ID Not Found"}


def test_get_emails_lists_the_clients_mail(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    assert ok(whmcs, "GetEmails", clientid=client_id)["emails"] == ""
    ok(whmcs, "SendEmail", customtype="general", id=client_id, customsubject="Hi", custommessage="Hello")
    rows = ok(whmcs, "GetEmails", clientid=client_id)["emails"]["email"]
    assert [(r["subject"], r["to"]) for r in rows] == [("Hi", "jane@example.com")]


def test_client_area_without_a_session_is_not_signed_in(whmcs: RunningWhmcs) -> None:
    with browser(whmcs) as http:
        http.cookies.set(SESSION_COOKIE, "forged")
        assert "Not signed in" in http.get("/clientarea.php").text
