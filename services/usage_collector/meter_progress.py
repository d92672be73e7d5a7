"""How far the collector holds the meter's whole story, and where the meter was not looking.

Per meter epoch, ``contiguous`` is the last sweep such that every sweep up to it is complete (its
``MeterSwept`` arrived and so did every transition it announced). A period can be billed from the meter
once a complete, contiguous sweep began at or after the period's end: before that, a run still open
might have ended inside the period, or a transition of the period's last minutes be on its way.

Walking ``contiguous`` forward is also when gaps are found: two consecutive sweeps whose starts are
more than two intervals apart mean the meter was down (or stalled) in between.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Column, Index, String, Table, Uuid, func, select
from sqlalchemy.orm import Session

from services.usage_collector.meter_store import meter_sweeps
from services.usage_collector.store import tables
from shared.db import UtcTimestamp, insert_on_conflict

# More than this many intervals between two sweeps' starts is a gap.
GAP_INTERVALS = 2
_WALK = 500

meter_progress = Table(
    "usage_collector_meter_progress",
    tables.metadata,
    Column("meter_epoch", Uuid, primary_key=True),
    Column("contiguous", BigInteger, nullable=False),
    Column("first_started_at", UtcTimestamp, nullable=True),
    Column("last_started_at", UtcTimestamp, nullable=True),
    Column("last_finished_at", UtcTimestamp, nullable=True),
)

meter_gaps = Table(
    "usage_collector_meter_gaps",
    tables.metadata,
    Column("meter_epoch", Uuid, primary_key=True),
    Column("before_sweep", BigInteger, primary_key=True, autoincrement=False),
    Column("starts_at", UtcTimestamp, nullable=False),
    Column("ends_at", UtcTimestamp, nullable=False),
)


@dataclass(frozen=True)
class Gap:
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Coverage:
    """What the collector holds of the meter's story, as far as ``observed_until`` (the start of the
    last complete, contiguous sweep of the furthest epoch), and since ``metered_since`` (the first)."""

    observed_until: datetime | None
    metered_since: datetime | None
    epoch_ends: dict[uuid.UUID, datetime]

    def covers(self, moment: datetime) -> bool:
        return self.observed_until is not None and self.observed_until >= moment


def advance(session: Session) -> None:
    """Walk every known epoch's ``contiguous`` as far as complete sweeps go, noting gaps on the way."""
    for epoch in session.execute(select(meter_progress.c.meter_epoch)).scalars().all():
        advance_epoch(session, epoch)


def advance_epoch(session: Session, epoch: uuid.UUID) -> None:
    session.execute(
        insert_on_conflict(session, meter_progress)
        .values(meter_epoch=epoch, contiguous=0)
        .on_conflict_do_nothing(index_elements=[meter_progress.c.meter_epoch])
    )
    progress = session.execute(
        select(meter_progress).where(meter_progress.c.meter_epoch == epoch).with_for_update()
    ).one()
    contiguous = progress.contiguous
    previous = (progress.last_started_at, progress.last_finished_at) if contiguous else None
    first = progress.first_started_at
    while True:
        rows = session.execute(
            select(meter_sweeps)
            .where(meter_sweeps.c.meter_epoch == epoch, meter_sweeps.c.sweep > contiguous)
            .order_by(meter_sweeps.c.sweep)
            .limit(_WALK)
        ).all()
        walked = 0
        for row in rows:
            if row.sweep != contiguous + 1 or row.expected is None or row.received < row.expected:
                break
            if previous is None:
                previous = _before_epoch(session, epoch, row.started_at)
            if previous is not None and _is_gap(previous[0], row.started_at, row.interval_seconds):
                session.execute(
                    insert_on_conflict(session, meter_gaps)
                    .values(
                        meter_epoch=epoch,
                        before_sweep=row.sweep,
                        starts_at=previous[1],
                        ends_at=row.started_at,
                    )
                    .on_conflict_do_nothing(index_elements=[meter_gaps.c.meter_epoch, meter_gaps.c.before_sweep])
                )
            contiguous, previous, walked = row.sweep, (row.started_at, row.finished_at), walked + 1
            first = first or row.started_at
        if walked < _WALK:
            break
    if contiguous != progress.contiguous:
        assert previous is not None
        session.execute(
            meter_progress.update()
            .where(meter_progress.c.meter_epoch == epoch)
            .values(
                contiguous=contiguous, first_started_at=first, last_started_at=previous[0], last_finished_at=previous[1]
            )
        )


def _before_epoch(session: Session, epoch: uuid.UUID, started_at: datetime) -> tuple[datetime, datetime] | None:
    """The last sweep of another epoch before this epoch's first one (a meter whose database was reset)."""
    row = session.execute(
        select(meter_sweeps.c.started_at, meter_sweeps.c.finished_at)
        .where(meter_sweeps.c.meter_epoch != epoch, meter_sweeps.c.started_at < started_at)
        .order_by(meter_sweeps.c.started_at.desc())
        .limit(1)
    ).first()
    return (row.started_at, row.finished_at) if row else None


def _is_gap(previous_start: datetime, start: datetime, interval_seconds: int | None) -> bool:
    return start - previous_start > timedelta(seconds=GAP_INTERVALS * (interval_seconds or 60))


def coverage(session: Session) -> Coverage:
    rows = session.execute(select(meter_progress).where(meter_progress.c.contiguous > 0)).all()
    ends = {row.meter_epoch: row.last_started_at for row in rows}
    return Coverage(
        observed_until=max(ends.values(), default=None),
        metered_since=min((row.first_started_at for row in rows), default=None),
        epoch_ends=ends,
    )


def gaps_between(session: Session, starts_at: datetime, ends_at: datetime) -> list[Gap]:
    rows = session.execute(
        select(meter_gaps.c.starts_at, meter_gaps.c.ends_at)
        .where(meter_gaps.c.starts_at < ends_at, meter_gaps.c.ends_at > starts_at)
        .order_by(meter_gaps.c.starts_at)
    )
    return [Gap(row.starts_at, row.ends_at) for row in rows]


# -- customers waiting for the meter ------------------------------------------------------------------
# A close that came before the meter watched past the period's end: the work item waits here (not in a
# retry loop that would park it) and is requested again by the sweep that gets past it.
meter_waiting = Table(
    "usage_collector_meter_waiting",
    tables.metadata,
    Column("period", String(7), primary_key=True),
    Column("whmcs_client_id", BigInteger, primary_key=True, autoincrement=False),
    Column("solusvm_user_id", BigInteger, nullable=False),
    Column("starts_at", UtcTimestamp, nullable=False),
    Column("ends_at", UtcTimestamp, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("trigger", String(10), nullable=False),
    Column("since", UtcTimestamp, nullable=False),
    Index("usage_collector_meter_waiting_ends_at", "ends_at"),
)


@dataclass(frozen=True)
class Waiting:
    period: str
    whmcs_client_id: int
    solusvm_user_id: int
    starts_at: datetime
    ends_at: datetime
    timezone: str
    trigger: str


def wait_for_meter(session: Session, waiting: Waiting, now: datetime) -> None:
    statement = insert_on_conflict(session, meter_waiting).values(**waiting.__dict__, since=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[meter_waiting.c.period, meter_waiting.c.whmcs_client_id],
            set_={"solusvm_user_id": statement.excluded.solusvm_user_id, "trigger": statement.excluded.trigger},
        )
    )


def release_waiting(session: Session, observed_until: datetime) -> list[Waiting]:
    """The waiting work items whose period ended by ``observed_until``, taken off the list."""
    rows = session.execute(
        select(meter_waiting)
        .where(meter_waiting.c.ends_at <= observed_until)
        .order_by(meter_waiting.c.ends_at, meter_waiting.c.whmcs_client_id)
    ).all()
    released = [Waiting(**{name: getattr(row, name) for name in Waiting.__dataclass_fields__}) for row in rows]
    for item in released:
        session.execute(
            meter_waiting.delete().where(
                meter_waiting.c.period == item.period, meter_waiting.c.whmcs_client_id == item.whmcs_client_id
            )
        )
    return released


def waiting_count(session: Session, period: str) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(meter_waiting).where(meter_waiting.c.period == period)
        ).scalar_one()
    )
