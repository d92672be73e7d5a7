"""The scheduler's tables: which periods are closed, every close or replay emitted, where a fresh
install started, and every accounts sync requested."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Date, Integer, String, Table, Text, Uuid, select
from sqlalchemy.orm import Session

from shared.db import UtcTimestamp, insert_on_conflict
from shared.periods import BillingPeriod
from shared.service import ServiceTables

tables = ServiceTables("scheduler")

# A period's window is recorded when it is first closed; every later close, replay and dry run uses it,
# whatever POSTPAY_BILLING_TIMEZONE says by then.
closed_periods = Table(
    "scheduler_closed_periods",
    tables.metadata,
    Column("period", String(7), primary_key=True),
    Column("timezone", String(64), nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("trigger", String(10), nullable=False),
    Column("closed_at", UtcTimestamp, nullable=False),
    Column("starts_at", UtcTimestamp, nullable=False),
    Column("ends_at", UtcTimestamp, nullable=False),
    Column("starts_in", String(64), nullable=True),
    Column("ends_in", String(64), nullable=True),
)

# Every BillingPeriodClosed this service emitted (closes, repeated closes, replays): the audit trail.
emissions = Table(
    "scheduler_emissions",
    tables.metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", Uuid, nullable=False, index=True),
    Column("period", String(7), nullable=False, index=True),
    Column("trigger", String(10), nullable=False),
    Column("client_ids", Text, nullable=True),
    Column("emitted_at", UtcTimestamp, nullable=False),
)

# One row: the first period this installation closes (see SchedulerSettings.scheduler_first_period).
anchor = Table(
    "scheduler_anchor",
    tables.metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("first_period", String(7), nullable=False),
    Column("recorded_at", UtcTimestamp, nullable=False),
)

# Every AccountsSyncRequested emitted: one per billing day by the tick, plus any an operator asked for.
account_syncs = Table(
    "scheduler_account_syncs",
    tables.metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("day", Date, nullable=False, index=True),
    Column("timezone", String(64), nullable=False),
    Column("trigger", String(10), nullable=False),
    Column("requested_at", UtcTimestamp, nullable=False),
)


def closed_keys(session: Session) -> set[str]:
    return set(session.execute(select(closed_periods.c.period)).scalars())


def recorded_period(session: Session, key: str) -> BillingPeriod | None:
    """The period as it was first closed (zone and window), or None if it never was."""
    row = session.execute(select(closed_periods).where(closed_periods.c.period == key)).first()
    if row is None:
        return None
    period = BillingPeriod.parse(key, row.timezone).between(row.starts_in, row.ends_in)
    if (period.starts_at, period.ends_at) != (row.starts_at, row.ends_at):
        # The time zone database now places these local midnights elsewhere than when the month was
        # closed: billing it again under either window would not be the same month.
        raise ValueError(
            f"{key} was closed as [{row.starts_at.isoformat()}, {row.ends_at.isoformat()}) but its "
            f"zones now give [{period.starts_at.isoformat()}, {period.ends_at.isoformat()})"
        )
    return period


def mark_closed(session: Session, period: BillingPeriod, event_id: uuid.UUID, trigger: str, now: datetime) -> bool:
    """Record the period and its window as closed; False when it already was (by this or another scheduler)."""
    statement = (
        insert_on_conflict(session, closed_periods)
        .values(
            period=period.key,
            timezone=period.timezone,
            event_id=event_id,
            trigger=trigger,
            closed_at=now,
            starts_at=period.starts_at,
            ends_at=period.ends_at,
            starts_in=period.starts_in,
            ends_in=period.ends_in,
        )
        .on_conflict_do_nothing(index_elements=[closed_periods.c.period])
        .returning(closed_periods.c.period)
    )
    return session.execute(statement).first() is not None


def record_emission(
    session: Session,
    event_id: uuid.UUID,
    period: str,
    trigger: str,
    client_ids: Sequence[int] | None,
    now: datetime,
) -> None:
    session.execute(
        emissions.insert().values(
            event_id=event_id,
            period=period,
            trigger=trigger,
            client_ids=json.dumps(list(client_ids)) if client_ids is not None else None,
            emitted_at=now,
        )
    )


def first_period(session: Session, proposed: str, now: datetime) -> str:
    """The recorded first period, recording ``proposed`` if there is none yet."""
    session.execute(
        insert_on_conflict(session, anchor)
        .values(id=1, first_period=proposed, recorded_at=now)
        .on_conflict_do_nothing(index_elements=[anchor.c.id])
    )
    return str(session.execute(select(anchor.c.first_period).where(anchor.c.id == 1)).scalar_one())


def record_sync(session: Session, event_id: uuid.UUID, day: date, timezone: str, trigger: str, now: datetime) -> bool:
    """Record an accounts sync; False when this id was recorded already (today's tick, again)."""
    statement = (
        insert_on_conflict(session, account_syncs)
        .values(event_id=event_id, day=day, timezone=timezone, trigger=trigger, requested_at=now)
        .on_conflict_do_nothing(index_elements=[account_syncs.c.event_id])
        .returning(account_syncs.c.event_id)
    )
    return session.execute(statement).first() is not None
