"""The invoicer's ledger: one row per (client, period), the guard against a second invoice.

A row is ``pending`` from just before the WHMCS call until its outcome is recorded: ``invoiced``,
``failed`` (WHMCS refused; nothing was created), or ``uncertain`` since a moment (a timeout, a dropped
connection or a 5xx after CreateInvoice was sent, or an attempt that died: the invoice may exist, or
appear later while WHMCS finishes). No CreateInvoice is sent for an uncertain row until a look-up by
run key made a quiet time after that moment finds nothing (``claim``). Other outcomes: ``nothing_to_bill``,
``held`` or ``paused`` for an operator, ``rejected`` by one, ``releasing`` once one released it.
``attempts`` counts CreateInvoice attempts and fences the writes of the delivery that made the last one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, ColumnElement, Date, Integer, String, Table, bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.db import (
    Amount,
    UtcTimestamp,
    dialect_name,
    first_row_on_driver,
    insert_on_conflict,
    require_aware,
    rows_changed,
)
from shared.service import ServiceTables

PENDING = "pending"
INVOICED = "invoiced"
NOTHING_TO_BILL = "nothing_to_bill"
UNCERTAIN = "uncertain"
FAILED = "failed"
HELD = "held"
PAUSED = "paused"
REJECTED = "rejected"
RELEASING = "releasing"
# An attempt may be running, or its outcome is unknown: only ``claim`` moves a row out of these.
BUSY = (PENDING, UNCERTAIN)
# Nothing more to do for the (client, period), whoever asks.
FINAL = (INVOICED, REJECTED)

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
    Column("uncertain_since", UtcTimestamp, nullable=True),
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
    updated_at: datetime
    uncertain_since: datetime | None


def _entry(row: Any) -> LedgerEntry | None:
    if row is None:
        return None
    return LedgerEntry(**{name: getattr(row, name) for name in LedgerEntry.__dataclass_fields__})


# The hot statements are built once per dialect, with bound parameters: building and cache-keying a
# statement like these costs more CPU than running it, and every invoice runs each of them.
_KEY = (ledger.c.whmcs_client_id == bindparam("p_client_id")) & (ledger.c.period == bindparam("p_period"))
_ENTRY = select(ledger).where(_KEY)
_ENTRY_LOCKED = _ENTRY.with_for_update()
_RECORD_INVOICE = (
    ledger.update()
    .where(_KEY)
    .values(
        status=INVOICED,
        invoice_id=bindparam("p_invoice_id"),
        currency=bindparam("p_currency"),
        total=bindparam("p_total"),
        line_count=bindparam("p_line_count"),
        due_date=bindparam("p_due_date"),
        updated_at=bindparam("p_now"),
        uncertain_since=None,
    )
)


@functools.cache
def _first_attempt(dialect: str) -> Any:
    return (
        insert_on_conflict(dialect, ledger)
        .values(
            whmcs_client_id=bindparam("p_client_id"),
            period=bindparam("p_period"),
            run_key=bindparam("p_run_key"),
            status=PENDING,
            attempts=1,
            created_at=bindparam("p_now"),
            updated_at=bindparam("p_now"),
        )
        .on_conflict_do_nothing(index_elements=[ledger.c.whmcs_client_id, ledger.c.period])
        .returning(ledger.c.attempts)
    )


# ``_first_attempt`` on PostgreSQL, in the driver's parameter style.
_FIRST_ATTEMPT_SQL = (
    f"INSERT INTO {ledger.name} (whmcs_client_id, period, run_key, status, attempts, created_at, updated_at) "
    f"VALUES (%(p_client_id)s, %(p_period)s, %(p_run_key)s, '{PENDING}', 1, %(p_now)s, %(p_now)s) "
    "ON CONFLICT (whmcs_client_id, period) DO NOTHING RETURNING attempts"
)


def entry(session: Session | Connection, client_id: int, period: str, *, lock: bool = False) -> LedgerEntry | None:
    """The row, if any; with ``lock`` it stays locked until the session's transaction ends."""
    query = _ENTRY_LOCKED if lock else _ENTRY
    return _entry(session.execute(query, {"p_client_id": client_id, "p_period": period}).first())


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
        _RECORD_INVOICE,
        {
            "p_client_id": client_id,
            "p_period": period,
            "p_invoice_id": invoice_id,
            "p_currency": currency,
            "p_total": total,
            "p_line_count": line_count,
            "p_due_date": due_date,
            "p_now": now,
        },
    )


@dataclass(frozen=True)
class Claim:
    """What a delivery may do about (client, period): ``go`` (it now owns attempt ``attempts``; with
    ``look_up_first`` an earlier attempt's outcome is unknown), ``wait`` ``wait_seconds`` for the quiet
    time to pass, or nothing because the row is ``done`` (``status`` says how)."""

    action: str
    attempts: int = 0
    look_up_first: bool = False
    wait_seconds: float = 0.0
    status: str | None = None


def claim(
    session: Session | Connection,
    client_id: int,
    period: str,
    run_key: str,
    now: datetime,
    quiet: timedelta,
    *,
    done: tuple[str, ...] = FINAL,
) -> Claim:
    """Take the next attempt for (client, period); commit it before calling WHMCS.

    A ``pending`` row found here belongs to an attempt that died or is running right now: its outcome is
    unknown from the moment it began, so the row becomes ``uncertain`` since then. An uncertain row is
    claimed only once ``quiet`` has passed since that moment (longer than WHMCS may take to finish a
    request), and the claimant must look the invoice up by its run key before creating one.
    """
    parameters = {"p_client_id": client_id, "p_period": period, "p_run_key": run_key, "p_now": now}
    if dialect_name(session) == "postgresql":
        # The common case, every invoice's: as plain SQL on the driver (SQLAlchemy's execution layer
        # cost several times the driver's work for this one row).
        first = first_row_on_driver(session, _FIRST_ATTEMPT_SQL, {**parameters, "p_now": require_aware(now)})
    else:
        first = session.execute(_first_attempt(dialect_name(session)), parameters).first()
    if first is not None:
        return Claim("go", attempts=1)
    row = entry(session, client_id, period, lock=True)
    assert row is not None
    if row.status in done:
        return Claim("done", status=row.status)
    since = row.uncertain_since
    if row.status == PENDING:
        since = max(row.updated_at, since) if since else row.updated_at
        _update(session, client_id, period, status=UNCERTAIN, uncertain_since=since)
    elif row.status != UNCERTAIN:
        since = None
    if since is not None and now < since + quiet:
        return Claim("wait", wait_seconds=(since + quiet - now).total_seconds(), status=UNCERTAIN)
    attempts = row.attempts + 1
    _update(session, client_id, period, status=PENDING, attempts=attempts, updated_at=now, uncertain_since=since)
    return Claim("go", attempts=attempts, look_up_first=since is not None)


def mark_uncertain(session: Session, client_id: int, period: str, since: datetime | None) -> None:
    """The attempt's outcome is unknown (``since``: from this moment; None: since the moment on record,
    for an attempt that failed before it sent anything new)."""
    values = {"uncertain_since": since} if since is not None else {}
    session.execute(
        ledger.update().where(_key(client_id, period), ledger.c.status.in_(BUSY)).values(status=UNCERTAIN, **values)
    )


def mark_failed(session: Session, client_id: int, period: str, attempts: int) -> None:
    """WHMCS refused the attempt: nothing was created, the next one needs no look-up."""
    session.execute(
        ledger.update()
        .where(_key(client_id, period), ledger.c.status == PENDING, ledger.c.attempts == attempts)
        .values(status=FAILED, uncertain_since=None)
    )


def settle(
    session: Session, client_id: int, period: str, run_key: str, status: str, now: datetime, *, fence: int | None
) -> bool:
    """Record an outcome that is not an invoice (nothing to bill, held, paused). With ``fence`` the
    delivery owns attempt ``fence`` and may overwrite its own pending row; without, only a row no
    attempt is busy with. False when the row was not this delivery's to change."""
    allowed: ColumnElement[bool]
    if fence is not None:
        allowed = (ledger.c.status == PENDING) & (ledger.c.attempts == fence)
    else:
        allowed = ledger.c.status.notin_((*BUSY, *FINAL, RELEASING))
    statement = (
        insert_on_conflict(session, ledger)
        .values(
            whmcs_client_id=client_id,
            period=period,
            run_key=run_key,
            status=status,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_update(
            index_elements=[ledger.c.whmcs_client_id, ledger.c.period],
            set_={"status": status, "updated_at": now, "uncertain_since": None},
            where=allowed,
        )
        .returning(ledger.c.status)
    )
    return session.execute(statement).first() is not None


def set_status(
    session: Session, client_id: int, period: str, status: str, now: datetime, *, only_from: tuple[str, ...]
) -> bool:
    """An operator's decision on a held or paused row (reject, release); False if it is not in ``only_from``."""
    result = session.execute(
        ledger.update()
        .where(_key(client_id, period), ledger.c.status.in_(only_from))
        .values(status=status, updated_at=now)
    )
    return bool(rows_changed(result))


# Read before every invoice: built once (see above).
LARGEST_EARLIER = (
    select(ledger.c.currency, func.max(ledger.c.total).label("largest"))
    .where(
        ledger.c.whmcs_client_id == bindparam("p_client_id"),
        ledger.c.period < bindparam("p_period"),
        ledger.c.status == INVOICED,
    )
    .group_by(ledger.c.currency)
)


def largest_earlier_invoices(session: Session, client_id: int, period: str) -> dict[str, Decimal]:
    """Per currency, the client's largest invoice of a period before ``period``."""
    rows = session.execute(LARGEST_EARLIER, {"p_client_id": client_id, "p_period": period})
    return {currency: Decimal(total) for currency, total in rows if currency and total is not None}


def count_by_status(session: Session, period: str) -> dict[str, int]:
    query = select(ledger.c.status, func.count()).where(ledger.c.period == period).group_by(ledger.c.status)
    return {status: int(count) for status, count in session.execute(query)}


def invoiced_totals(session: Session, period: str) -> dict[str, Decimal]:
    """Invoiced amounts of ``period`` per currency (the sum of the lines, before any WHMCS tax)."""
    invoiced = (ledger.c.period == period) & (ledger.c.status == INVOICED)
    if dialect_name(session) == "postgresql":
        query = select(ledger.c.currency, func.sum(ledger.c.total)).where(invoiced).group_by(ledger.c.currency)
        return {currency: Decimal(total) for currency, total in session.execute(query)}
    # SQLite keeps amounts as text and would add them up as floats: sum them here instead.
    totals: dict[str, Decimal] = {}
    for currency, total in session.execute(select(ledger.c.currency, ledger.c.total).where(invoiced)):
        totals[currency] = totals.get(currency, Decimal(0)) + total
    return totals


def _key(client_id: int, period: str) -> Any:
    return (ledger.c.whmcs_client_id == client_id) & (ledger.c.period == period)


def _update(session: Session | Connection, client_id: int, period: str, **values: Any) -> None:
    session.execute(ledger.update().where(_key(client_id, period)).values(**values))
