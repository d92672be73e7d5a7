"""Email actions (SendEmail, GetEmails) and the record of every email the simulator "sent".

Nothing is delivered: tests and the demo read the record (``/_sim/emails``). Merge fields are
rendered the simple way, ``{$name}`` replaced by its value, which is enough to read a link back out.
"""

from __future__ import annotations

import re
from typing import Any

from simulators.whmcs.params import ActionContext, ApiError, Form, format_date, format_datetime, page_of, wrapped
from simulators.whmcs.phpunserialize import SerializedError, decode_array
from simulators.whmcs.state import Client, Invoice, SentEmail

MESSAGE_TYPES = ("general", "product", "domain", "invoice", "support", "affiliate")
SENDING_FAILED = "Sending Failed. Please see documentation."
_MERGE_FIELD = re.compile(r"\{\$([A-Za-z0-9_]+)\}")


def merge_fields(ctx: ActionContext, client: Client | None, invoice: Invoice | None) -> dict[str, str]:
    fields: dict[str, str] = {}
    if client is not None:
        fields.update(
            client_id=str(client.id),
            client_name=f"{client.firstname} {client.lastname}",
            client_first_name=client.firstname,
            client_last_name=client.lastname,
            client_company_name=client.companyname,
            client_email=client.email,
        )
    if invoice is not None:
        state = ctx.state
        currency = state.currency_of(client) if client is not None else state.default_currency()
        fields.update(
            invoice_id=str(invoice.id),
            invoice_num=invoice.invoicenum or str(invoice.id),
            invoice_total=currency.format(invoice.total),
            invoice_balance=currency.format(state.balance(invoice)),
            invoice_status=invoice.status,
            invoice_date_created=format_date(invoice.date),
            invoice_date_due=format_date(invoice.duedate),
        )
    return fields


def render(text: str, fields: dict[str, Any]) -> str:
    return _MERGE_FIELD.sub(lambda m: str(fields.get(m.group(1), "")), text)


def _record(
    ctx: ActionContext,
    *,
    name: str,
    kind: str,
    related_id: int,
    client: Client | None,
    invoice: Invoice | None,
    subject: str,
    message: str,
    customvars: dict[str, Any],
) -> SentEmail:
    fields: dict[str, Any] = {**merge_fields(ctx, client, invoice), **customvars}
    email = SentEmail(
        id=ctx.state.next_id("email"),
        messagename=name,
        type=kind,
        related_id=related_id,
        client_id=client.id if client else None,
        to=client.email if client else "",
        subject=render(subject, fields),
        message=render(message, fields),
        customvars=customvars,
        date=ctx.now(),
    )
    ctx.state.emails.append(email)
    return email


def record_template_email(
    ctx: ActionContext, name: str, related_id: int, client: Client, invoice: Invoice | None = None
) -> None:
    """What WHMCS sends by itself (signup, invoice created, payment confirmation), if enabled."""
    template = ctx.state.templates.get(name.lower())
    if template is None or template.disabled:
        return
    _record(
        ctx,
        name=template.name,
        kind=template.type,
        related_id=related_id,
        client=client,
        invoice=invoice,
        subject=template.subject,
        message=template.message,
        customvars={},
    )


def _customvars(form: Form) -> dict[str, Any]:
    if form.array("customvars"):
        return dict(form.array("customvars"))
    encoded = form.get("customvars")
    if not encoded:
        return {}
    try:
        decoded = decode_array(encoded)
    except SerializedError:
        raise ApiError("The custom variables you provided are invalid.") from None
    return {str(key): value for key, value in decoded.items()}


def _related(ctx: ActionContext, kind: str, related_id: int) -> tuple[Client | None, Invoice | None]:
    state = ctx.state
    if kind == "general":
        client = state.clients.get(related_id)
        if client is None:
            raise ApiError(SENDING_FAILED)
        return client, None
    if kind == "invoice":
        invoice = state.invoices.get(related_id)
        if invoice is None:
            raise ApiError(SENDING_FAILED)
        return state.clients.get(invoice.client_id), invoice
    # Services, domains, tickets and affiliates are not simulated: their ids cannot resolve.
    raise ApiError(SENDING_FAILED)


def send_email(ctx: ActionContext, form: Form) -> dict[str, Any]:
    messagename, customtype = form.get("messagename"), form.get("customtype").lower()
    if not messagename and not customtype:
        raise ApiError("You must provide either an existing email template name or a custom message type")
    if not form.get("id"):
        raise ApiError("A related ID is required")
    related_id = form.integer("id")
    if related_id is None:
        raise ApiError(SENDING_FAILED)
    customvars = _customvars(form)
    if messagename:
        template = ctx.state.templates.get(messagename.lower())
        if template is None:
            raise ApiError("Email Template not found")
        if template.disabled:
            raise ApiError("Email Template is disabled")
        if not template.api_sendable:
            raise ApiError(SENDING_FAILED)
        kind, subject, message, name = template.type, template.subject, template.message, template.name
    else:
        if customtype not in MESSAGE_TYPES:
            raise ApiError("Invalid message type provided")
        subject, message = form.get("customsubject"), form.values.get("custommessage", "")
        if not subject:
            raise ApiError("A subject is required for a custom message")
        if not message.strip():
            raise ApiError("A message body is required for a custom message")
        kind, name = customtype, ""
    client, invoice = _related(ctx, kind, related_id)
    fields: dict[str, Any] = {**merge_fields(ctx, client, invoice), **customvars}
    if not render(message, fields).strip():
        raise ApiError(SENDING_FAILED)
    _record(
        ctx,
        name=name,
        kind=kind,
        related_id=related_id,
        client=client,
        invoice=invoice,
        subject=subject,
        message=message,
        customvars=customvars,
    )
    return {"result": "success"}


def get_emails(ctx: ActionContext, form: Form) -> dict[str, Any]:
    client_id = form.integer("clientid")
    if client_id is None or client_id not in ctx.state.clients:
        # Reproduced inconsistency (developer-docs issue #80): "status", not "result".
        return {"status": "error", "message": "Client ID Not Found"}
    emails = [e for e in ctx.state.emails if e.client_id == client_id]
    page, start = page_of(emails, form)
    rows = [
        {
            "id": e.id,
            "userid": e.client_id,
            "subject": e.subject,
            "message": e.message,
            "date": format_datetime(e.date),
            "to": e.to,
            "cc": "",
            "bcc": "",
            "attachments": [],
            "pending": 0,
        }
        for e in page
    ]
    return {
        "result": "success",
        "totalresults": len(emails),
        "startnumber": start,
        "numreturned": len(page),
        "emails": wrapped(rows, "email"),
    }
