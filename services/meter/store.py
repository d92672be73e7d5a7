"""The meter's tables: where it is (epoch, last sweep, how far it has read the activity log), what it
knows of each VM, and logged creations of VMs it has not seen listed yet."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text, Uuid, select
from sqlalchemy.orm import Session

from services.meter.observations import LoggedCreation, VmState
from shared.db import UtcTimestamp, insert_on_conflict
from shared.service import ServiceTables
from shared.upstream.solusvm_inventory import PlanPrices

tables = ServiceTables("meter")

cursor = Table(
    "meter_cursor",
    tables.metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("epoch", Uuid, nullable=False),
    Column("sweep", BigInteger, nullable=False),
    Column("started_at", UtcTimestamp, nullable=True),
    Column("finished_at", UtcTimestamp, nullable=True),
    Column("log_marks", Text, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
)

vms = Table(
    "meter_vms",
    tables.metadata,
    Column("server_id", BigInteger, primary_key=True, autoincrement=False),
    Column("uuid", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("plan_id", BigInteger, nullable=False),
    Column("plan_name", String(200), nullable=False),
    Column("tokens_per_hour", BigInteger, nullable=False),
    Column("tokens_per_month", BigInteger, nullable=False),
    Column("running", Boolean, nullable=False),
    Column("run", Integer, nullable=False),
    Column("missing", Integer, nullable=False),
    Column("last_seen_at", UtcTimestamp, nullable=True),
    Column("deleted", Boolean, nullable=False),
    Column("created_at", UtcTimestamp, nullable=True),
    Index("meter_vms_deleted", "deleted"),
)

pending_creations = Table(
    "meter_pending_creations",
    tables.metadata,
    Column("server_id", BigInteger, primary_key=True, autoincrement=False),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("uuid", String(64), nullable=True),
    Column("name", String(200), nullable=True),
    Column("user_id", BigInteger, nullable=True),
    Column("plan_id", BigInteger, nullable=True),
)

CURSOR_ID = 1


@dataclass(frozen=True)
class Cursor:
    epoch: uuid.UUID
    sweep: int
    started_at: datetime | None
    finished_at: datetime | None
    log_marks: dict[str, int]


def _cursor(row: Any) -> Cursor:
    return Cursor(row.epoch, int(row.sweep), row.started_at, row.finished_at, json.loads(row.log_marks))


def ensure_cursor(session: Session, now: datetime) -> Cursor:
    """The cursor, created (with a new epoch) by the first meter to run on this database."""
    session.execute(
        insert_on_conflict(session, cursor)
        .values(
            id=CURSOR_ID,
            epoch=uuid.uuid4(),
            sweep=0,
            log_marks="{}",
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[cursor.c.id])
    )
    return _cursor(session.execute(select(cursor).where(cursor.c.id == CURSOR_ID)).one())


def lock_cursor(session: Session) -> Cursor:
    """The cursor, locked until the transaction ends: one sweep commits at a time."""
    return _cursor(session.execute(select(cursor).where(cursor.c.id == CURSOR_ID).with_for_update()).one())


def advance_cursor(
    session: Session,
    *,
    sweep: int,
    started_at: datetime,
    finished_at: datetime,
    log_marks: Mapping[str, int],
    now: datetime,
) -> None:
    session.execute(
        cursor.update()
        .where(cursor.c.id == CURSOR_ID)
        .values(
            sweep=sweep,
            started_at=started_at,
            finished_at=finished_at,
            log_marks=json.dumps(dict(log_marks)),
            updated_at=now,
        )
    )


def _state(row: Any) -> VmState:
    return VmState(
        server_id=row.server_id,
        uuid=row.uuid,
        name=row.name,
        user_id=row.user_id,
        plan=PlanPrices(row.plan_id, row.plan_name, row.tokens_per_hour, row.tokens_per_month),
        running=row.running,
        run=row.run,
        missing=row.missing,
        last_seen_at=row.last_seen_at,
        deleted=row.deleted,
        created_at=row.created_at,
    )


def known_vms(session: Session) -> dict[int, VmState]:
    """Every VM not deleted (the deleted ones are only looked up when a sighting names one)."""
    return {row.server_id: _state(row) for row in session.execute(select(vms).where(vms.c.deleted.is_(False)))}


def deleted_among(session: Session, server_ids: Iterable[int]) -> dict[int, VmState]:
    ids = list(server_ids)
    found: dict[int, VmState] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        rows = session.execute(select(vms).where(vms.c.server_id.in_(chunk), vms.c.deleted.is_(True)))
        found.update({row.server_id: _state(row) for row in rows})
    return found


def _row(state: VmState) -> dict[str, Any]:
    return {
        "server_id": state.server_id,
        "uuid": state.uuid[:64],
        "name": state.name[:200],
        "user_id": state.user_id,
        "plan_id": state.plan.id,
        "plan_name": state.plan.name[:200],
        "tokens_per_hour": state.plan.tokens_per_hour,
        "tokens_per_month": state.plan.tokens_per_month,
        "running": state.running,
        "run": state.run,
        "missing": state.missing,
        "last_seen_at": state.last_seen_at,
        "deleted": state.deleted,
        "created_at": state.created_at,
    }


def save_vms(session: Session, states: Iterable[VmState]) -> None:
    rows = [_row(state) for state in states]
    if not rows:
        return
    statement = insert_on_conflict(session, vms)
    statement = statement.on_conflict_do_update(
        index_elements=[vms.c.server_id],
        set_={name: statement.excluded[name] for name in rows[0] if name != "server_id"},
    )
    for start in range(0, len(rows), 2000):
        session.execute(statement, rows[start : start + 2000])


def pending(session: Session) -> dict[int, LoggedCreation]:
    return {
        row.server_id: LoggedCreation(row.created_at, row.uuid, row.name, row.user_id, row.plan_id)
        for row in session.execute(select(pending_creations))
    }


def save_pending(
    session: Session, added: Mapping[int, LoggedCreation], consumed: Iterable[int], older_than: datetime
) -> None:
    """Keep new logged creations, drop the ones used and the ones too old to start any run."""
    gone = list(consumed)
    dropped = set(gone)
    for start in range(0, len(gone), 1000):
        session.execute(pending_creations.delete().where(pending_creations.c.server_id.in_(gone[start : start + 1000])))
    session.execute(pending_creations.delete().where(pending_creations.c.created_at < older_than))
    rows = [
        {
            "server_id": server_id,
            "created_at": c.at,
            "uuid": c.uuid,
            "name": (c.name or "")[:200] or None,
            "user_id": c.user_id,
            "plan_id": c.plan_id,
        }
        for server_id, c in added.items()
        if server_id not in dropped and c.at >= older_than
    ]
    if rows:
        statement = insert_on_conflict(session, pending_creations)
        session.execute(statement.on_conflict_do_nothing(index_elements=[pending_creations.c.server_id]), rows)
