"""Invoice and payment actions of the WHMCS simulator against the reference (§4): raw JSON shapes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from simulators.whmcs.testing import RunningWhmcs
from tests.support.whmcs import add_client as client
from tests.support.whmcs import error, ok

NULL_DATETIME = "0000-00-00 00:00:00"


def invoice(whmcs: RunningWhmcs, client_id: int, **params: Any) -> int:
    defaults = {"itemdescription1": "VM", "itemamount1": "10.00", "date": "2026-02-01", "duedate": "2026-02-15"}
    return int(ok(whmcs, "CreateInvoice", userid=client_id, **{**defaults, **params})["invoiceid"])


# -- CreateInvoice ------------------------------------------------------------------------------


def test_create_invoice_documented_example_returns_string_id_and_status(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    body = ok(
        whmcs,
        "CreateInvoice",
        userid=client_id,
        status="Unpaid",
        sendinvoice=1,
        paymentmethod="mailin",
        taxrate="10.00",
        date="2016-01-01",
        duedate="2016-01-08",
        itemdescription1="Sample Invoice Item",
        itemamount1="15.95",
        itemtaxed1=0,
        itemdescription2="Sample Second Invoice Item",
        itemamount2="1.00",
        itemtaxed2=1,
        autoapplycredit=0,
    )
    assert body == {"result": "success", "invoiceid": "1", "status": "Unpaid"}
    got = ok(whmcs, "GetInvoice", invoiceid=1)
    assert (got["subtotal"], got["tax"], got["total"], got["taxrate"]) == ("16.95", "0.10", "17.05", "10.000")
    assert [i["description"] for i in got["items"]["item"]] == ["Sample Invoice Item", "Sample Second Invoice Item"]
    assert [e.messagename for e in whmcs.state.emails] == ["Invoice Created"]
    assert whmcs.state.emails[0].related_id == 1


def test_create_invoice_accepts_bracketed_lines_too(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    invoice_id = invoice(
        whmcs,
        client_id,
        itemdescription1="numbered",
        itemamount1="1.00",
        **{
            "itemdescription[0]": "first bracket",
            "itemamount[0]": "2.50",
            "itemtaxed[0]": "1",
            "itemdescription[1]": "second bracket",
            "itemamount[1]": "3.25",
        },
    )
    items = ok(whmcs, "GetInvoice", invoiceid=invoice_id)["items"]["item"]
    assert [(i["description"], i["amount"], i["taxed"]) for i in items] == [
        ("numbered", "1.00", 0),
        ("first bracket", "2.50", 1),
        ("second bracket", "3.25", 0),
    ]


def test_create_invoice_keeps_numbered_lines_in_numeric_order(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    lines = {f"itemdescription{n}": f"line {n}" for n in (1, 2, 10)}
    lines.update({f"itemamount{n}": "1.00" for n in (1, 2, 10)})
    invoice_id = invoice(whmcs, client_id, **lines)
    items = ok(whmcs, "GetInvoice", invoiceid=invoice_id)["items"]["item"]
    assert [i["description"] for i in items] == ["line 1", "line 2", "line 10"]


def test_create_invoice_errors(whmcs: RunningWhmcs) -> None:
    assert error(whmcs, "CreateInvoice", userid=99, itemdescription1="x", itemamount1="1") == "Client ID Not Found"
    client_id = client(whmcs)
    assert error(whmcs, "CreateInvoice", userid=client_id, draft=1, sendinvoice=1) == (
        "Cannot create and send a draft invoice in a single API request. Please create and send separately."
    )
    assert whmcs.state.invoices == {}


def test_python_false_is_truthy_to_php_as_on_real_whmcs(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    # "False" is a non-empty string: PHP reads it as true, so this is a draft *and* a send.
    message = error(whmcs, "CreateInvoice", userid=client_id, draft="False", sendinvoice="1")
    assert message.startswith("Cannot create and send a draft invoice")


def test_draft_invoice_sends_nothing(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    body = ok(whmcs, "CreateInvoice", userid=client_id, draft=1, itemdescription1="x", itemamount1="1.00")
    assert body["status"] == "Draft" and whmcs.state.emails == []


def test_tax_applies_only_to_taxed_lines_and_not_for_tax_exempt_clients(whmcs: RunningWhmcs) -> None:
    taxed = client(whmcs, "taxed@example.com")
    exempt = client(whmcs, "exempt@example.com")
    ok(whmcs, "UpdateClient", clientid=exempt, taxexempt=1)
    lines = {
        "itemdescription1": "a",
        "itemamount1": "100.00",
        "itemtaxed1": 1,
        "itemdescription2": "b",
        "itemamount2": "50.00",
        "itemtaxed2": 0,
    }
    first = ok(whmcs, "GetInvoice", invoiceid=invoice(whmcs, taxed, taxrate="20", taxrate2="5", **lines))
    assert (first["tax"], first["tax2"], first["total"], first["taxrate2"]) == ("20.00", "5.00", "175.00", "5.000")
    second = ok(whmcs, "GetInvoice", invoiceid=invoice(whmcs, exempt, taxrate="20", **lines))
    assert (second["tax"], second["total"]) == ("0.00", "150.00")


def test_amounts_are_decimal_and_rounded_half_up_to_cents(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    lines = {f"itemdescription{n}": "x" for n in range(1, 11)}
    lines.update({f"itemamount{n}": "0.10" for n in range(1, 11)})
    lines.update({"itemdescription11": "half", "itemamount11": "0.125"})
    got = ok(whmcs, "GetInvoice", invoiceid=invoice(whmcs, client_id, **lines))
    assert got["subtotal"] == "1.13"  # ten dimes are exactly 1.00 (no float drift), 0.125 -> 0.13
    assert whmcs.state.invoices[1].total == Decimal("1.13")


def test_invoice_currency_follows_the_client_and_notes_are_stored(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs, currency=2)
    invoice(whmcs, client_id, notes="postpay:2026-01:client-1")
    row = ok(whmcs, "GetInvoices", userid=client_id)["invoices"]["invoice"][0]
    assert (row["currencycode"], row["currencyprefix"], row["currencysuffix"]) == ("EUR", "€", " EUR")
    assert row["notes"] == "postpay:2026-01:client-1"


# -- GetInvoices --------------------------------------------------------------------------------


def test_get_invoices_row_shape_with_string_amounts_and_null_dates(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    invoice(whmcs, client_id, paymentmethod="mailin")
    body = ok(whmcs, "GetInvoices", userid=client_id)
    assert (body["totalresults"], body["startnumber"], body["numreturned"]) == (1, 0, 1)
    row = body["invoices"]["invoice"][0]
    assert isinstance(row["id"], int) and row["userid"] == client_id
    for key in ("subtotal", "credit", "tax", "tax2", "total"):
        assert isinstance(row[key], str) and len(row[key].split(".")[1]) == 2, key
    assert row["taxrate"] == "0.000" and row["datepaid"] == NULL_DATETIME and row["date_cancelled"] == NULL_DATETIME
    assert (row["firstname"], row["lastname"], row["status"], row["paymentmethod"]) == (
        "Jane",
        "Doe",
        "Unpaid",
        "mailin",
    )


def test_get_invoices_empty_is_an_empty_string(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    assert ok(whmcs, "GetInvoices", userid=client_id)["invoices"] == ""


def test_overdue_is_unpaid_past_due_by_the_simulator_clock(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    past = invoice(whmcs, client_id, duedate="2026-02-09")
    invoice(whmcs, client_id, duedate="2026-02-10")  # due today: not overdue yet
    paid = invoice(whmcs, client_id, duedate="2026-01-01")
    ok(whmcs, "UpdateInvoice", invoiceid=paid, status="Paid")
    overdue = ok(whmcs, "GetInvoices", userid=client_id, status="Overdue")["invoices"]["invoice"]
    assert [row["id"] for row in overdue] == [past]
    assert overdue[0]["status"] == "Unpaid"  # Overdue is a filter, not a stored status
    whmcs.clock.advance(86400)
    assert ok(whmcs, "GetInvoices", userid=client_id, status="Overdue")["totalresults"] == 2


def test_get_invoices_paging_and_ordering(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    other = client(whmcs, "other@example.com")
    for n in range(1, 31):
        invoice(whmcs, client_id, itemamount1=f"{n}.00")
    invoice(whmcs, other)
    page = ok(whmcs, "GetInvoices", userid=client_id, limitstart=25, limitnum=25)
    assert (page["totalresults"], page["startnumber"], page["numreturned"]) == (30, 25, 5)
    top = ok(whmcs, "GetInvoices", userid=client_id, orderby="total", order="desc", limitnum=2)
    assert [row["total"] for row in top["invoices"]["invoice"]] == ["30.00", "29.00"]
    assert ok(whmcs, "GetInvoices")["totalresults"] == 31
    assert ok(whmcs, "GetInvoices", userid=client_id, status="Paid")["invoices"] == ""


# -- GetInvoice ---------------------------------------------------------------------------------


def test_get_invoice_shape(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    invoice_id = invoice(whmcs, client_id)
    body = ok(whmcs, "GetInvoice", invoiceid=invoice_id)
    assert body["invoiceid"] == invoice_id and body["userid"] == client_id
    assert body["datepaid"] == NULL_DATETIME and body["lastcaptureattempt"] == NULL_DATETIME
    assert body["transactions"] == "" and body["balance"] == "10.00" and body["ccgateway"] is False
    assert body["items"] == {
        "item": [{"id": 1, "type": "", "relid": 0, "description": "VM", "amount": "10.00", "taxed": 0}]
    }


def test_get_invoice_unknown(whmcs: RunningWhmcs) -> None:
    assert error(whmcs, "GetInvoice", invoiceid=5) == "Invoice ID Not Found"


# -- AddInvoicePayment --------------------------------------------------------------------------


def test_partial_then_full_payment_reduces_the_balance_and_marks_paid(whmcs: RunningWhmcs) -> None:
    invoice_id = invoice(whmcs, client(whmcs))
    ok(
        whmcs,
        "AddInvoicePayment",
        invoiceid=invoice_id,
        transid="T1",
        gateway="mailin",
        amount="4.00",
        date="2026-02-11 09:30:00",
    )
    partial = ok(whmcs, "GetInvoice", invoiceid=invoice_id)
    assert (partial["status"], partial["balance"]) == ("Unpaid", "6.00")
    assert partial["transactions"]["transaction"][0]["transid"] == "T1"
    assert partial["transactions"]["transaction"][0]["amountin"] == "4.00"
    ok(whmcs, "AddInvoicePayment", invoiceid=invoice_id, transid="T2", gateway="mailin", date="2026-02-12 10:00:00")
    paid = ok(whmcs, "GetInvoice", invoiceid=invoice_id)
    assert (paid["status"], paid["balance"], paid["datepaid"]) == ("Paid", "0.00", "2026-02-12 10:00:00")
    assert [t["amountin"] for t in paid["transactions"]["transaction"]] == ["4.00", "6.00"]


def test_add_invoice_payment_validation(whmcs: RunningWhmcs) -> None:
    invoice_id = invoice(whmcs, client(whmcs))
    base = {"invoiceid": invoice_id, "transid": "T", "gateway": "mailin", "date": "2026-02-11 09:30:00"}
    for missing in ("transid", "gateway", "date"):
        params = {k: v for k, v in base.items() if k != missing}
        assert missing in error(whmcs, "AddInvoicePayment", **params)
    assert error(whmcs, "AddInvoicePayment", **{**base, "invoiceid": 77}) == "Invoice ID Not Found"
    assert "date" in error(whmcs, "AddInvoicePayment", **{**base, "date": "11/02/2026"}).lower()
    ok(whmcs, "UpdateInvoice", invoiceid=invoice_id, status="Cancelled")
    assert error(whmcs, "AddInvoicePayment", **base) == (
        "It is not possible to add a payment to an invoice that is Cancelled"
    )


def test_add_invoice_payment_does_not_reject_a_repeated_transid(whmcs: RunningWhmcs) -> None:
    invoice_id = invoice(whmcs, client(whmcs))
    for _ in range(2):
        ok(
            whmcs,
            "AddInvoicePayment",
            invoiceid=invoice_id,
            transid="SAME",
            gateway="mailin",
            amount="1.00",
            date="2026-02-11 09:30:00",
        )
    assert ok(whmcs, "GetInvoice", invoiceid=invoice_id)["balance"] == "8.00"


# -- AddTransaction -----------------------------------------------------------------------------


def test_add_transaction_rejects_duplicate_transid_unless_allowed(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    params = {
        "paymentmethod": "mailin",
        "userid": client_id,
        "transid": "TX-1",
        "amountin": "5.00",
        "date": "11/02/2026",
    }
    ok(whmcs, "AddTransaction", **params)
    assert error(whmcs, "AddTransaction", **params) == "Transaction ID must be Unique"
    ok(whmcs, "AddTransaction", allowduplicatetransid=1, **params)
    assert [t.date.date().isoformat() for t in whmcs.state.transactions.values()] == ["2026-02-11"] * 2


# -- UpdateInvoice ------------------------------------------------------------------------------


def test_update_invoice_edits_adds_and_deletes_lines_and_recalculates(whmcs: RunningWhmcs) -> None:
    invoice_id = invoice(whmcs, client(whmcs), itemdescription2="second", itemamount2="5.00")
    body = ok(
        whmcs,
        "UpdateInvoice",
        invoiceid=invoice_id,
        notes="edited",
        **{
            "itemamount[1]": "12.00",
            "deletelineids[]": "2",
            "newitemdescription[0]": "extra",
            "newitemamount[0]": "0.50",
        },
    )
    assert body == {"result": "success", "invoiceid": str(invoice_id)}
    got = ok(whmcs, "GetInvoice", invoiceid=invoice_id)
    assert [(i["description"], i["amount"]) for i in got["items"]["item"]] == [("VM", "12.00"), ("extra", "0.50")]
    assert (got["total"], got["notes"]) == ("12.50", "edited")


def test_update_invoice_status_and_publish_rules(whmcs: RunningWhmcs) -> None:
    client_id = client(whmcs)
    unpaid = invoice(whmcs, client_id)
    assert error(whmcs, "UpdateInvoice", invoiceid=unpaid, status="Bogus") == "Invalid status Bogus"
    assert error(whmcs, "UpdateInvoice", invoiceid=unpaid, publish=1) == (
        "Invoice must be in Draft status to be published"
    )
    assert error(whmcs, "UpdateInvoice", invoiceid=404, notes="x") == "Invoice ID Not Found"
    draft = int(
        ok(whmcs, "CreateInvoice", userid=client_id, draft=1, itemdescription1="x", itemamount1="1")["invoiceid"]
    )
    ok(whmcs, "UpdateInvoice", invoiceid=draft, publishandsendemail=1)
    assert ok(whmcs, "GetInvoice", invoiceid=draft)["status"] == "Unpaid"
    assert [(e.messagename, e.related_id) for e in whmcs.state.emails] == [("Invoice Created", draft)]
