"""The usage collector's tables: its own view of who is enrolled, fan-out progress, and per-customer
period records (what was collected; how the invoicer settled it is in the invoicer's ledger)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Uuid,
    bindparam,
    case,
    func,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.db import Amount, UtcTimestamp, dialect_name, first_row_on_driver, insert_on_conflict, require_aware
from shared.events.base import Envelope
from shared.outbox import Outbox
from shared.service import ServiceTables

COLLECTED = "collected"
# Rows settled before the invoicer's outcomes stopped coming here (the ledger is where they are now, see
# postpay/ops/status.py) may still say these.
INVOICED = "invoiced"
NOTHING_TO_BILL = "nothing_to_bill"

tables = ServiceTables("usage_collector")

customers = Table(
    "usage_collector_customers",
    tables.metadata,
    Column("whmcs_client_id", BigInteger, primary_key=True, autoincrement=False),
    Column("solusvm_user_id", BigInteger, nullable=False, unique=True),
    Column("enrolled_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Index("usage_collector_customers_enrolled_at", "enrolled_at"),
)

fanouts = Table(
    "usage_collector_fanouts",
    tables.metadata,
    Column("close_event_id", Uuid, primary_key=True),
    Column("period", String(7), nullable=False),
    Column("trigger", String(10), nullable=False),
    Column("last_client_id", BigInteger, nullable=False),
    Column("requested", Integer, nullable=False),
    Column("finished", Boolean, nullable=False),
    Column("started_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Index("usage_collector_fanouts_period", "period"),
)

collections = Table(
    "usage_collector_collections",
    tables.metadata,
    Column("period", String(7), primary_key=True),
    Column("whmcs_client_id", BigInteger, primary_key=True, autoincrement=False),
    Column("solusvm_user_id", BigInteger, nullable=False),
    Column("vm_count", Integer, nullable=False),
    Column("total_tokens", BigInteger, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("invoice_id", BigInteger, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("total", Amount, nullable=True),
    Column("collected_at", UtcTimestamp, nullable=False),
    Column("settled_at", UtcTimestamp, nullable=True),
    Index("usage_collector_collections_outcome", "period", "outcome"),
)


# -- customers ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Customer:
    whmcs_client_id: int
    solusvm_user_id: int
    enrolled_at: datetime


def customer_by_user(session: Session, solusvm_user_id: int) -> Customer | None:
    row = session.execute(select(customers).where(customers.c.solusvm_user_id == solusvm_user_id)).first()
    return Customer(row.whmcs_client_id, row.solusvm_user_id, row.enrolled_at) if row else None


def save_customer(session: Session, customer: Customer, now: datetime) -> None:
    """Insert, or follow a re-provisioning to its SolusVM user; enrolment keeps its earliest date."""
    statement = insert_on_conflict(session, customers).values(
        whmcs_client_id=customer.whmcs_client_id,
        solusvm_user_id=customer.solusvm_user_id,
        enrolled_at=customer.enrolled_at,
        updated_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[customers.c.whmcs_client_id],
        set_={
            "solusvm_user_id": statement.excluded.solusvm_user_id,
            "enrolled_at": case(
                (statement.excluded.enrolled_at < customers.c.enrolled_at, statement.excluded.enrolled_at),
                else_=customers.c.enrolled_at,
            ),
            "updated_at": now,
        },
    )
    session.execute(statement)


def _enrolled_before(ends_at: datetime, only: Sequence[int] | None) -> Any:
    condition = customers.c.enrolled_at < ends_at
    if only is not None:
        condition = condition & customers.c.whmcs_client_id.in_(list(only))
    return condition


def customers_page(
    session: Session, *, enrolled_before: datetime, after: int, limit: int, only: Sequence[int] | None = None
) -> list[Customer]:
    """The next ``limit`` customers by client id after ``after`` (keyset paging: no OFFSET scans)."""
    query = (
        select(customers.c.whmcs_client_id, customers.c.solusvm_user_id, customers.c.enrolled_at)
        .where(_enrolled_before(enrolled_before, only), customers.c.whmcs_client_id > after)
        .order_by(customers.c.whmcs_client_id)
        .limit(limit)
    )
    return [Customer(*row) for row in session.execute(query)]


def count_enrolled_before(session: Session, ends_at: datetime, only: Sequence[int] | None = None) -> int:
    query = select(func.count()).select_from(customers).where(_enrolled_before(ends_at, only))
    return int(session.execute(query).scalar_one())


# -- fan-outs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FanOut:
    close_event_id: uuid.UUID
    period: str
    trigger: str
    last_client_id: int
    requested: int
    finished: bool
    started_at: datetime
    updated_at: datetime


def _fanout(row: Any) -> FanOut:
    return FanOut(**{name: getattr(row, name) for name in FanOut.__dataclass_fields__})


def start_fanout(session: Session, close_event_id: uuid.UUID, period: str, trigger: str, now: datetime) -> FanOut:
    """The fan-out of one close event, created on first sight; a redelivery resumes where it stopped."""
    statement = (
        insert_on_conflict(session, fanouts)
        .values(
            close_event_id=close_event_id,
            period=period,
            trigger=trigger,
            last_client_id=0,
            requested=0,
            finished=False,
            started_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[fanouts.c.close_event_id])
    )
    session.execute(statement)
    return _fanout(session.execute(select(fanouts).where(fanouts.c.close_event_id == close_event_id)).one())


def advance_fanout(
    session: Session, close_event_id: uuid.UUID, *, last_client_id: int, added: int, finished: bool, now: datetime
) -> None:
    session.execute(
        fanouts.update()
        .where(fanouts.c.close_event_id == close_event_id)
        .values(last_client_id=last_client_id, requested=fanouts.c.requested + added, finished=finished, updated_at=now)
    )


def latest_fanout(session: Session, period: str) -> FanOut | None:
    row = session.execute(
        select(fanouts).where(fanouts.c.period == period).order_by(fanouts.c.started_at.desc()).limit(1)
    ).first()
    return _fanout(row) if row else None


# -- collections -------------------------------------------------------------------------------------
# Built once per dialect, with bound parameters: every customer of every close runs these, and building
# and cache-keying them per call cost more CPU than running them.
@functools.cache
def _record_collection(dialect: str) -> Any:
    statement = insert_on_conflict(dialect, collections).values(
        period=bindparam("p_period"),
        whmcs_client_id=bindparam("p_client_id"),
        solusvm_user_id=bindparam("p_user_id"),
        vm_count=bindparam("p_vm_count"),
        total_tokens=bindparam("p_total_tokens"),
        outcome=COLLECTED,
        collected_at=bindparam("p_now"),
    )
    return statement.on_conflict_do_update(
        index_elements=[collections.c.period, collections.c.whmcs_client_id],
        set_={
            "solusvm_user_id": statement.excluded.solusvm_user_id,
            "vm_count": statement.excluded.vm_count,
            "total_tokens": statement.excluded.total_tokens,
            "collected_at": bindparam("p_now"),
        },
    )


def record_collection(
    session: Session | Connection,
    *,
    period: str,
    client_id: int,
    solusvm_user_id: int,
    vm_count: int,
    total_tokens: int,
    now: datetime,
    outbox: Outbox | None = None,
    collected: Envelope[Any] | None = None,
) -> None:
    """What was collected; a re-collection (replay) refreshes it. ``session``: the handler's transaction,
    a Session or (``ctx.writer`` on PostgreSQL) its Core connection. With ``outbox``, the ``collected``
    event (``ctx.emitted``) goes into it in the same statement on PostgreSQL."""
    parameters = {
        "p_period": period,
        "p_client_id": client_id,
        "p_user_id": solusvm_user_id,
        "p_vm_count": vm_count,
        "p_total_tokens": total_tokens,
        "p_now": now,
    }
    dialect = dialect_name(session)
    if dialect == "postgresql":
        # Every customer of every close: plain SQL on the driver, whose own work is a fraction of what
        # SQLAlchemy's execution layer cost for this one row.
        parameters["p_now"] = require_aware(now)
        if outbox is None or collected is None:
            first_row_on_driver(session, _RECORD_COLLECTION_SQL, parameters)
            return
        # The event's outbox row as a second part of the statement: one round trip fewer per customer.
        parameters.update(outbox.part_parameters(collected))
        first_row_on_driver(session, _with_outbox_row(outbox.insert_one_part), parameters)
        outbox.written(session)
        return
    session.execute(_record_collection(dialect), parameters)
    if outbox is not None and collected is not None:
        outbox.add_all(session, [collected])


@functools.cache
def _with_outbox_row(insert_one_part: str) -> str:
    return f"WITH collected AS ({_RECORD_COLLECTION_SQL}) {insert_one_part}"


# ``_record_collection`` on PostgreSQL, in the driver's parameter style.
_RECORD_COLLECTION_SQL = (
    f"INSERT INTO {collections.name} (period, whmcs_client_id, solusvm_user_id, vm_count, total_tokens, outcome, "
    "collected_at) VALUES (%(p_period)s, %(p_client_id)s, %(p_user_id)s, %(p_vm_count)s, %(p_total_tokens)s, "
    f"'{COLLECTED}', %(p_now)s) ON CONFLICT (period, whmcs_client_id) DO UPDATE SET "
    "solusvm_user_id = excluded.solusvm_user_id, vm_count = excluded.vm_count, "
    "total_tokens = excluded.total_tokens, collected_at = excluded.collected_at"
)


def outcome_counts(session: Session, period: str) -> dict[str, int]:
    query = (
        select(collections.c.outcome, func.count())
        .where(collections.c.period == period)
        .group_by(collections.c.outcome)
    )
    return {outcome: int(count) for outcome, count in session.execute(query)}
