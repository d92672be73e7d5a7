"""The invoicer's ledger: one row per (client, period), the guard against a second invoice.

A row is ``pending`` from just before the WHMCS call until the invoice id is recorded (``invoiced``), or
``nothing_to_bill``. ``attempts`` counts how often an invoice was about to be created: above one, an
earlier attempt may have reached WHMCS, so the invoicer looks for its run key there before creating.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, Date, Integer, String, Table, case, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.db import Amount, UtcTimestamp
from shared.service import ServiceTables

PENDING = "pending"
INVOICED = "invoiced"
NOTHING_TO_BILL = "nothing_to_bill"

tables = ServiceTables("invoicer")

ledger = Table(
    "invoicer_ledger",
    tables.metadata,
    Column("whmcs_client_id", BigInteger, primary_key=True, autoincrement=False),
    Column("period", String(7), primary_key=True),
    Column("run_key", String(200), nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("invoice_id", BigInteger, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("total", Amount, nullable=True),
    Column("line_count", Integer, nullable=True),
    Column("due_date", Date, nullable=True),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
)


@dataclass(frozen=True)
class LedgerEntry:
    whmcs_client_id: int
    period: str
    run_key: str
    status: str
    attempts: int
    invoice_id: int | None
    currency: str | None
    total: Decimal | None
    line_count: int | None
    due_date: date | None


def _entry(row: Any) -> LedgerEntry | None:
    if row is None:
        return None
    return LedgerEntry(**{name: getattr(row, name) for name in LedgerEntry.__dataclass_fields__})


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(ledger)


def _key(client_id: int, period: str) -> Any:
    return (ledger.c.whmcs_client_id == client_id) & (ledger.c.period == period)


def entry(session: Session, client_id: int, period: str, *, lock: bool = False) -> LedgerEntry | None:
    """The row, if any; with ``lock`` it stays locked until the session's transaction ends."""
    query = select(ledger).where(_key(client_id, period))
    if lock:
        query = query.with_for_update()
    return _entry(session.execute(query).first())


def begin_attempt(session: Session, client_id: int, period: str, run_key: str, now: datetime) -> int | None:
    """Record that an invoice is about to be created; returns the attempts so far, this one included,
    or None when the (client, period) is invoiced already.

    Commit this before calling WHMCS: if the process dies after WHMCS created the invoice, the row
    says an attempt happened, and the next one looks for the invoice instead of creating another.
    """
    statement = _insert(session).values(
        whmcs_client_id=client_id, period=period, run_key=run_key, status=PENDING, attempts=1,
        created_at=now, updated_at=now,
    )
    invoiced = ledger.c.status == INVOICED
    statement = statement.on_conflict_do_update(
        index_elements=[ledger.c.whmcs_client_id, ledger.c.period],
        set_={
            # An invoiced row stays as it is; "nothing to bill" may become an invoice on a replay.
            "attempts": case((invoiced, ledger.c.attempts), else_=ledger.c.attempts + 1),
            "status": case((invoiced, ledger.c.status), else_=literal(PENDING)),
            "updated_at": now,
        },
    ).returning(ledger.c.attempts, ledger.c.status)
    attempts, status = session.execute(statement).one()
    return None if status == INVOICED else int(attempts)


def record_invoice(
    session: Session,
    client_id: int,
    period: str,
    *,
    invoice_id: int,
    currency: str,
    total: Decimal,
    line_count: int,
    due_date: date,
    now: datetime,
) -> None:
    session.execute(
        ledger.update()
        .where(_key(client_id, period))
        .values(status=INVOICED, invoice_id=invoice_id, currency=currency, total=total, line_count=line_count,
                due_date=due_date, updated_at=now)
    )


def record_nothing_to_bill(session: Session, client_id: int, period: str, run_key: str, now: datetime) -> bool:
    """Mark the period as having nothing to bill, unless it is invoiced; returns whether it did."""
    statement = _insert(session).values(
        whmcs_client_id=client_id, period=period, run_key=run_key, status=NOTHING_TO_BILL, attempts=0,
        created_at=now, updated_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[ledger.c.whmcs_client_id, ledger.c.period],
        set_={"status": NOTHING_TO_BILL, "updated_at": now},
        where=ledger.c.status != INVOICED,
    ).returning(ledger.c.status)
    return session.execute(statement).first() is not None
