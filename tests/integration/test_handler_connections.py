"""A handler waiting for an upstream holds no database connection (PostgreSQL), and its event is still
applied exactly once: the inbox claim is the first statement of the handler's transaction, taken when
the handler first touches ``ctx.session``, and commits with the effect and the outbox rows."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from sqlalchemy import Column, Integer, String, Table, event, func, select

from postpay.bootstrap import make_database
from shared.bus.handler_context import AlreadyHandled, HandlerContext, database_first
from shared.bus.messages import CONTENT_TYPE, ReceivedMessage
from shared.bus.processing import MessageProcessor, Outcome
from shared.bus.topology import Subscription
from shared.db import Database
from shared.events.base import Event, new_envelope
from shared.service import ServiceTables
from shared.settings import KernelSettings

THREADS = 12


class Billed(Event):
    producers = ("test",)

    key: str


tables = ServiceTables("waity")
effects = Table(
    "waity_effects",
    tables.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),
)


class SlowUpstream:
    """Stands for WHMCS: every call waits until the test opens the gate, and says how many are waiting."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.waiting = 0
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def call(self, key: str) -> None:
        with self._lock:
            self.waiting += 1
            self.calls.append(key)
        try:
            assert self.gate.wait(30), "the test never opened the gate"
        finally:
            with self._lock:
                self.waiting -= 1


def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@pytest.fixture
def upstream() -> SlowUpstream:
    return SlowUpstream()


@pytest.fixture
def processor(postgres_database: Database) -> MessageProcessor:
    tables.metadata.create_all(postgres_database.engine)
    return MessageProcessor(postgres_database, "waity", tables.inbox, tables.outbox)


def like_the_invoicer(upstream: SlowUpstream, swallow: bool = False, marked: bool = False):  # type: ignore[no-untyped-def]
    """Reads first, calls the upstream, then records the result in its own transaction. ``marked``:
    as the invoicer's is, ``database_first`` (its first read checks the inbox, not the processor)."""

    def handle(event: Billed, ctx: HandlerContext) -> None:
        with ctx.read_first() as session:
            session.execute(select(func.count()).select_from(effects)).scalar_one()
        upstream.call(event.key)
        try:
            ctx.session.execute(effects.insert().values(key=event.key))
        except AlreadyHandled:
            if not swallow:
                raise
            ctx.session.execute(effects.insert().values(key=event.key + "-after"))  # must not commit
        ctx.emit(Billed(key=event.key + "-next"))

    return database_first(handle) if marked else handle


def subscription(handler) -> Subscription:  # type: ignore[no-untyped-def]
    return Subscription("waity", "bill", (Billed,), handler)


def delivery(event: Event, event_id: uuid.UUID | None = None) -> ReceivedMessage:
    envelope = new_envelope(event, producer="test", event_id=event_id)
    return ReceivedMessage(envelope.model_dump_json().encode(), CONTENT_TYPE, {})


def effect_keys(db: Database) -> list[str]:
    with db.transaction() as session:
        return sorted(session.execute(select(effects.c.key)).scalars())


def run_all(
    processor: MessageProcessor, sub: Subscription, messages: list[ReceivedMessage]
) -> tuple[ThreadPoolExecutor, list[Future[Outcome]]]:
    """Each delivery on a thread of its own, as the consumer's handler threads do."""
    pool = ThreadPoolExecutor(max_workers=len(messages))
    return pool, [pool.submit(processor.process, sub, message) for message in messages]


def test_threads_waiting_on_a_slow_upstream_hold_no_connection(
    processor: MessageProcessor, postgres_database: Database, upstream: SlowUpstream
) -> None:
    sub = subscription(like_the_invoicer(upstream))
    pool, futures = run_all(processor, sub, [delivery(Billed(key=f"c{n}")) for n in range(THREADS)])
    try:
        wait_for(lambda: upstream.waiting == THREADS)
        held = postgres_database.engine.pool.checkedout()  # type: ignore[attr-defined]
        assert held < THREADS
        assert held == 0  # none of them has begun its own transaction yet
    finally:
        upstream.gate.set()
        outcomes = [future.result(30) for future in futures]
        pool.shutdown()
    assert [outcome.kind for outcome in outcomes] == ["done"] * THREADS
    assert effect_keys(postgres_database) == sorted(f"c{n}" for n in range(THREADS))
    with postgres_database.transaction() as session:
        assert session.execute(select(func.count()).select_from(tables.inbox.table)).scalar_one() == THREADS
        assert session.execute(select(func.count()).select_from(tables.outbox.table)).scalar_one() == THREADS


@pytest.mark.parametrize("marked", [False, True])
def test_a_redelivered_event_stops_before_the_upstream_call(
    processor: MessageProcessor, postgres_database: Database, upstream: SlowUpstream, marked: bool
) -> None:
    upstream.gate.set()
    sub = subscription(like_the_invoicer(upstream, marked=marked))
    event_id = uuid.uuid4()
    assert processor.process(sub, delivery(Billed(key="once"), event_id)).kind == "done"
    assert processor.process(sub, delivery(Billed(key="once"), event_id)).kind == "duplicate"
    assert upstream.calls == ["once"]
    assert effect_keys(postgres_database) == ["once"]


@pytest.mark.parametrize(("swallow", "marked"), [(False, False), (True, False), (False, True), (True, True)])
def test_two_deliveries_at_once_apply_the_event_once(
    processor: MessageProcessor, postgres_database: Database, upstream: SlowUpstream, swallow: bool, marked: bool
) -> None:
    """Both pass the early check while neither has committed; the claim in the handler's transaction
    lets one commit and makes the other a duplicate, even if the handler catches ``AlreadyHandled``."""
    sub = subscription(like_the_invoicer(upstream, swallow=swallow, marked=marked))
    event_id = uuid.uuid4()
    pool, futures = run_all(processor, sub, [delivery(Billed(key="twice"), event_id)] * 2)
    try:
        wait_for(lambda: upstream.waiting == 2)
    finally:
        upstream.gate.set()
        outcomes = sorted(future.result(30).kind for future in futures)
        pool.shutdown()
    assert outcomes == ["done", "duplicate"]
    assert effect_keys(postgres_database) == ["twice"]
    with postgres_database.transaction() as session:
        assert session.execute(select(func.count()).select_from(tables.outbox.table)).scalar_one() == 1


def test_a_handler_that_never_touches_its_session_is_still_claimed(
    processor: MessageProcessor, postgres_database: Database, upstream: SlowUpstream
) -> None:
    upstream.gate.set()

    def only_calls(event: Billed, ctx: HandlerContext) -> None:
        upstream.call(event.key)

    sub = subscription(only_calls)
    event_id = uuid.uuid4()
    assert processor.process(sub, delivery(Billed(key="call"), event_id)).kind == "done"
    assert processor.process(sub, delivery(Billed(key="call"), event_id)).kind == "duplicate"
    assert upstream.calls == ["call"], "a redelivery of a handled event must not call the upstream again"
    with postgres_database.transaction() as session:
        assert session.execute(select(tables.inbox.table.c.event_id)).scalars().all() == [event_id]


def test_the_default_pool_does_not_grow_with_the_handler_threads(postgres_url: str) -> None:
    many = KernelSettings(database_url=postgres_url, concurrency=256)
    few = KernelSettings(database_url=postgres_url, concurrency=2)
    for kernel, size in ((many, KernelSettings().db_pool_size), (few, 6)):
        db = make_database(kernel)
        try:
            assert db.engine.pool.size() == size  # type: ignore[attr-defined]
        finally:
            db.dispose()
    assert KernelSettings().concurrency > KernelSettings().db_pool_size


@pytest.mark.parametrize(("marked", "transactions"), [(False, 3), (True, 2)])
def test_a_database_first_handler_saves_the_processors_own_look_up(
    processor: MessageProcessor, postgres_database: Database, upstream: SlowUpstream, marked: bool, transactions: int
) -> None:
    """Unmarked: the processor's look-up, the handler's read, its transaction. Marked: the read looks
    the event up itself."""
    upstream.gate.set()
    sub = subscription(like_the_invoicer(upstream, marked=marked))
    begun: list[object] = []

    def count(connection: object) -> None:
        begun.append(connection)

    event.listen(postgres_database.engine, "begin", count)
    try:
        assert processor.process(sub, delivery(Billed(key="counted"))).kind == "done"
    finally:
        event.remove(postgres_database.engine, "begin", count)
    assert len(begun) == transactions
    assert effect_keys(postgres_database) == ["counted"]


def test_a_database_first_handler_that_starts_with_its_session_stops_at_the_claim(
    processor: MessageProcessor, postgres_database: Database, upstream: SlowUpstream
) -> None:
    upstream.gate.set()

    @database_first
    def writes_then_calls(event: Billed, ctx: HandlerContext) -> None:
        ctx.session.execute(effects.insert().values(key=event.key))
        upstream.call(event.key)

    sub = subscription(writes_then_calls)
    event_id = uuid.uuid4()
    assert processor.process(sub, delivery(Billed(key="first"), event_id)).kind == "done"
    assert processor.process(sub, delivery(Billed(key="first"), event_id)).kind == "duplicate"
    assert upstream.calls == ["first"], "a redelivery of a handled event must not call the upstream again"
    assert effect_keys(postgres_database) == ["first"]
