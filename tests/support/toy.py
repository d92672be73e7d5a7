"""A toy service for testing the bus itself: one handler with knobs to fail, sleep or emit."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import Column, Integer, String, Table, Uuid, func, select

from shared.bus.handler_context import HandlerContext
from shared.bus.topology import Subscription
from shared.db import UtcTimestamp
from shared.errors import PermanentError
from shared.events.base import Event
from shared.service import ServiceDefinition, ServiceTables


class ProbeHappened(Event):
    producers = ("test", "toy")  # the tests themselves, and the toy outbox in some

    key: str
    fail_times: int = 0
    sleep_seconds: float = 0.0
    permanent: bool = False
    emit_followup: bool = False
    started_marker: str | None = None


class ProbeFollowed(Event):
    producers = ("toy",)

    key: str


tables = ServiceTables("toy")
effects = Table(
    "toy_effects",
    tables.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),
    Column("event_id", Uuid, nullable=False),
)
attempts = Table(
    "toy_attempts",
    tables.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),
    Column("at", UtcTimestamp, nullable=False),
)
followups = Table(
    "toy_followups",
    tables.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),
)


def apply_probe(event: ProbeHappened, ctx: HandlerContext) -> None:
    with ctx.separate_transaction() as session:
        session.execute(attempts.insert().values(key=event.key, at=ctx.now()))
        tries = session.execute(select(func.count()).where(attempts.c.key == event.key)).scalar_one()
    if event.permanent:
        raise PermanentError(f"probe {event.key} cannot be applied")
    if tries <= event.fail_times:
        raise RuntimeError(f"probe {event.key} failed on try {tries}")
    ctx.session.execute(effects.insert().values(key=event.key, event_id=ctx.event_id))
    if event.started_marker:
        Path(event.started_marker).write_text(str(os.getpid()))
    if event.sleep_seconds:
        time.sleep(event.sleep_seconds)
    if event.emit_followup:
        ctx.emit(ProbeFollowed(key=event.key))


def record_followup(event: ProbeFollowed, ctx: HandlerContext) -> None:
    ctx.session.execute(followups.insert().values(key=event.key))


def toy_service() -> ServiceDefinition:
    return ServiceDefinition(
        name="toy",
        tables=tables,
        subscriptions=[
            Subscription("toy", "apply_probe", (ProbeHappened,), apply_probe),
            Subscription("toy", "record_followup", (ProbeFollowed,), record_followup),
        ],
    )


def count(db, table, key: str) -> int:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        return session.execute(select(func.count()).where(table.c.key == key)).scalar_one()
