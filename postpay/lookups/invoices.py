"""Invoices as the invoicer recorded them, each line with its provenance, next to WHMCS's own view."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.invoicer import public as invoicer
from shared.db import Database
from shared.upstream.errors import UpstreamError


@dataclass(frozen=True)
class InvoiceDetail:
    invoice_id: int
    ledger: invoicer.LedgerEntry
    lines: list[invoicer.LineProvenance] = field(default_factory=list)
    whmcs_status: str | None = None
    whmcs_total: Any = None
    whmcs_balance: Any = None
    whmcs_lines: list[dict[str, Any]] = field(default_factory=list)
    whmcs_error: str | None = None

    @property
    def provenance_note(self) -> str | None:
        if self.lines:
            return None
        return (
            "no provenance recorded: the invoice was created before postpay kept it, or was found by its run "
            "key after an interrupted attempt"
        )


def list_invoices(
    db: Database, *, period: str | None = None, client_id: int | None = None, limit: int = 500
) -> list[invoicer.LedgerEntry]:
    with db.transaction() as session:
        if period is not None:
            return invoicer.entries_of_period(session, period, limit=limit, client_id=client_id)
        if client_id is not None:
            return invoicer.entries_of_client(session, client_id)[:limit]
        return invoicer.latest_entries(session, limit)


def invoice_detail(db: Database, whmcs: Any, invoice_id: int, *, live: bool = True) -> InvoiceDetail | None:
    """None when postpay did not create invoice ``invoice_id``."""
    with db.transaction() as session:
        entry = invoicer.entry_by_invoice(session, invoice_id)
        lines = invoicer.lines_of(session, invoice_id) if entry else []
    if entry is None:
        return None
    if not live or whmcs is None:
        return InvoiceDetail(invoice_id, entry, lines)
    try:
        found = whmcs.get_invoice(invoice_id)
    except UpstreamError as exc:
        return InvoiceDetail(invoice_id, entry, lines, whmcs_error=f"{type(exc).__name__}: {exc}")
    items = [{"description": item.description, "amount": item.amount} for item in found.items]
    return InvoiceDetail(
        invoice_id,
        entry,
        lines,
        whmcs_status=found.status,
        whmcs_total=found.total,
        whmcs_balance=found.balance,
        whmcs_lines=items,
    )
