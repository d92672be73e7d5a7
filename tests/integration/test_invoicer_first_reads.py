"""The invoicer's reads before WHMCS, in one statement, say what the three separate reads said."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from services.invoicer import first_reads, holds_store, store
from shared.db import Database

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _invoiced(db: Database, client_id: int, period: str, currency: str, total: str) -> None:
    with db.transaction() as session:
        key = f"run-{client_id}-{period}"
        store.claim(session, client_id, period, key, NOW, quiet=NOW - NOW)
        store.record_invoice(
            session,
            client_id,
            period,
            invoice_id=client_id * 100 + int(period[-2:]),
            currency=currency,
            total=Decimal(total),
            line_count=1,
            due_date=date(2026, 3, 20),
            now=NOW,
        )


def _separately(db: Database, client_id: int, period: str) -> first_reads.FirstReads:
    with db.transaction() as session:
        return first_reads.FirstReads(
            store.entry(session, client_id, period),
            store.largest_earlier_invoices(session, client_id, period),
            holds_store.pause_of(session, period),
        )


def test_nothing_yet_reads_as_nothing(database: Database) -> None:
    store.tables.metadata.create_all(database.engine)
    with database.transaction() as session:
        reads = first_reads.read(session, 7, "2026-02")
    assert reads == first_reads.FirstReads(None, {}, None)
    assert reads == _separately(database, 7, "2026-02")


def test_a_row_earlier_invoices_in_two_currencies_and_a_pause(database: Database) -> None:
    store.tables.metadata.create_all(database.engine)
    _invoiced(database, 7, "2025-11", "EUR", "12.50")
    _invoiced(database, 7, "2025-12", "EUR", "99.95")
    _invoiced(database, 7, "2026-01", "USD", "40.10")
    _invoiced(database, 8, "2025-12", "EUR", "500.00")  # another client's: not this one's history
    _invoiced(database, 7, "2026-02", "EUR", "1.00")  # this period's own row
    with database.transaction() as session:
        holds_store.pause(session, "2026-02", held=3, seen=10, now=NOW)
        reads = first_reads.read(session, 7, "2026-02")
    assert reads.entry is not None and reads.entry.status == store.INVOICED and reads.entry.total == Decimal("1.00")
    assert reads.earlier == {"EUR": Decimal("99.95"), "USD": Decimal("40.10")}
    assert reads.pause is not None and reads.pause.active and reads.pause.held == 3
    assert reads == _separately(database, 7, "2026-02")
