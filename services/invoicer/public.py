"""What postpay's operator tools may use of the invoicer: its ledger and each line's provenance, read-only.

The ledger is the invoicer's own record of each (client, period): invoiced (with the WHMCS invoice id),
nothing to bill, or pending while an attempt is under way.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.invoicer.invoice_document import notes_marker, run_key
from services.invoicer.provenance import LineProvenance, lines_of
from services.invoicer.settings import InvoicerSettings
from services.invoicer.store import INVOICED, NOTHING_TO_BILL, PENDING, LedgerEntry, entry, ledger, tables

__all__ = [
    "INVOICED", "NOTHING_TO_BILL", "PENDING", "InvoicerSettings", "LedgerEntry", "LineProvenance", "entries_of_client",
    "entries_of_period", "entry", "entry_by_invoice", "latest_entries", "lines_of", "notes_marker", "run_key", "tables",
]  # fmt: skip


def _entries(rows: object) -> list[LedgerEntry]:
    fields = LedgerEntry.__dataclass_fields__
    return [LedgerEntry(**{name: getattr(row, name) for name in fields}) for row in rows]  # type: ignore[attr-defined]


def entries_of_client(session: Session, client_id: int) -> list[LedgerEntry]:
    """Every period on record for a client, newest first."""
    query = select(ledger).where(ledger.c.whmcs_client_id == client_id).order_by(ledger.c.period.desc())
    return _entries(session.execute(query))


def entries_of_period(session: Session, period: str, *, after: int = 0, limit: int = 500,
                      client_id: int | None = None) -> list[LedgerEntry]:
    """A period's ledger by client id after ``after`` (keyset paging)."""
    query = select(ledger).where(ledger.c.period == period, ledger.c.whmcs_client_id > after)
    if client_id is not None:
        query = query.where(ledger.c.whmcs_client_id == client_id)
    return _entries(session.execute(query.order_by(ledger.c.whmcs_client_id).limit(limit)))


def entry_by_invoice(session: Session, invoice_id: int) -> LedgerEntry | None:
    found = _entries(session.execute(select(ledger).where(ledger.c.invoice_id == invoice_id)))
    return found[0] if found else None


def latest_entries(session: Session, limit: int = 200) -> list[LedgerEntry]:
    """The most recently changed ledger rows, newest first."""
    return _entries(session.execute(select(ledger).order_by(ledger.c.updated_at.desc()).limit(limit)))
