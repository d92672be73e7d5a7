"""What postpay's operator tools may use of the invoicer (the only module of it postpay/ imports; the
import contracts in pyproject.toml check it): its ledger and each line's provenance; the holds an operator
decides on; and, for ``postpay replay --dry-run``, the invoicer's own decision on a usage.

The ledger is the invoicer's own record of each (client, period): invoiced (with the WHMCS invoice id),
nothing to bill, or pending while an attempt is under way.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.invoicer import holds_store, store
from services.invoicer.decision import Decision, decide
from services.invoicer.handlers import client_tariff
from services.invoicer.holds_store import HELD, PAUSED, REJECTED, RELEASED, SUPERSEDED, WAITING, Hold, Pause, Reason
from services.invoicer.invoice_diff import Line, LineChange, diff_lines, has_differences
from services.invoicer.invoice_document import InvoiceDraft, notes_marker, run_key
from services.invoicer.provenance import LineProvenance, lines_of
from services.invoicer.settings import InvoicerSettings
from services.invoicer.store import (
    BUSY,
    INVOICED,
    NOTHING_TO_BILL,
    PENDING,
    RELEASING,
    UNCERTAIN,
    LedgerEntry,
    entry,
    largest_earlier_invoices,
    ledger,
    tables,
)

__all__ = [
    "BUSY",
    "HELD",
    "INVOICED",
    "LEDGER_REJECTED",
    "LEDGER_WAITING",
    "NOTHING_TO_BILL",
    "PAUSED",
    "PENDING",
    "REJECTED",
    "RELEASED",
    "RELEASING",
    "SUPERSEDED",
    "UNCERTAIN",
    "WAITING",
    "Decision",
    "Hold",
    "InvoiceDraft",
    "InvoicerSettings",
    "LedgerEntry",
    "Line",
    "LineChange",
    "LineProvenance",
    "Pause",
    "Reason",
    "active_pauses",
    "client_tariff",
    "decide",
    "decide_hold",
    "diff_lines",
    "entries_of_client",
    "entries_of_period",
    "entry",
    "entry_by_invoice",
    "has_differences",
    "hold",
    "hold_counts",
    "hold_history",
    "holds_listing",
    "invoiced_totals",
    "largest_earlier_invoices",
    "latest_entries",
    "ledger_counts",
    "lines_of",
    "notes_marker",
    "pause_of",
    "record_hold_action",
    "resume_holds",
    "run_key",
    "set_ledger_status",
    "tables",
]

# The ledger's statuses of a (client, period) an operator decides on. HELD, PAUSED, REJECTED... above are
# a hold's statuses (holds_store); the ledger spells the same words in its own column.
LEDGER_WAITING = (store.HELD, store.PAUSED)
LEDGER_REJECTED = store.REJECTED

# The ledger, written by an operator's decision.
set_ledger_status = store.set_status
ledger_counts = store.count_by_status
# What a period's close invoiced, per currency: ``postpay period status`` reads it here (no event carries it).
invoiced_totals = store.invoiced_totals

# Holds: what waits for an operator, their decisions and the audit of them, paused periods.
hold = holds_store.get
holds_listing = holds_store.listing
hold_history = holds_store.history
hold_counts = holds_store.count_by_status
decide_hold = holds_store.decide
record_hold_action = holds_store.record
pause_of = holds_store.pause_of
resume_holds = holds_store.resume
active_pauses = holds_store.active_pauses


def _entries(rows: object) -> list[LedgerEntry]:
    fields = LedgerEntry.__dataclass_fields__
    return [LedgerEntry(**{name: getattr(row, name) for name in fields}) for row in rows]  # type: ignore[attr-defined]


def entries_of_client(session: Session, client_id: int) -> list[LedgerEntry]:
    """Every period on record for a client, newest first."""
    query = select(ledger).where(ledger.c.whmcs_client_id == client_id).order_by(ledger.c.period.desc())
    return _entries(session.execute(query))


def entries_of_period(
    session: Session, period: str, *, after: int = 0, limit: int = 500, client_id: int | None = None
) -> list[LedgerEntry]:
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
