"""The WHMCS calls about invoices: create, list (all pages), find by marker, read, update, pay.

CreateInvoice and AddInvoicePayment are sent once; after an unknown outcome the caller finds the
invoice by the marker it put in the notes (:meth:`WhmcsInvoiceCalls.find_invoice_by_marker`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from shared.logging import get_logger
from shared.upstream.whmcs_connection import PAGE_SIZE, WhmcsConnection
from shared.upstream.whmcs_models import InvoiceLine, WhmcsInvoice, WhmcsInvoiceSummary
from shared.upstream.whmcs_wire import created_id, format_amount

log = get_logger("postpay.upstream.whmcs")


class WhmcsInvoiceCalls(WhmcsConnection):
    """CreateInvoice, GetInvoices, GetInvoice, UpdateInvoice and AddInvoicePayment."""

    def create_invoice(
        self,
        client_id: int,
        lines: Sequence[InvoiceLine],
        *,
        date: date,
        due_date: date,
        notes: str,
        send_invoice: bool,
        payment_method: str | None,
        draft: bool = False,
        tax_rate: Decimal | None = None,
        tax_rate2: Decimal | None = None,
    ) -> int:
        """CreateInvoice, sent once. Put a unique marker in ``notes``: after
        :class:`UpstreamOutcomeUnknown`, :meth:`find_invoice_by_marker` tells whether it exists."""
        if not lines:
            raise ValueError("an invoice needs at least one line")
        params: dict[str, Any] = {
            "userid": client_id,
            "date": self._day(date),
            "duedate": self._day(due_date),
            "notes": notes,
            "sendinvoice": send_invoice,
            "draft": draft,
            "paymentmethod": payment_method,
            "taxrate": str(tax_rate) if tax_rate is not None else None,
            "taxrate2": str(tax_rate2) if tax_rate2 is not None else None,
        }
        for number, line in enumerate(lines, start=1):
            params[f"itemdescription{number}"] = line.description
            params[f"itemamount{number}"] = format_amount(line.amount)
            params[f"itemtaxed{number}"] = line.taxed
        return created_id(self._write("CreateInvoice", params), "invoiceid", "CreateInvoice")

    def _invoice_pages(self, client_id: int, status: str | None) -> Iterator[WhmcsInvoiceSummary]:
        start = 0
        while True:
            payload = self._read(
                "GetInvoices",
                {
                    "userid": client_id,
                    "status": status,
                    "limitstart": start,
                    "limitnum": PAGE_SIZE,
                    "orderby": "id",
                    "order": "asc",
                },
            )
            invoices = payload.get("invoices")
            rows = invoices.get("invoice", []) if isinstance(invoices, dict) else []
            for row in rows:
                yield self._parse(WhmcsInvoiceSummary, row, "GetInvoices")
            start += len(rows)
            if not rows or start >= int(payload.get("totalresults") or 0):
                return

    def get_invoices(self, client_id: int, status: str | None = None) -> list[WhmcsInvoiceSummary]:
        """Every invoice of the client (all pages), oldest first. ``status`` may be ``"Overdue"``."""
        return list(self._invoice_pages(client_id, status))

    def find_invoice_by_marker(self, client_id: int, marker: str) -> WhmcsInvoiceSummary | None:
        """The client's invoice whose notes contain ``marker`` (the oldest, if somehow several)."""
        if not marker:
            raise ValueError("an empty marker would match every invoice")
        matches = [inv for inv in self._invoice_pages(client_id, None) if marker in inv.notes]
        if len(matches) > 1:
            log.warning("whmcs invoices share a marker", client_id=client_id, invoice_ids=[m.id for m in matches])
        return matches[0] if matches else None

    def get_invoice(self, invoice_id: int, *, include_currency: bool = False) -> WhmcsInvoice:
        """GetInvoice; raises :class:`UpstreamNotFound`. With ``include_currency`` the currency code
        comes from the invoice's GetInvoices row (one more paged read)."""
        payload = self._read("GetInvoice", {"invoiceid": invoice_id})
        invoice = self._parse(WhmcsInvoice, payload, "GetInvoice")
        if include_currency:
            summary = next((s for s in self._invoice_pages(invoice.client_id, None) if s.id == invoice.id), None)
            if summary is not None:
                invoice = invoice.model_copy(update={"currency_code": summary.currency_code})
        return invoice

    def update_invoice(self, invoice_id: int, **fields: Any) -> None:
        """UpdateInvoice with WHMCS parameter names. Line edits take mappings keyed by line id
        (``itemamount={12: "9.99"}``), new lines lists (``newitemdescription=[...]``),
        ``deletelineids=[...]``; booleans go as 1/0, Decimals as text."""
        self._write("UpdateInvoice", {"invoiceid": invoice_id, **fields})

    def add_invoice_payment(
        self,
        invoice_id: int,
        *,
        transid: str,
        gateway: str,
        date: datetime,
        amount: Decimal | None = None,
        noemail: bool = False,
    ) -> None:
        """AddInvoicePayment, sent once; WHMCS does not reject a repeated ``transid`` here. Without
        ``amount`` the whole balance is paid."""
        if date.tzinfo is None:
            raise ValueError("the payment date must be timezone-aware")
        self._write(
            "AddInvoicePayment",
            {
                "invoiceid": invoice_id,
                "transid": transid,
                "gateway": gateway,
                "date": date.astimezone(self._timezone).strftime("%Y-%m-%d %H:%M:%S"),
                "amount": format_amount(amount) if amount is not None else None,
                "noemail": noemail,
            },
        )
