"""What the account lifecycle needs from the simulators: WHMCS invoice payment, client status and
email, deleting a client; SolusVM 2 user status (and every change of it) in the admin view."""

from __future__ import annotations

from decimal import Decimal

import httpx
from pydantic import SecretStr

from shared.upstream.whmcs import WhmcsClient
from shared.upstream.whmcs_models import InvoiceLine
from simulators.whmcs.testing import RunningWhmcs
from tests.contract.conftest_solusvm import (  # noqa: F401  (fixtures)
    RunningSim,
    solusvm_api,
    solusvm_module_sim,
    solusvm_sim,
)
from tests.support.whmcs import WHMCS_NOW

NOW = WHMCS_NOW


def add_client(whmcs: WhmcsClient, email: str) -> int:
    return whmcs.add_client(firstname="Ada", lastname="Lovelace", email=email, password=SecretStr("Pw-12345678"))


def test_whmcs_client_status_email_payment_and_deletion(whmcs_client: WhmcsClient, whmcs: RunningWhmcs) -> None:
    client_id = add_client(whmcs_client, "ada@example.com")
    other_id = add_client(whmcs_client, "other@example.com")
    invoice_id = whmcs_client.create_invoice(
        client_id,
        [InvoiceLine("usage", Decimal("9.99"))],
        date=NOW.date(),
        due_date=NOW.date(),
        notes="n",
        send_invoice=False,
        payment_method=None,
    )

    whmcs_client.update_client(client_id, status="Closed", email="ada.new@example.com")
    client = whmcs_client.get_client(client_id)
    assert client is not None and (client.status, client.email) == ("Closed", "ada.new@example.com")
    assert whmcs_client.get_client_by_email("ada@example.com") is None

    whmcs_client.add_invoice_payment(invoice_id, transid="t-1", gateway="mailin", date=NOW)
    (paid,) = whmcs_client.get_invoices(client_id)
    assert (paid.status, paid.date_paid is not None) == ("Paid", True)
    whmcs_client.update_invoice(invoice_id, status="Cancelled")
    assert [i.status for i in whmcs_client.get_invoices(client_id)] == ["Cancelled"]

    admin = httpx.Client(base_url=whmcs.url + "/_sim")
    assert admin.delete(f"/clients/{client_id}").json() == {"deleted": client_id}
    assert whmcs_client.get_client(client_id) is None, "a deleted client is not found"
    assert admin.get("/invoices", params={"client_id": client_id}).json() == {"invoices": []}
    assert whmcs_client.get_client(other_id) is not None
    assert admin.delete(f"/clients/{client_id}").status_code == 404


def test_solusvm_user_status_and_its_changes_are_in_the_admin_view(
    solusvm_sim: RunningSim, solusvm_api: httpx.Client
) -> None:
    created = solusvm_api.post("/api/v1/users", json={"email": "s@example.com", "password": "Pw-12345678"}).json()[
        "data"
    ]
    user_id = created["id"]
    for status in ("suspended", "suspended", "active", "locked"):
        assert solusvm_api.patch(f"/api/v1/users/{user_id}", json={"status": status}).status_code == 200
    view = httpx.get(f"{solusvm_sim.url}/_sim/users", params={"status": "locked"}).json()["data"]
    assert [(u["id"], u["status"]) for u in view] == [(user_id, "locked")]
    changes = httpx.get(f"{solusvm_sim.url}/_sim/status_changes", params={"user_id": user_id}).json()["data"]
    # Setting the status a user already has is no change.
    assert [(c["from"], c["to"]) for c in changes] == [
        ("active", "suspended"),
        ("suspended", "active"),
        ("active", "locked"),
    ]
    assert all(c["user_id"] == user_id and c["at"].endswith("Z") for c in changes)
    assert httpx.get(f"{solusvm_sim.url}/_sim/status_changes", params={"user_id": "x"}).status_code == 422
