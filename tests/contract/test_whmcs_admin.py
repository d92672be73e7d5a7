"""The simulator's own controls (``/_sim/...``) and the wire shape of its injected faults (§9.5, §10)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.whmcs.testing import RunningWhmcs
from tests.support.whmcs import WHMCS_NOW, ok
from tests.support.whmcs import add_client as client

NOW = WHMCS_NOW


@pytest.fixture
def admin(whmcs: RunningWhmcs) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=whmcs.url + "/_sim") as http:
        yield http


def invoice(whmcs: RunningWhmcs, client_id: int, **params: Any) -> int:
    body = ok(whmcs, "CreateInvoice", userid=client_id, itemdescription1="VM", itemamount1="10.00", **params)
    return int(body["invoiceid"])


def test_default_currencies_and_seeding_more(whmcs: RunningWhmcs, admin: httpx.Client) -> None:
    codes = {c["id"]: c["code"] for c in admin.get("/currencies").json()["currencies"]}
    assert codes == {1: "USD", 2: "EUR", 3: "GBP"}
    admin.put("/currencies", json={"currencies": [{"id": 4, "code": "JPY", "prefix": "¥", "suffix": " JPY"}]})
    client_id = client(whmcs, currency=4)
    invoice(whmcs, client_id)
    row = ok(whmcs, "GetInvoices", userid=client_id)["invoices"]["invoice"][0]
    assert (row["currencycode"], row["currencyprefix"]) == ("JPY", "¥")


def test_patch_client_currency_status_email_and_sso(whmcs: RunningWhmcs, admin: httpx.Client) -> None:
    client_id = client(whmcs)
    client(whmcs, "taken@example.com")
    patched = admin.patch(
        f"/clients/{client_id}",
        json={"currency_id": 2, "status": "Closed", "email": "new@example.com", "allow_sso": False},
    )
    assert patched.status_code == 200
    assert {k: patched.json()[k] for k in ("currency_id", "currency_code", "status", "email", "allow_sso")} == {
        "currency_id": 2,
        "currency_code": "EUR",
        "status": "Closed",
        "email": "new@example.com",
        "allow_sso": False,
    }
    details = ok(whmcs, "GetClientsDetails", email="new@example.com")["client"]
    assert (details["currency_code"], details["status"], details["allowSingleSignOn"]) == ("EUR", "Closed", 0)
    assert admin.patch(f"/clients/{client_id}", json={"currency_id": 9}).status_code == 400
    assert admin.patch(f"/clients/{client_id}", json={"email": "taken@example.com"}).status_code == 400
    assert admin.patch("/clients/999", json={"status": "Active"}).status_code == 404
    listed = admin.get("/clients", params={"email": "NEW@example.com"}).json()["clients"]
    assert [c["id"] for c in listed] == [client_id]


def test_read_invoices_with_items_and_mark_one_paid(whmcs: RunningWhmcs, admin: httpx.Client) -> None:
    client_id = client(whmcs)
    invoice_id = invoice(whmcs, client_id, notes="marker-1", duedate="2026-02-01")
    (row,) = admin.get("/invoices", params={"client_id": client_id}).json()["invoices"]
    assert row["items"] == [{"id": 1, "description": "VM", "amount": "10.00", "taxed": False}]
    assert (row["total"], row["balance"], row["notes"], row["overdue"], row["currency_code"]) == (
        "10.00",
        "10.00",
        "marker-1",
        True,
        "USD",
    )
    paid = admin.post(f"/invoices/{invoice_id}/pay", json={"transid": "bank-1"}).json()
    assert (paid["status"], paid["balance"], paid["overdue"]) == ("Paid", "0.00", False)
    assert ok(whmcs, "GetInvoice", invoiceid=invoice_id)["status"] == "Paid"
    payments = admin.get("/payments", params={"invoice_id": invoice_id}).json()["payments"]
    assert [(p["transid"], p["amountin"]) for p in payments] == [("bank-1", "10.00")]


def test_emails_sent_are_readable_and_filterable(whmcs: RunningWhmcs, admin: httpx.Client) -> None:
    client_id = client(whmcs)
    other = client(whmcs, "other@example.com")
    for target in (client_id, other):
        ok(whmcs, "SendEmail", customtype="general", id=target, customsubject="Hi", custommessage="Hello")
    rows = admin.get("/emails", params={"client_id": client_id}).json()["emails"]
    assert [(r["to"], r["subject"]) for r in rows] == [("jane@example.com", "Hi")]
    admin.delete("/emails")
    assert admin.get("/emails").json()["emails"] == []


def test_config_changes_tax_default_and_ip_allow_list(whmcs: RunningWhmcs, admin: httpx.Client) -> None:
    client_id = client(whmcs)
    admin.patch("/config", json={"taxrate": "19"})
    invoice_id = invoice(whmcs, client_id, itemtaxed1=1)
    assert ok(whmcs, "GetInvoice", invoiceid=invoice_id)["tax"] == "1.90"
    admin.patch("/config", json={"allowed_ips": ["192.0.2.1"]})
    assert whmcs.call("GetClients").status_code == 403
    admin.patch("/config", json={"allowed_ips": None})
    assert whmcs.call("GetClients").status_code == 200


def test_state_round_trips_through_json_into_a_fresh_simulator(whmcs: RunningWhmcs, admin: httpx.Client) -> None:
    client_id = client(whmcs, currency=2)
    invoice_id = invoice(whmcs, client_id, taxrate="7.5", itemtaxed1=1, notes="n")
    ok(
        whmcs,
        "AddInvoicePayment",
        invoiceid=invoice_id,
        transid="T",
        gateway="mailin",
        amount="1.00",
        date="2026-02-11 10:00:00",
    )
    dumped = admin.get("/state").json()
    with RunningWhmcs(now=NOW) as fresh:
        assert httpx.put(fresh.url + "/_sim/state", json=dumped).status_code == 200
        for action, params in (
            ("GetInvoice", {"invoiceid": invoice_id}),
            ("GetClientsDetails", {"clientid": client_id}),
            ("GetInvoices", {"userid": client_id}),
        ):
            assert fresh.call(action, **params).json() == whmcs.call(action, **params).json()
        # Ids continue after the loaded ones; the email index was rebuilt.
        assert fresh.call("AddClient", email="jane@example.com", password2="p", skipvalidation=1).json()["message"] == (
            "The email address entered is not available for use."
        )
        assert client(fresh, "second@example.com") == client_id + 1


def test_state_save_and_load_files(whmcs: RunningWhmcs, admin: httpx.Client, tmp_path: Path) -> None:
    client(whmcs)
    path = tmp_path / "whmcs.json"
    assert admin.post("/state/save", json={"path": str(path)}).status_code == 200
    admin.post("/reset")
    assert whmcs.state.clients == {}
    loaded = admin.post("/state/load", json={"path": str(path)}).json()
    assert loaded["clients"] == 1 and ok(whmcs, "GetClientsDetails", email="jane@example.com")
    assert admin.post("/state/load", json={"path": str(tmp_path / "missing.json")}).status_code == 400


# -- fault shapes, targeted by action name ------------------------------------------------------


def test_html_fault_targets_one_action_and_changes_nothing(whmcs: RunningWhmcs, admin: httpx.Client) -> None:
    client_id = client(whmcs)
    admin.post("/faults", json={"kind": "html", "route": "CreateInvoice", "count": 1})
    assert whmcs.call("GetClients").json()["result"] == "success"
    faulted = whmcs.call("createinvoice", userid=client_id, itemdescription1="x", itemamount1="1")
    assert faulted.status_code == 200 and faulted.headers["content-type"].startswith("text/html")
    assert "Maintenance" in faulted.text and whmcs.state.invoices == {}
    invoice(whmcs, client_id)
    assert admin.get("/calls").json()["calls"]["CreateInvoice"] == 2


def test_commit_then_fail_creates_the_invoice_but_answers_5xx(whmcs: RunningWhmcs, admin: httpx.Client) -> None:
    client_id = client(whmcs)
    admin.post("/faults", json={"kind": "commit_then_fail", "route": "CreateInvoice", "count": 1})
    faulted = whmcs.call("CreateInvoice", userid=client_id, itemdescription1="x", itemamount1="1", notes="m")
    assert faulted.status_code >= 500
    assert [i.notes for i in whmcs.state.invoices.values()] == ["m"]


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("status_error", {"status": "error", "message": "Client ID Not Found"}),
        ("warning", {"warning": "Invalid or Missing Payment Information - Please Reload and Try Again"}),
    ],
)
def test_envelope_quirk_faults(whmcs: RunningWhmcs, admin: httpx.Client, kind: str, body: dict[str, str]) -> None:
    admin.post("/faults", json={"kind": kind, "route": "GetClients", "count": 1})
    assert whmcs.call("GetClients").json() == body
    assert whmcs.call("GetClients").json()["result"] == "success"


def test_rate_limit_fault_sends_retry_after(whmcs: RunningWhmcs, admin: httpx.Client) -> None:
    admin.post("/faults", json={"kind": "rate_limit", "route": "Get*", "retry_after": 7, "count": 1})
    limited = whmcs.call("GetInvoices")
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")


def test_clock_and_faults_admin_routes_are_mounted(whmcs: RunningWhmcs, admin: httpx.Client) -> None:
    assert admin.get("/clock").json()["now"] == "2026-02-10T12:00:00Z"
    assert admin.get("/faults").json() == {"rules": [], "injected": {}}


def test_malformed_admin_input_is_a_400(whmcs: RunningWhmcs, admin: httpx.Client) -> None:
    client_id = client(whmcs)
    assert admin.get("/invoices", params={"client_id": "abc"}).status_code == 400
    assert admin.patch(f"/clients/{client_id}", json={"credit": "lots"}).status_code == 400
    assert admin.put("/currencies", json={"currencies": [{"id": 5}]}).status_code == 400
    assert admin.patch("/config", content=b"not json").status_code == 400


def test_currencies_given_at_start_replace_the_defaults() -> None:
    with RunningWhmcs(now=NOW, currencies=[{"id": 5, "code": "CHF", "prefix": "CHF ", "is_default": True}]) as custom:
        client_id = client(custom)
        details = custom.call("GetClientsDetails", clientid=client_id).json()["client"]
        assert (details["currency"], details["currency_code"]) == (5, "CHF")
        assert [c.code for c in custom.state.currencies.values()] == ["CHF"]
