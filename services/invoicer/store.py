"""The invoicer's ledger: one row per (client, period), the guard against a second invoice.

A row is ``pending`` from just before the WHMCS call until the invoice id is recorded (``invoiced``), or
``nothing_to_bill``. ``attempts`` counts how often an invoice was about to be created: above one, an
earlier attempt may have reached WHMCS, so the invoicer looks for its run key there before creating.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, Date, Integer, String, Table, bindparam, case, literal, select
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


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _insert(dialect: str) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(ledger)


# The hot statements are built once per dialect, with bound parameters: building and cache-keying a
# statement like these costs more CPU than running it, and every invoice runs each of them.
_KEY = (ledger.c.whmcs_client_id == bindparam("p_client_id")) & (ledger.c.period == bindparam("p_period"))
_ENTRY = select(ledger).where(_KEY)
_ENTRY_LOCKED = _ENTRY.with_for_update()
_RECORD_INVOICE = ledger.update().where(_KEY).values(
    status=INVOICED, invoice_id=bindparam("p_invoice_id"), currency=bindparam("p_currency"),
    total=bindparam("p_total"), line_count=bindparam("p_line_count"), due_date=bindparam("p_due_date"),
    updated_at=bindparam("p_now"),
)


@functools.cache
def _begin_attempt(dialect: str) -> Any:
    statement = _insert(dialect).values(
        whmcs_client_id=bindparam("p_client_id"), period=bindparam("p_period"), run_key=bindparam("p_run_key"),
        status=PENDING, attempts=1, created_at=bindparam("p_now"), updated_at=bindparam("p_now"),
    )
    invoiced = ledger.c.status == INVOICED
    return statement.on_conflict_do_update(
        index_elements=[ledger.c.whmcs_client_id, ledger.c.period],
        set_={
            # An invoiced row stays as it is; "nothing to bill" may become an invoice on a replay.
            "attempts": case((invoiced, ledger.c.attempts), else_=ledger.c.attempts + 1),
            "status": case((invoiced, ledger.c.status), else_=literal(PENDING)),
            "updated_at": bindparam("p_now"),
        },
    ).returning(ledger.c.attempts, ledger.c.status)


def entry(session: Session, client_id: int, period: str, *, lock: bool = False) -> LedgerEntry | None:
    """The row, if any; with ``lock`` it stays locked until the session's transaction ends."""
    query = _ENTRY_LOCKED if lock else _ENTRY
    return _entry(session.execute(query, {"p_client_id": client_id, "p_period": period}).first())


def begin_attempt(session: Session, client_id: int, period: str, run_key: str, now: datetime) -> int | None:
    """Record that an invoice is about to be created; returns the attempts so far, this one included,
    or None when the (client, period) is invoiced already.

    Commit this before calling WHMCS: if the process dies after WHMCS created the invoice, the row
    says an attempt happened, and the next one looks for the invoice instead of creating another.
    """
    parameters = {"p_client_id": client_id, "p_period": period, "p_run_key": run_key, "p_now": now}
    attempts, status = session.execute(_begin_attempt(_dialect(session)), parameters).one()
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
    session.execute(_RECORD_INVOICE, {
        "p_client_id": client_id, "p_period": period, "p_invoice_id": invoice_id, "p_currency": currency,
        "p_total": total, "p_line_count": line_count, "p_due_date": due_date, "p_now": now,
    })


def record_nothing_to_bill(session: Session, client_id: int, period: str, run_key: str, now: datetime) -> bool:
    """Mark the period as having nothing to bill, unless it is invoiced; returns whether it did."""
    statement = _insert(_dialect(session)).values(
        whmcs_client_id=client_id, period=period, run_key=run_key, status=NOTHING_TO_BILL, attempts=0,
        created_at=now, updated_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[ledger.c.whmcs_client_id, ledger.c.period],
        set_={"status": NOTHING_TO_BILL, "updated_at": now},
        where=ledger.c.status != INVOICED,
    ).returning(ledger.c.status)
    return session.execute(statement).first() is not None
