"""The usage collector's record of what the meter saw: VMs, their runs and plans, and the sweeps.

Each meter event becomes a row keyed by what it is about (epoch, server, run / sweep), written with an
upsert, so the events may arrive in any order and any number of times: a run's end may land before its
start, and both fill the same row. Every event also counts itself into its sweep's row; a sweep is
complete when that count reaches the number its ``MeterSwept`` announced.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Uuid, select
from sqlalchemy.orm import Session

from services.usage_collector.store import tables
from shared.db import UtcTimestamp, insert_on_conflict
from shared.events.metering import MeteredPlan, MeterSwept, VmDeleted, VmPlanChanged, VmRunEnded, VmRunStarted

meter_vms = Table(
    "usage_collector_meter_vms",
    tables.metadata,
    Column("server_id", BigInteger, primary_key=True, autoincrement=False),
    Column("uuid", String(64), nullable=True),
    Column("name", String(200), nullable=True),
    Column("solusvm_user_id", BigInteger, nullable=True),
    Column("created_at", UtcTimestamp, nullable=True),
    Column("deleted_at", UtcTimestamp, nullable=True),
)

meter_runs = Table(
    "usage_collector_meter_runs",
    tables.metadata,
    Column("meter_epoch", Uuid, primary_key=True),
    Column("server_id", BigInteger, primary_key=True, autoincrement=False),
    Column("run", Integer, primary_key=True, autoincrement=False),
    Column("solusvm_user_id", BigInteger, nullable=True),
    Column("started_at", UtcTimestamp, nullable=True),
    Column("start_bound", UtcTimestamp, nullable=True),
    Column("ended_at", UtcTimestamp, nullable=True),
    Column("end_bound", UtcTimestamp, nullable=True),
    Column("end_reason", String(20), nullable=True),
    Index("usage_collector_meter_runs_user", "solusvm_user_id", "started_at"),
)

meter_plans = Table(
    "usage_collector_meter_plans",
    tables.metadata,
    Column("meter_epoch", Uuid, primary_key=True),
    Column("server_id", BigInteger, primary_key=True, autoincrement=False),
    Column("sweep", BigInteger, primary_key=True, autoincrement=False),
    Column("effective_at", UtcTimestamp, nullable=False),
    Column("plan_id", BigInteger, nullable=False),
    Column("plan_name", String(200), nullable=False),
    Column("tokens_per_hour", BigInteger, nullable=False),
    Column("tokens_per_month", BigInteger, nullable=False),
    Index("usage_collector_meter_plans_server", "server_id", "effective_at"),
)

meter_sweeps = Table(
    "usage_collector_meter_sweeps",
    tables.metadata,
    Column("meter_epoch", Uuid, primary_key=True),
    Column("sweep", BigInteger, primary_key=True, autoincrement=False),
    Column("started_at", UtcTimestamp, nullable=True),
    Column("finished_at", UtcTimestamp, nullable=True),
    Column("interval_seconds", Integer, nullable=True),
    Column("expected", Integer, nullable=True),
    Column("received", Integer, nullable=False),
    Index("usage_collector_meter_sweeps_started_at", "started_at"),
)


def _count_into_sweep(session: Session, epoch: uuid.UUID, sweep: int) -> bool:
    """Count one transition into its sweep; True when that made the sweep complete."""
    statement = insert_on_conflict(session, meter_sweeps).values(meter_epoch=epoch, sweep=sweep, received=1)
    row = session.execute(
        statement.on_conflict_do_update(
            index_elements=[meter_sweeps.c.meter_epoch, meter_sweeps.c.sweep],
            set_={"received": meter_sweeps.c.received + 1},
        ).returning(meter_sweeps.c.received, meter_sweeps.c.expected)
    ).one()
    return row.expected is not None and row.received == row.expected


def _upsert(session: Session, table: Table, keys: Sequence[str], values: dict[str, Any], update: Sequence[str]) -> None:
    statement = insert_on_conflict(session, table).values(**values)
    if update:
        statement = statement.on_conflict_do_update(
            index_elements=[table.c[key] for key in keys], set_={name: statement.excluded[name] for name in update}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=[table.c[key] for key in keys])
    session.execute(statement)


def _plan_row(event: VmRunStarted | VmPlanChanged, plan: MeteredPlan, effective_at: datetime) -> dict[str, Any]:
    return {
        "meter_epoch": event.meter_epoch,
        "server_id": event.server_id,
        "sweep": event.sweep,
        "effective_at": effective_at,
        "plan_id": plan.id,
        "plan_name": plan.name,
        "tokens_per_hour": plan.tokens_per_hour,
        "tokens_per_month": plan.tokens_per_month,
    }


_RUN_KEY = ("meter_epoch", "server_id", "run")
_PLAN_KEY = ("meter_epoch", "server_id", "sweep")


def record_event(session: Session, event: VmRunStarted | VmRunEnded | VmPlanChanged | VmDeleted) -> bool:
    """Apply one meter transition (exactly once: the inbox sees to that) and count it into its sweep;
    True when it was the last one its sweep was waiting for."""
    if isinstance(event, VmRunStarted):
        _upsert(
            session,
            meter_vms,
            ("server_id",),
            {
                "server_id": event.server_id,
                "uuid": event.uuid,
                "name": event.name,
                "solusvm_user_id": event.solusvm_user_id,
                "created_at": event.created_at,
            },
            ("uuid", "name", "solusvm_user_id", "created_at"),
        )
        _upsert(
            session,
            meter_runs,
            _RUN_KEY,
            {
                "meter_epoch": event.meter_epoch,
                "server_id": event.server_id,
                "run": event.run,
                "solusvm_user_id": event.solusvm_user_id,
                "started_at": event.started_at,
                "start_bound": event.not_running_at,
            },
            ("solusvm_user_id", "started_at", "start_bound"),
        )
        _upsert(session, meter_plans, _PLAN_KEY, _plan_row(event, event.plan, event.started_at), ())
    elif isinstance(event, VmRunEnded):
        _upsert(
            session,
            meter_runs,
            _RUN_KEY,
            {
                "meter_epoch": event.meter_epoch,
                "server_id": event.server_id,
                "run": event.run,
                "ended_at": event.ended_at,
                "end_bound": event.not_running_at,
                "end_reason": event.reason,
            },
            ("ended_at", "end_bound", "end_reason"),
        )
    elif isinstance(event, VmPlanChanged):
        _upsert(
            session,
            meter_plans,
            _PLAN_KEY,
            _plan_row(event, event.plan, event.seen_at),
            ("effective_at", "plan_id", "plan_name", "tokens_per_hour", "tokens_per_month"),
        )
    else:
        _upsert(
            session,
            meter_vms,
            ("server_id",),
            {"server_id": event.server_id, "deleted_at": event.deleted_at},
            ("deleted_at",),
        )
    return _count_into_sweep(session, event.meter_epoch, event.sweep)


def record_sweep(session: Session, event: MeterSwept) -> None:
    statement = insert_on_conflict(session, meter_sweeps).values(
        meter_epoch=event.meter_epoch,
        sweep=event.sweep,
        started_at=event.started_at,
        finished_at=event.finished_at,
        interval_seconds=event.interval_seconds,
        expected=event.events,
        received=0,
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[meter_sweeps.c.meter_epoch, meter_sweeps.c.sweep],
            set_={
                name: statement.excluded[name] for name in ("started_at", "finished_at", "interval_seconds", "expected")
            },
        )
    )


# -- reading, for one customer's period ----------------------------------------------------------------
@dataclass(frozen=True)
class RunRow:
    meter_epoch: uuid.UUID
    server_id: int
    run: int
    started_at: datetime
    start_bound: datetime | None
    ended_at: datetime | None
    end_bound: datetime | None


@dataclass(frozen=True)
class PlanRow:
    server_id: int
    effective_at: datetime
    plan: MeteredPlan


@dataclass(frozen=True)
class VmRow:
    server_id: int
    uuid: str
    name: str
    created_at: datetime | None
    deleted_at: datetime | None


def runs_of(session: Session, solusvm_user_id: int, starts_at: datetime, ends_at: datetime) -> list[RunRow]:
    """The user's runs that may touch ``[starts_at, ends_at)``: begun before its end, not ended before its
    start (an end's midpoint estimate may reach past ``ended_at``, so ``end_bound`` counts too)."""
    query = select(meter_runs).where(
        meter_runs.c.solusvm_user_id == solusvm_user_id,
        meter_runs.c.started_at < ends_at,
        (meter_runs.c.ended_at.is_(None)) | (meter_runs.c.ended_at > starts_at) | (meter_runs.c.end_bound > starts_at),
    )
    return [
        RunRow(r.meter_epoch, r.server_id, r.run, r.started_at, r.start_bound, r.ended_at, r.end_bound)
        for r in session.execute(query)
    ]


def plans_of(session: Session, server_ids: Sequence[int]) -> list[PlanRow]:
    if not server_ids:
        return []
    query = (
        select(meter_plans)
        .where(meter_plans.c.server_id.in_(list(server_ids)))
        .order_by(meter_plans.c.effective_at, meter_plans.c.sweep)
    )
    return [
        PlanRow(
            r.server_id,
            r.effective_at,
            MeteredPlan(
                id=r.plan_id, name=r.plan_name, tokens_per_hour=r.tokens_per_hour, tokens_per_month=r.tokens_per_month
            ),
        )
        for r in session.execute(query)
    ]


def vms_of(session: Session, server_ids: Sequence[int]) -> dict[int, VmRow]:
    if not server_ids:
        return {}
    query = select(meter_vms).where(meter_vms.c.server_id.in_(list(server_ids)))
    return {
        r.server_id: VmRow(r.server_id, r.uuid or "", r.name or "", r.created_at, r.deleted_at)
        for r in session.execute(query)
    }
