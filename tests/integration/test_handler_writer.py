"""``ctx.writer`` (PostgreSQL): a handler's writes and emitted events on its transaction's Core
connection, with no Session made, still commit together with its inbox claim (or not at all), once
per event, and wake this process's relay."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Column, Integer, String, Table, event, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.bus.handler_context import HandlerContext, database_first
from shared.bus.messages import CONTENT_TYPE, ReceivedMessage
from shared.bus.processing import MessageProcessor
from shared.bus.topology import Subscription
from shared.db import Database, first_row_on_driver
from shared.events.base import Event, new_envelope
from shared.service import ServiceTables


class Noted(Event):
    producers = ("test",)

    key: str


tables = ServiceTables("writy")
notes = Table(
    "writy_notes",
    tables.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),
)


@database_first
def note(event: Noted, ctx: HandlerContext) -> None:
    where = ctx.writer
    assert isinstance(where, Connection)
    first_row_on_driver(where, f"INSERT INTO {notes.name} (key) VALUES (%(key)s)", {"key": event.key})
    ctx.emit(Noted(key=event.key + "-next"))
    if event.key.startswith("fail"):
        raise RuntimeError("the handler failed after its writes")


def delivery(event: Event, event_id: uuid.UUID | None = None) -> ReceivedMessage:
    envelope = new_envelope(event, producer="test", event_id=event_id)
    return ReceivedMessage(envelope.model_dump_json().encode(), CONTENT_TYPE, {})


def rows(db: Database) -> tuple[list[str], list[str], int]:
    with db.transaction() as session:
        keys = sorted(session.execute(select(notes.c.key)).scalars())
        bodies = sorted(session.execute(select(tables.outbox.table.c.body)).scalars())
        inbox = len(session.execute(select(tables.inbox.table)).all())
    return keys, bodies, inbox


@pytest.fixture
def processor_and_wakes(postgres_database: Database) -> tuple[MessageProcessor, list[int]]:
    tables.metadata.create_all(postgres_database.engine)
    wakes: list[int] = []
    processor = MessageProcessor(
        postgres_database, "writy", tables.inbox, tables.outbox, after_commit=lambda: wakes.append(1)
    )
    return processor, wakes


def test_writes_and_events_commit_with_the_claim_without_a_session(
    postgres_database: Database, processor_and_wakes: tuple[MessageProcessor, list[int]]
) -> None:
    processor, wakes = processor_and_wakes
    sub = Subscription("writy", "note", (Noted,), note)
    sessions: list[Session] = []

    def began(session: Session, *_: object) -> None:
        sessions.append(session)

    event.listen(Session, "after_begin", began)
    try:
        event_id = uuid.uuid4()
        assert processor.process(sub, delivery(Noted(key="a"), event_id)).kind == "done"
        assert processor.process(sub, delivery(Noted(key="a"), event_id)).kind == "duplicate"
    finally:
        event.remove(Session, "after_begin", began)
    keys, bodies, inbox = rows(postgres_database)
    assert keys == ["a"] and len(bodies) == 1 and '"a-next"' in bodies[0] and inbox == 1
    assert wakes == [1]  # the processor wakes the relay: there is no Session commit to hook
    assert sessions == []


def test_a_failing_handler_leaves_neither_its_rows_nor_its_events(
    postgres_database: Database, processor_and_wakes: tuple[MessageProcessor, list[int]]
) -> None:
    processor, wakes = processor_and_wakes
    sub = Subscription("writy", "note", (Noted,), note)
    assert processor.process(sub, delivery(Noted(key="fail-1"))).kind == "retry"
    assert rows(postgres_database) == ([], [], 0) and wakes == []
