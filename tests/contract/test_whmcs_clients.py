"""Client and user actions of the WHMCS simulator against the reference (§2, §3): raw JSON shapes."""

from __future__ import annotations

import pytest

from shared.upstream.phpserialize import encode_base64
from simulators.whmcs.state import CustomFieldDefinition
from simulators.whmcs.testing import RunningWhmcs
from tests.support.whmcs import add_client as add
from tests.support.whmcs import error, ok

FULL_CLIENT = {
    "firstname": "Jane",
    "lastname": "Doe",
    "email": "jane@example.com",
    "address1": "1 Main St",
    "city": "Springfield",
    "state": "IL",
    "postcode": "62701",
    "country": "US",
    "phonenumber": "+1 555 0100",
    "password2": "s3cret-pass",
}


# -- AddClient ----------------------------------------------------------------------------------


def test_add_client_returns_the_id_as_a_string(whmcs: RunningWhmcs) -> None:
    body = ok(whmcs, "AddClient", **FULL_CLIENT)
    assert body == {"result": "success", "clientid": "1"}


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("firstname", "You did not enter your first name"),
        ("lastname", "You did not enter your last name"),
        ("email", "You did not enter your email address"),
        ("address1", "You did not enter your  address line 1"),
        ("city", "You did not enter your city"),
        ("state", "You did not enter your state"),
        ("postcode", "You did not enter your postcode"),
        ("country", "Valid country required"),
        ("phonenumber", "You did not enter your phone number"),
    ],
)
def test_add_client_requires_the_documented_fields_without_skipvalidation(
    whmcs: RunningWhmcs, missing: str, message: str
) -> None:
    fields = {k: v for k, v in FULL_CLIENT.items() if k != missing}
    assert error(whmcs, "AddClient", **fields) == message
    assert whmcs.state.clients == {}


def test_skipvalidation_relaxes_the_address_but_not_email_or_password2(whmcs: RunningWhmcs) -> None:
    assert ok(whmcs, "AddClient", email="a@example.com", password2="pw", skipvalidation=1)["clientid"] == "1"
    assert error(whmcs, "AddClient", password2="pw", skipvalidation=1) == "You did not enter your email address"
    assert error(whmcs, "AddClient", email="b@example.com", skipvalidation=1) == "You did not enter your password"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "not-an-email", "The email address you entered was not valid"),
        ("country", "USA", "Valid country required"),
        ("phonenumber", "call me", "Invalid telephone phone number"),
        ("currency", "99", "Invalid Currency ID"),
    ],
)
def test_add_client_validates_values(whmcs: RunningWhmcs, field: str, value: str, message: str) -> None:
    assert error(whmcs, "AddClient", **{**FULL_CLIENT, field: value}) == message


def test_duplicate_client_email_has_the_current_documented_message_case_insensitively(whmcs: RunningWhmcs) -> None:
    add(whmcs, "jane@example.com")
    message = error(
        whmcs, "AddClient", email="JANE@example.com", firstname="J", lastname="D", password2="pw", skipvalidation=1
    )
    assert message == "The email address entered is not available for use."
    assert len(whmcs.state.clients) == 1


def test_a_user_with_the_email_but_no_client_gives_the_user_error_and_owner_user_id_attaches(
    whmcs: RunningWhmcs,
) -> None:
    first = add(whmcs, "jane@example.com")
    ok(whmcs, "UpdateClient", clientid=first, email="jane.old@example.com")  # the login keeps its email
    assert (
        error(
            whmcs, "AddClient", email="jane@example.com", firstname="J", lastname="D", password2="pw", skipvalidation=1
        )
        == "A user already exists with that email address"
    )
    users = ok(whmcs, "GetUsers", search="jane@example.com")["users"]
    owner_id = users[0]["id"]
    second = ok(
        whmcs,
        "AddClient",
        email="jane@example.com",
        firstname="J",
        lastname="D",
        owner_user_id=owner_id,
        skipvalidation=1,
    )
    details = ok(whmcs, "GetClientsDetails", clientid=second["clientid"])
    assert details["client"]["owner_user_id"] == owner_id
    assert error(whmcs, "AddClient", email="x@example.com", owner_user_id=999, skipvalidation=1) == (
        "Invalid Owner User ID"
    )


def test_customfields_are_base64_php_serialized_and_come_back_as_list_and_flattened(whmcs: RunningWhmcs) -> None:
    client_id = add(whmcs, "jane@example.com", customfields=encode_base64({7: "Zürich — ✓", 3: "plain"}))
    client = ok(whmcs, "GetClientsDetails", clientid=client_id)["client"]
    assert client["customfields"] == [{"id": 3, "value": "plain"}, {"id": 7, "value": "Zürich — ✓"}]
    assert (client["customfields1"], client["customfields2"]) == ("plain", "Zürich — ✓")


def test_a_required_custom_field_given_as_an_array_counts_as_missing(whmcs: RunningWhmcs) -> None:
    whmcs.state.custom_fields[4] = CustomFieldDefinition(4, "IsReseller", required=True)
    fields = {**FULL_CLIENT, "customfields": encode_base64({4: ["yes"]})}
    assert error(whmcs, "AddClient", **fields) == "You did not provide required custom field value for IsReseller"
    ok(whmcs, "AddClient", **{**FULL_CLIENT, "customfields": encode_base64({4: "yes"})})


def test_noemail_suppresses_the_welcome_email(whmcs: RunningWhmcs) -> None:
    add(whmcs, "quiet@example.com", noemail=1)
    ok(whmcs, "AddClient", firstname="Loud", lastname="Doe", email="loud@example.com", password2="pw", skipvalidation=1)
    assert [e.to for e in whmcs.state.emails] == ["loud@example.com"]


def test_currency_sets_the_clients_currency(whmcs: RunningWhmcs) -> None:
    client_id = add(whmcs, "eu@example.com", currency=2)
    client = ok(whmcs, "GetClientsDetails", clientid=client_id)["client"]
    assert (client["currency"], client["currency_code"]) == (2, "EUR")


# -- GetClients ---------------------------------------------------------------------------------


def test_get_clients_search_is_a_prefix_match_over_email_and_names(whmcs: RunningWhmcs) -> None:
    add(whmcs, "a@x.com")
    add(whmcs, "a@x.com.au")
    add(whmcs, "b@x.com", companyname="Acme Ltd")
    body = ok(whmcs, "GetClients", search="a@x.com")
    assert [c["email"] for c in body["clients"]["client"]] == ["a@x.com", "a@x.com.au"]
    assert [c["email"] for c in ok(whmcs, "GetClients", search="acme")["clients"]["client"]] == ["b@x.com"]
    assert ok(whmcs, "GetClients", search="x.com")["clients"] == ""  # not a substring search


def test_get_clients_row_shape_and_paging_counters(whmcs: RunningWhmcs) -> None:
    for n in range(30):
        add(whmcs, f"user{n:02}@example.com")
    first = ok(whmcs, "GetClients")
    assert (first["totalresults"], first["startnumber"], first["numreturned"]) == (30, 0, 25)
    row = first["clients"]["client"][0]
    assert set(row) == {"id", "firstname", "lastname", "companyname", "email", "datecreated", "groupid", "status"}
    assert isinstance(row["id"], int) and row["datecreated"] == "2026-02-10" and row["status"] == "Active"
    second = ok(whmcs, "GetClients", limitstart=25, limitnum=25)
    assert (second["startnumber"], second["numreturned"]) == (25, 5)
    desc = ok(whmcs, "GetClients", sorting="DESC", limitnum=1, orderby="email")
    assert desc["clients"]["client"][0]["email"] == "user29@example.com"


def test_get_clients_with_no_match_is_an_empty_string_not_a_list(whmcs: RunningWhmcs) -> None:
    body = ok(whmcs, "GetClients", search="nobody")
    assert body == {"result": "success", "totalresults": 0, "startnumber": 0, "numreturned": 0, "clients": ""}


def test_get_clients_filters_by_status(whmcs: RunningWhmcs) -> None:
    add(whmcs, "on@example.com")
    closed = add(whmcs, "off@example.com")
    ok(whmcs, "UpdateClient", clientid=closed, status="Closed")
    assert [c["email"] for c in ok(whmcs, "GetClients", status="Closed")["clients"]["client"]] == ["off@example.com"]


# -- GetClientsDetails --------------------------------------------------------------------------


def test_get_clients_details_has_the_client_wrapper_and_the_deprecated_top_level_copy(whmcs: RunningWhmcs) -> None:
    client_id = add(whmcs, "jane@example.com", companyname="Acme")
    body = ok(whmcs, "GetClientsDetails", clientid=client_id)
    client = body["client"]
    for key in (
        "id",
        "client_id",
        "userid",
        "email",
        "firstname",
        "lastname",
        "companyname",
        "status",
        "currency",
        "currency_code",
        "credit",
        "users",
        "allowSingleSignOn",
    ):
        assert body[key] == client[key], key
    assert client["id"] == client_id and client["fullname"] == "Jane Doe"
    assert client["credit"] == "0.00" and client["currency_code"] == "USD" and client["allowSingleSignOn"] == 1
    assert client["users"] == {
        "user": [{"id": client["owner_user_id"], "name": "Jane Doe", "email": "jane@example.com", "is_owner": True}]
    }
    assert "stats" not in body


def test_get_clients_details_by_exact_email_only(whmcs: RunningWhmcs) -> None:
    client_id = add(whmcs, "a@x.com.au")
    assert error(whmcs, "GetClientsDetails", email="a@x.com") == "Client Not Found"
    assert ok(whmcs, "GetClientsDetails", email="A@X.com.au")["client"]["id"] == client_id


def test_get_clients_details_errors(whmcs: RunningWhmcs) -> None:
    assert error(whmcs, "GetClientsDetails") == "Either clientid Or email Is Required"
    assert error(whmcs, "GetClientsDetails", clientid=42) == "Client Not Found"


def test_get_clients_details_stats_are_formatted_money(whmcs: RunningWhmcs) -> None:
    client_id = add(whmcs, "jane@example.com")
    ok(whmcs, "CreateInvoice", userid=client_id, itemdescription1="VM", itemamount1="10.50", duedate="2026-01-31")
    stats = ok(whmcs, "GetClientsDetails", clientid=client_id, stats=1)["stats"]
    assert stats["numunpaidinvoices"] == 1 and stats["unpaidinvoicesamount"] == "$10.50 USD"
    assert stats["numoverdueinvoices"] == 1 and stats["creditbalance"] == "$0.00 USD"


# -- UpdateClient -------------------------------------------------------------------------------


def test_update_client_returns_a_string_id_and_changes_fields(whmcs: RunningWhmcs) -> None:
    client_id = add(whmcs, "jane@example.com")
    body = ok(
        whmcs, "UpdateClient", clientemail="jane@example.com", companyname="New Co", status="Inactive", currency=3
    )
    assert body == {"result": "success", "clientid": str(client_id)}
    client = ok(whmcs, "GetClientsDetails", clientid=client_id)["client"]
    assert (client["companyname"], client["status"], client["currency_code"]) == ("New Co", "Inactive", "GBP")


def test_update_client_email_must_stay_unique_and_valid_and_moves_the_index(whmcs: RunningWhmcs) -> None:
    jane = add(whmcs, "jane@example.com")
    add(whmcs, "john@example.com")
    assert error(whmcs, "UpdateClient", clientid=jane, email="JOHN@example.com") == "Duplicate Email Address"
    assert error(whmcs, "UpdateClient", clientid=jane, email="nope") == "The email address entered is not valid"
    ok(whmcs, "UpdateClient", clientid=jane, email="jane2@example.com")
    assert error(whmcs, "GetClientsDetails", email="jane@example.com") == "Client Not Found"
    assert ok(whmcs, "GetClientsDetails", email="jane2@example.com")["client"]["id"] == jane


def test_update_client_unknown_client(whmcs: RunningWhmcs) -> None:
    assert error(whmcs, "UpdateClient", clientid=9, companyname="x") == "Client ID Not Found"
    assert error(whmcs, "UpdateClient", companyname="x") == "Client ID Not Found"


# -- GetUsers -----------------------------------------------------------------------------------


def test_get_users_is_a_bare_list_with_client_links(whmcs: RunningWhmcs) -> None:
    client_id = add(whmcs, "jane@example.com")
    body = ok(whmcs, "GetUsers", search="jane")
    assert isinstance(body["users"], list) and body["totalresults"] == 1
    user = body["users"][0]
    assert user["email"] == "jane@example.com"
    assert user["clients"] == [{"id": client_id, "isOwner": True}]
    assert ok(whmcs, "GetUsers", search="nobody")["users"] == []
