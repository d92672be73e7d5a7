"""Invoice and payment actions: CreateInvoice, GetInvoices, GetInvoice, UpdateInvoice,
AddInvoicePayment, AddTransaction."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from simulators.whmcs.emails import record_template_email
from simulators.whmcs.params import (
    ActionContext,
    ApiError,
    Form,
    format_date,
    format_datetime,
    format_rate,
    page_of,
    parse_date,
    parse_decimal,
    wrapped,
)
from simulators.whmcs.state import (
    INVOICE_STATUSES,
    ZERO,
    Invoice,
    InvoiceItem,
    Transaction,
    is_overdue,
    money,
)

_NUMBERED_LINE = re.compile(r"^itemdescription(\d+)$")
_STATUS_BY_NAME = {s.lower(): s for s in INVOICE_STATUSES}
DRAFT_AND_SEND = "Cannot create and send a draft invoice in a single API request. Please create and send separately."


def _status(text: str) -> str:
    status = _STATUS_BY_NAME.get(text.strip().lower())
    if status is None:
        raise ApiError(f"Invalid status {text}")
    return status


def _line(ctx: ActionContext, description: str, amount: str, taxed: str) -> InvoiceItem:
    return InvoiceItem(
        id=ctx.state.next_id("invoiceitem"),
        description=description,
        amount=money(parse_decimal(amount or "0", error="Invalid item amount")),
        taxed=taxed not in ("", "0"),
    )


def _created_lines(ctx: ActionContext, form: Form) -> list[InvoiceItem]:
    """Lines in both wire forms: documented ``itemdescription1`` and bracketed ``itemdescription[1]``."""
    numbered = sorted(int(m.group(1)) for key in form.values if (m := _NUMBERED_LINE.match(key)))
    lines = [
        _line(ctx, form.get(f"itemdescription{n}"), form.get(f"itemamount{n}"), form.get(f"itemtaxed{n}"))
        for n in numbered
    ]
    descriptions, amounts, taxed = (form.array(n) for n in ("itemdescription", "itemamount", "itemtaxed"))
    for key in sorted(descriptions, key=_bracket_order):
        lines.append(_line(ctx, descriptions[key].strip(), amounts.get(key, ""), taxed.get(key, "")))
    return lines


def _bracket_order(key: str) -> tuple[bool, int, str]:
    numeric = key.isascii() and key.isdigit()
    return (not numeric, int(key) if numeric else 0, key)


def _rate(form: Form, name: str, default: Decimal) -> Decimal:
    rate = form.decimal(name, error=f"Invalid {name}")
    return default if rate is None else rate


def create_invoice(ctx: ActionContext, form: Form) -> dict[str, Any]:
    state = ctx.state
    client_id = form.integer("userid")
    client = state.clients.get(client_id) if client_id is not None else None
    if client is None:
        raise ApiError("Client ID Not Found")
    draft, send = form.flag("draft"), form.flag("sendinvoice")
    if draft and send:
        raise ApiError(DRAFT_AND_SEND)
    status = "Draft" if draft else _status(form.get("status") or "Unpaid")
    today = ctx.today()
    invoice_date = parse_date(form.get("date"), error="Invalid date") if form.get("date") else today
    due = parse_date(form.get("duedate"), error="Invalid due date") if form.get("duedate") else invoice_date
    now = ctx.now()
    invoice = Invoice(
        id=state.next_id("invoice"),
        client_id=client.id,
        date=invoice_date,
        duedate=due,
        status=status,
        created_at=now,
        updated_at=now,
        items=_created_lines(ctx, form),
        taxrate=_rate(form, "taxrate", state.tax.taxrate),
        taxrate2=_rate(form, "taxrate2", state.tax.taxrate2),
        paymentmethod=form.get("paymentmethod") or client.defaultgateway,
        notes=form.values.get("notes", ""),
    )
    if status == "Paid":
        invoice.datepaid = now
    state.recalculate(invoice, client)
    state.add_invoice(invoice)
    if send:
        record_template_email(ctx, "Invoice Created", invoice.id, client, invoice)
    return {"result": "success", "invoiceid": str(invoice.id), "status": invoice.status}


def invoice_summary(ctx: ActionContext, invoice: Invoice) -> dict[str, Any]:
    state = ctx.state
    client = state.clients.get(invoice.client_id)
    currency = state.currency_of(client) if client else state.default_currency()
    return {
        "id": invoice.id,
        "userid": invoice.client_id,
        "firstname": client.firstname if client else "",
        "lastname": client.lastname if client else "",
        "companyname": client.companyname if client else "",
        "invoicenum": invoice.invoicenum,
        "date": format_date(invoice.date),
        "duedate": format_date(invoice.duedate),
        "datepaid": format_datetime(invoice.datepaid),
        "last_capture_attempt": format_datetime(None),
        "date_refunded": format_datetime(invoice.date_refunded),
        "date_cancelled": format_datetime(invoice.date_cancelled),
        "subtotal": str(invoice.subtotal),
        "credit": str(invoice.credit),
        "tax": str(invoice.tax),
        "tax2": str(invoice.tax2),
        "total": str(invoice.total),
        "taxrate": format_rate(invoice.taxrate),
        "taxrate2": format_rate(invoice.taxrate2),
        "status": invoice.status,
        "paymentmethod": invoice.paymentmethod,
        "paymethodid": None,
        "notes": invoice.notes,
        "created_at": format_datetime(invoice.created_at),
        "updated_at": format_datetime(invoice.updated_at),
        "currencycode": currency.code,
        "currencyprefix": currency.prefix,
        "currencysuffix": currency.suffix,
    }


_INVOICE_ORDER = {
    "id": lambda i: i.id,
    "invoicenumber": lambda i: (i.invoicenum, i.id),
    "date": lambda i: (i.date, i.id),
    "duedate": lambda i: (i.duedate, i.id),
    "total": lambda i: (i.total, i.id),
    "status": lambda i: (i.status, i.id),
}


def get_invoices(ctx: ActionContext, form: Form) -> dict[str, Any]:
    state = ctx.state
    client_id = form.integer("userid")
    if form.get("userid"):
        invoices = state.invoices_of(client_id) if client_id is not None else []
    else:
        invoices = list(state.invoices.values())
    status = form.get("status")
    if status.lower() == "overdue":
        today = ctx.today()
        invoices = [i for i in invoices if is_overdue(i, today)]
    elif status:
        invoices = [i for i in invoices if i.status.lower() == status.lower()]
    order = _INVOICE_ORDER.get(form.get("orderby").lower(), _INVOICE_ORDER["id"])
    invoices = sorted(invoices, key=order, reverse=form.get("order").lower() == "desc")
    page, start = page_of(invoices, form)
    return {
        "result": "success",
        "totalresults": len(invoices),
        "startnumber": start,
        "numreturned": len(page),
        "invoices": wrapped([invoice_summary(ctx, i) for i in page], "invoice"),
    }


def _find_invoice(ctx: ActionContext, form: Form) -> Invoice:
    invoice_id = form.integer("invoiceid")
    invoice = ctx.state.invoices.get(invoice_id) if invoice_id is not None else None
    if invoice is None:
        raise ApiError("Invoice ID Not Found")
    return invoice


def transaction_row(transaction: Transaction) -> dict[str, Any]:
    return {
        "id": transaction.id,
        "userid": transaction.client_id,
        "currency": transaction.currency_id,
        "gateway": transaction.gateway,
        "date": format_datetime(transaction.date),
        "description": transaction.description,
        "amountin": str(transaction.amountin),
        "fees": str(transaction.fees),
        "amountout": str(transaction.amountout),
        "rate": "1.00000",
        "transid": transaction.transid,
        "invoiceid": transaction.invoice_id,
        "refundid": 0,
    }


def get_invoice(ctx: ActionContext, form: Form) -> dict[str, Any]:
    state = ctx.state
    invoice = _find_invoice(ctx, form)
    transactions = [transaction_row(t) for t in state.transactions_of(invoice.id)]
    return {
        "result": "success",
        "invoiceid": invoice.id,
        "invoicenum": invoice.invoicenum,
        "userid": invoice.client_id,
        "date": format_date(invoice.date),
        "duedate": format_date(invoice.duedate),
        "datepaid": format_datetime(invoice.datepaid),
        "lastcaptureattempt": format_datetime(None),
        "date_refunded": format_datetime(invoice.date_refunded),
        "date_cancelled": format_datetime(invoice.date_cancelled),
        "subtotal": str(invoice.subtotal),
        "credit": str(invoice.credit),
        "tax": str(invoice.tax),
        "tax2": str(invoice.tax2),
        "total": str(invoice.total),
        "balance": str(state.balance(invoice)),
        "taxrate": format_rate(invoice.taxrate),
        "taxrate2": format_rate(invoice.taxrate2),
        "status": invoice.status,
        "paymentmethod": invoice.paymentmethod,
        "notes": invoice.notes,
        "ccgateway": False,
        "items": wrapped(
            [
                {
                    "id": item.id,
                    "type": item.type,
                    "relid": item.relid,
                    "description": item.description,
                    "amount": str(item.amount),
                    "taxed": 1 if item.taxed else 0,
                }
                for item in invoice.items
            ],
            "item",
        ),
        "transactions": wrapped(transactions, "transaction"),
    }


def _edit_lines(ctx: ActionContext, invoice: Invoice, form: Form) -> None:
    by_id = {str(item.id): item for item in invoice.items}
    for line_id, description in form.array("itemdescription").items():
        if line_id in by_id:
            by_id[line_id].description = description.strip()
    for line_id, amount in form.array("itemamount").items():
        if line_id in by_id:
            by_id[line_id].amount = money(parse_decimal(amount, error="Invalid item amount"))
    for line_id, taxed in form.array("itemtaxed").items():
        if line_id in by_id:
            by_id[line_id].taxed = taxed not in ("", "0")
    deleted = set(form.array("deletelineids").values())
    invoice.items = [item for item in invoice.items if str(item.id) not in deleted]
    new_amounts, new_taxed = form.array("newitemamount"), form.array("newitemtaxed")
    for key, description in form.array("newitemdescription").items():
        invoice.items.append(_line(ctx, description.strip(), new_amounts.get(key, ""), new_taxed.get(key, "")))


def _set_status(invoice: Invoice, status: str, now: datetime) -> None:
    invoice.status = status
    if status == "Paid" and invoice.datepaid is None:
        invoice.datepaid = now
    if status == "Cancelled":
        invoice.date_cancelled = now
    if status == "Refunded":
        invoice.date_refunded = now


def update_invoice(ctx: ActionContext, form: Form) -> dict[str, Any]:
    state = ctx.state
    invoice = _find_invoice(ctx, form)
    status = _status(form.get("status")) if form.get("status") else None
    publish = form.flag("publish") or form.flag("publishandsendemail")
    if publish and invoice.status != "Draft":
        raise ApiError("Invoice must be in Draft status to be published")
    new_date = parse_date(form.get("date"), error="Invalid date") if form.get("date") else None
    new_due = parse_date(form.get("duedate"), error="Invalid due date") if form.get("duedate") else None
    credit = form.decimal("credit", error="Invalid credit")
    now = ctx.now()

    _edit_lines(ctx, invoice, form)
    invoice.date = new_date or invoice.date
    invoice.duedate = new_due or invoice.duedate
    invoice.taxrate = _rate(form, "taxrate", invoice.taxrate)
    invoice.taxrate2 = _rate(form, "taxrate2", invoice.taxrate2)
    if credit is not None:
        invoice.credit = money(credit)
    if form.has("notes"):
        invoice.notes = form.values["notes"]
    if form.has("paymentmethod"):
        invoice.paymentmethod = form.get("paymentmethod")
    if publish:
        _set_status(invoice, "Unpaid", now)
    if status is not None:
        _set_status(invoice, status, now)
    invoice.updated_at = now
    client = state.clients.get(invoice.client_id)
    state.recalculate(invoice, client)
    if form.flag("publishandsendemail") and client is not None:
        record_template_email(ctx, "Invoice Created", invoice.id, client, invoice)
    return {"result": "success", "invoiceid": str(invoice.id)}


def _required(form: Form, name: str) -> str:
    value = form.get(name)
    if not value:
        raise ApiError(f"Missing required parameter: {name}")
    return value


def _payment_time(text: str) -> datetime:
    # Documented as YYYY-MM-DD HH:mm:ss; a bare date is accepted as WHMCS's strtotime() would.
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ApiError("Invalid date format. Expected YYYY-MM-DD HH:mm:ss")


def add_invoice_payment(ctx: ActionContext, form: Form) -> dict[str, Any]:
    state = ctx.state
    invoice = _find_invoice(ctx, form)
    if invoice.status == "Cancelled":
        raise ApiError("It is not possible to add a payment to an invoice that is Cancelled")
    transid, gateway = _required(form, "transid"), _required(form, "gateway")
    paid_at = _payment_time(_required(form, "date"))
    amount = form.decimal("amount", error="Invalid amount")
    client = state.clients.get(invoice.client_id)
    transaction = Transaction(
        id=state.next_id("transaction"),
        client_id=invoice.client_id,
        invoice_id=invoice.id,
        transid=transid,
        gateway=gateway,
        date=paid_at,
        amountin=money(amount) if amount is not None else state.balance(invoice),
        fees=money(form.decimal("fees", error="Invalid fees") or ZERO),
        description=f"Invoice Payment (#{invoice.id})",
    )
    state.add_transaction(transaction)
    if state.balance(invoice) <= ZERO and invoice.status in ("Unpaid", "Payment Pending", "Collections", "Draft"):
        invoice.status = "Paid"
        invoice.datepaid = paid_at
        invoice.updated_at = ctx.now()
        if not form.flag("noemail") and client is not None:
            record_template_email(ctx, "Invoice Payment Confirmation", invoice.id, client, invoice)
    return {"result": "success"}


def _localised_date(ctx: ActionContext, text: str) -> datetime:
    try:
        return datetime.strptime(text, ctx.state.date_format).replace(tzinfo=UTC)
    except ValueError:
        raise ApiError("Invalid date format") from None


def add_transaction(ctx: ActionContext, form: Form) -> dict[str, Any]:
    state = ctx.state
    gateway = _required(form, "paymentmethod")
    client_id = form.integer("userid")
    if form.get("userid") and (client_id is None or client_id not in state.clients):
        raise ApiError("Client ID Not Found")
    invoice = _find_invoice(ctx, form) if form.get("invoiceid") else None
    transid = form.get("transid")
    if transid and not form.flag("allowduplicatetransid"):
        if any(t.transid == transid for t in state.transactions.values()):
            raise ApiError("Transaction ID must be Unique")
    when = _localised_date(ctx, form.get("date")) if form.get("date") else ctx.now()
    owner_id = client_id if client_id is not None else (invoice.client_id if invoice else 0)
    state.add_transaction(
        Transaction(
            id=state.next_id("transaction"),
            client_id=owner_id,
            invoice_id=invoice.id if invoice else 0,
            transid=transid,
            gateway=gateway,
            date=when,
            amountin=money(form.decimal("amountin", error="Invalid amountin") or ZERO),
            fees=money(form.decimal("fees", error="Invalid fees") or ZERO),
            amountout=money(form.decimal("amountout", error="Invalid amountout") or ZERO),
            description=form.get("description"),
        )
    )
    return {"result": "success"}
