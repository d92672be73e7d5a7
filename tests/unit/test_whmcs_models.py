"""Lenient parsing of WHMCS answers (§1.7): every shape seen in the wild becomes a plain Python value."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from shared.upstream.whmcs_models import (
    InvoiceLine,
    SsoToken,
    WhmcsClientDetails,
    WhmcsInvoice,
    WhmcsInvoiceSummary,
    WhmcsUser,
    unwrap_list,
)

DOC_GET_INVOICE = """{"result":"success","invoiceid":1,"invoicenum":"","userid":2361,"date":"2016-01-01",
"duedate":"2020-12-30","datepaid":"0000-00-00 00:00:00","lastcaptureattempt":"0000-00-00 00:00:00",
"subtotal":"15.95","credit":"0.00","tax":"0.00","tax2":"0.00","total":"15.95","balance":"15.95",
"taxrate":"0.000","taxrate2":"0.000","status":"Unpaid","paymentmethod":"paypalcheckout","notes":"",
"ccgateway":false,"items":{"item":[{"id":1,"type":"Hosting","relid":1,
"description":"Sample Monthly Product (01/01/2016 - 31/01/2016)","amount":"15.95","taxed":0}]},
"transactions":""}"""


def test_the_documented_get_invoice_example_parses() -> None:
    invoice = WhmcsInvoice.model_validate(json.loads(DOC_GET_INVOICE, parse_float=Decimal))
    assert (invoice.id, invoice.client_id, invoice.status) == (1, 2361, "Unpaid")
    assert invoice.total == Decimal("15.95") and isinstance(invoice.total, Decimal)
    assert invoice.date_paid is None and invoice.due_date == date(2020, 12, 30)
    assert invoice.transactions == []
    assert invoice.items[0].amount == Decimal("15.95") and invoice.items[0].taxed is False


@pytest.mark.parametrize("raw", [1, "1", " 1 "])
def test_ids_are_ints_whatever_their_json_type(raw: Any) -> None:
    assert WhmcsUser.model_validate({"id": raw, "email": "a@b.c"}).id == 1


@pytest.mark.parametrize("raw", ["１", "1_0", "abc"])
def test_ids_that_are_not_ascii_digits_are_refused(raw: str) -> None:
    with pytest.raises(ValidationError):
        WhmcsUser.model_validate({"id": raw, "email": "a@b.c"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("1", True),
        ("0", False),
        ("", False),
        ("on", True),
        ("true", True),
        ("yes", True),
        ("off", False),
        (None, False),
    ],
)
def test_booleans_of_every_shape(raw: Any, expected: bool) -> None:
    client = WhmcsClientDetails.model_validate({"id": 1, "email": "a@b.c", "allowSingleSignOn": raw})
    assert client.allow_sso is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", []),
        (None, []),
        ({"item": []}, []),
        ({"item": ""}, []),
        ({"item": [1, 2]}, [1, 2]),
        ({"item": {"id": 1}}, [{"id": 1}]),
        ([3], [3]),
    ],
)
def test_lists_unwrap_and_empty_string_is_empty(raw: Any, expected: list[Any]) -> None:
    assert unwrap_list(raw, "item") == expected


def test_client_details_fields_and_custom_fields() -> None:
    client = WhmcsClientDetails.model_validate(
        {
            "id": "5",
            "email": "jane@example.com",
            "firstname": "Jane",
            "lastname": "Doe",
            "companyname": "",
            "status": "Active",
            "currency": "2",
            "currency_code": "EUR",
            "owner_user_id": 9,
            "taxexempt": "",
            "credit": "12.30",
            "groupid": 0,
            "countrycode": "DE",
            "customfields": [{"id": 3, "value": "x"}, {"id": "4", "value": "Zürich"}],
        }
    )
    assert (client.id, client.currency_id, client.currency_code, client.owner_user_id) == (5, 2, "EUR", 9)
    assert client.credit == Decimal("12.30") and client.tax_exempt is False and client.country == "DE"
    assert client.customfields == {3: "x", 4: "Zürich"}


def test_datetimes_are_aware_in_the_installations_zone() -> None:
    row = {"id": 1, "userid": 2, "status": "Paid", "datepaid": "2026-02-01 10:00:00", "duedate": "0000-00-00"}
    utc = WhmcsInvoiceSummary.model_validate(row)
    assert utc.date_paid == datetime(2026, 2, 1, 10, tzinfo=UTC) and utc.due_date is None
    berlin = timezone(timedelta(hours=1))
    local = WhmcsInvoiceSummary.model_validate(row, context={"tz": berlin})
    assert local.date_paid == datetime(2026, 2, 1, 9, tzinfo=UTC)


def test_money_never_goes_through_float() -> None:
    row = {"id": 1, "userid": 2, "status": "Unpaid", "total": 0.1, "subtotal": "0.10", "taxrate": "20.000"}
    summary = WhmcsInvoiceSummary.model_validate(row)
    assert summary.total == Decimal("0.1") and summary.tax_rate == Decimal("20.000")


def test_invoice_line_refuses_float_and_empty_descriptions() -> None:
    with pytest.raises(TypeError):
        InvoiceLine("VM", 1.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        InvoiceLine("VM", Decimal("NaN"))
    with pytest.raises(ValueError):
        InvoiceLine("  ", Decimal("1"))
    assert InvoiceLine("VM", Decimal("1.10"), taxed=True).taxed


def test_sso_token_repr_hides_the_credential() -> None:
    token = SsoToken(access_token="abc123", redirect_url="https://w/oauth/singlesignon.php?access_token=abc123")
    assert "abc123" not in repr(token)
