"""A subscription with ``batch`` > 1 applies waiting deliveries in one transaction, and still gives
each event its own outcome: applied once, skipped as a duplicate, retried or parked on its own."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, String, Table, event, func, select, text

from postpay.bootstrap import SERVICES, System
from shared.bus.handler_context import DatabaseContext
from shared.bus.messages import ATTEMPT_HEADER, CONTENT_TYPE, OutgoingMessage, ReceivedMessage
from shared.bus.processing import MessageProcessor
from shared.bus.topology import Subscription
from shared.db import Database
from shared.errors import PermanentError
from shared.events.base import Envelope, Event, new_envelope
from shared.logging import configure_logging
from shared.runtime import Runtime
from shared.service import ServiceDefinition, ServiceTables
from shared.settings import KernelSettings
from tests.support.bus_helpers import wait_until
from tests.support.malformed import hostile_bodies


class Tallied(Event):
    producers = ("test",)

    key: str
    fail: str = ""  # "", "transient" or "permanent"
    emit: bool = False


class TallyEmitted(Event):
    producers = ("batchy",)

    key: str


tables = ServiceTables("batchy")
tallies = Table(
    "batchy_tallies",
    tables.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),
    Column("transaction_id", String(40), nullable=False),
)
calls: list[str] = []


def tally(event: Tallied, ctx) -> None:  # type: ignore[no-untyped-def]
    calls.append(event.key)
    if event.fail == "transient":
        raise RuntimeError(f"{event.key} failed")
    if event.fail == "permanent":
        raise PermanentError(f"{event.key} cannot be applied")
    transaction_id = ctx.session.execute(text("SELECT txid_current()")).scalar_one() if _is_postgres(ctx) else "-"
    ctx.session.execute(tallies.insert().values(key=event.key, transaction_id=str(transaction_id)))
    if event.emit:
        ctx.emit(TallyEmitted(key=event.key))


def _is_postgres(ctx) -> bool:  # type: ignore[no-untyped-def]
    return ctx.session.get_bind().dialect.name == "postgresql"


SUBSCRIPTION = Subscription("batchy", "tally", (Tallied,), tally, batch=50)


@pytest.fixture(autouse=True)
def fresh_calls() -> Iterator[None]:
    calls.clear()
    yield


@pytest.fixture
def postgres_processor(postgres_database: Database) -> MessageProcessor:
    tables.metadata.create_all(postgres_database.engine)
    return MessageProcessor(postgres_database, "batchy", tables.inbox, tables.outbox)


def received(event: Event | Envelope, *, attempt: int = 0) -> ReceivedMessage:
    envelope = event if isinstance(event, Envelope) else new_envelope(event, producer="test")
    headers = {ATTEMPT_HEADER: attempt} if attempt else {}
    return ReceivedMessage(envelope.model_dump_json().encode(), CONTENT_TYPE, headers)


def tallied_keys(db: Database) -> list[str]:
    with db.transaction() as session:
        return sorted(session.execute(select(tallies.c.key)).scalars())


def commits_during(db: Database, action) -> tuple[object, int]:  # type: ignore[no-untyped-def]
    counted = []
    listener = lambda connection: counted.append(1)  # noqa: E731
    event.listen(db.engine, "commit", listener)
    try:
        result = action()
    finally:
        event.remove(db.engine, "commit", listener)
    return result, len(counted)


def test_a_batch_is_applied_in_one_transaction_and_one_commit(postgres_processor: MessageProcessor) -> None:
    db = postgres_processor.db
    messages = [received(Tallied(key=f"k{n}")) for n in range(20)]
    outcomes, commits = commits_during(db, lambda: postgres_processor.process_batch(SUBSCRIPTION, messages))
    assert [outcome.kind for outcome in outcomes] == ["done"] * 20
    assert commits == 1
    assert tallied_keys(db) == sorted(f"k{n}" for n in range(20))
    with db.transaction() as session:
        assert session.execute(select(func.count(func.distinct(tallies.c.transaction_id)))).scalar_one() == 1
        assert session.execute(select(func.count()).select_from(tables.inbox.table)).scalar_one() == 20


def test_a_batched_handler_is_given_the_database_context_only(postgres_processor: MessageProcessor) -> None:
    """Its events commit together or are applied again alone: a transaction of its own would outlive that."""
    contexts: list[DatabaseContext] = []

    def note(event: Tallied, ctx: DatabaseContext) -> None:
        contexts.append(ctx)

    subscription = Subscription("batchy", "noted", (Tallied,), note, batch=10)
    outcomes = postgres_processor.process_batch(subscription, [received(Tallied(key=f"n{n}")) for n in range(3)])
    assert [outcome.kind for outcome in outcomes] == ["done"] * 3
    assert [type(ctx) for ctx in contexts] == [DatabaseContext] * 3
    assert not hasattr(contexts[0], "separate_transaction")


def test_each_event_in_a_batch_gets_its_own_outcome(postgres_processor: MessageProcessor) -> None:
    db = postgres_processor.db
    seen_before = new_envelope(Tallied(key="old"), producer="test")
    assert postgres_processor.process(SUBSCRIPTION, received(seen_before)).kind == "done"
    twice = new_envelope(Tallied(key="twice"), producer="test")
    messages = [
        received(Tallied(key="a")),
        received(seen_before),
        received(twice),
        ReceivedMessage(b"{not json", CONTENT_TYPE, {}),
        received(twice),
        received(Tallied(key="b")),
    ]
    outcomes = postgres_processor.process_batch(SUBSCRIPTION, messages)
    assert [outcome.kind for outcome in outcomes] == ["done", "duplicate", "done", "park", "duplicate", "done"]
    assert outcomes[1].event_id == str(seen_before.event_id)
    assert tallied_keys(db) == ["a", "b", "old", "twice"]
    assert calls.count("old") == 1, "a duplicate must not reach the handler"
    assert calls.count("twice") == 1


def test_a_hostile_body_in_a_batch_is_parked_alone_as_undecodable(postgres_processor: MessageProcessor) -> None:
    hostile = hostile_bodies(received(Tallied(key="template")).body, max_bytes=postgres_processor.max_message_bytes)
    assert len(hostile) >= 10 and len(hostile["brackets"]) >= 100_000
    messages = [received(Tallied(key="before"))]
    messages += [ReceivedMessage(body, CONTENT_TYPE, {}) for body in hostile.values()]
    messages += [received(Tallied(key="after"))]
    outcomes, commits = commits_during(
        postgres_processor.db, lambda: postgres_processor.process_batch(SUBSCRIPTION, messages)
    )
    assert [(o.kind, o.reason) for o in outcomes[1:-1]] == [("park", "undecodable")] * len(hostile)
    assert [outcomes[0].kind, outcomes[-1].kind] == ["done", "done"]
    assert calls == ["before", "after"], "the valid events were applied once each, in the batch"
    assert commits == 1
    assert tallied_keys(postgres_processor.db) == ["after", "before"]


def test_a_decoder_that_raises_parks_only_that_message(
    postgres_processor: MessageProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shared.bus.processing as processing

    parse = processing.parse_envelope

    def fragile(body: bytes) -> Envelope:
        if b"boom" in body:
            raise MemoryError("the decoder gave up")
        return parse(body)

    monkeypatch.setattr(processing, "parse_envelope", fragile)
    messages = [received(Tallied(key="one")), received(Tallied(key="boom")), received(Tallied(key="two"))]
    outcomes = postgres_processor.process_batch(SUBSCRIPTION, messages)
    assert [(o.kind, o.reason) for o in outcomes] == [("done", ""), ("park", "undecodable"), ("done", "")]
    assert "MemoryError" in outcomes[1].error
    assert calls == ["one", "two"]


@pytest.mark.parametrize("fail, kind", [("transient", "retry"), ("permanent", "park")])
def test_a_failing_event_fails_alone_and_the_rest_of_its_batch_is_applied_once(
    postgres_processor: MessageProcessor, fail: str, kind: str
) -> None:
    db = postgres_processor.db
    messages = [received(Tallied(key="a")), received(Tallied(key="bad", fail=fail)), received(Tallied(key="c"))]
    outcomes, commits = commits_during(db, lambda: postgres_processor.process_batch(SUBSCRIPTION, messages))
    assert [outcome.kind for outcome in outcomes] == ["done", kind, "done"]
    assert outcomes[1].error and "bad" in outcomes[1].error
    assert tallied_keys(db) == ["a", "c"]
    # The batch rolled back, then each event ran alone: "a" was applied by its second run only.
    assert calls == ["a", "bad", "a", "bad", "c"]
    assert commits == 2
    with db.transaction() as session:
        claimed = session.execute(select(tables.inbox.table.c.event_id)).scalars().all()
    assert len(claimed) == 2, "the failed event must stay unclaimed so that its retry is applied"


def test_events_emitted_in_a_batch_reach_the_outbox_with_the_batch(postgres_processor: MessageProcessor) -> None:
    db = postgres_processor.db
    woken = []
    postgres_processor.after_commit = lambda: woken.append(1)
    messages = [received(Tallied(key=f"e{n}", emit=True)) for n in range(3)]
    assert [o.kind for o in postgres_processor.process_batch(SUBSCRIPTION, messages)] == ["done"] * 3
    with db.transaction() as session:
        bodies = session.execute(select(tables.outbox.table.c.body)).scalars().all()
    assert sorted(json.loads(body)["payload"]["key"] for body in bodies) == ["e0", "e1", "e2"]
    assert woken == [1], "the relay is woken once per committed batch"


def test_on_sqlite_a_batch_is_applied_one_event_per_transaction(sqlite_database: Database) -> None:
    tables.metadata.create_all(sqlite_database.engine)
    processor = MessageProcessor(sqlite_database, "batchy", tables.inbox, tables.outbox)
    messages = [received(Tallied(key=f"s{n}")) for n in range(4)]
    outcomes, commits = commits_during(sqlite_database, lambda: processor.process_batch(SUBSCRIPTION, messages))
    assert [outcome.kind for outcome in outcomes] == ["done"] * 4
    assert commits >= 4
    assert tallied_keys(sqlite_database) == ["s0", "s1", "s2", "s3"]


def test_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="batch must be at least 1"):
        Subscription("batchy", "tally", (Tallied,), tally, batch=0)


def queued_runtime(bus: object, db: Database, events: list[Tallied], **options: object) -> Runtime:
    """A runtime whose queue already holds ``events``, so deliveries wait while the workers are busy."""
    service = ServiceDefinition("batchy", tables, [SUBSCRIPTION])
    runtime = Runtime(bus, db, [service], relay_poll_seconds=0.05, **options)  # type: ignore[arg-type]
    runtime.create_tables()
    runtime.declare()
    publisher = bus.publisher()  # type: ignore[attr-defined]
    try:
        result = publisher.publish([OutgoingMessage.from_envelope(new_envelope(e, producer="test")) for e in events])
    finally:
        publisher.close()
    assert len(result.confirmed) == len(events), result.unroutable
    return runtime


def transactions(db: Database) -> int:
    with db.transaction() as session:
        return session.execute(select(func.count(func.distinct(tallies.c.transaction_id)))).scalar_one()


def test_a_busy_batched_subscription_applies_each_event_once_in_fewer_transactions(
    bus: object, postgres_database: Database
) -> None:
    events = [Tallied(key=f"bus{n}", fail="transient" if n == 7 else "") for n in range(300)]
    runtime = queued_runtime(bus, postgres_database, events)
    runtime.start()
    try:
        wait_until(lambda: len(tallied_keys(postgres_database)) >= 299, what="all good events applied")
        wait_until(lambda: calls.count("bus7") >= 3, timeout=30, what="the failing event retried")
    finally:
        runtime.stop()
    keys = tallied_keys(postgres_database)
    assert keys == sorted(f"bus{n}" for n in range(300) if n != 7), "each good event applied exactly once"
    assert transactions(postgres_database) < 299, "queued deliveries were not batched"


def test_an_operator_cap_of_one_applies_each_event_in_its_own_transaction(
    bus: object, postgres_database: Database
) -> None:
    runtime = queued_runtime(bus, postgres_database, [Tallied(key=f"one{n}") for n in range(100)], handler_batch=1)
    assert [subscription.batch for subscription, _ in runtime.bindings] == [1]
    runtime.start()
    try:
        wait_until(lambda: len(tallied_keys(postgres_database)) >= 100, what="every event applied")
    finally:
        runtime.stop()
    assert tallied_keys(postgres_database) == sorted(f"one{n}" for n in range(100))
    assert transactions(postgres_database) == 100


def test_postpay_handler_batch_reaches_the_services_batches(
    monkeypatch: pytest.MonkeyPatch, sqlite_database: Database
) -> None:
    monkeypatch.delenv("POSTPAY_AMQP_URL", raising=False)
    monkeypatch.setenv("POSTPAY_HANDLER_BATCH", "8")
    system = System(kernel=KernelSettings(), db=sqlite_database)
    batches = {subscription.queue: subscription.batch for subscription, _ in system.runtime(SERVICES).bindings}
    assert batches["usage_collector.record_customer"] == 8
    assert batches["provisioner.record_invoice"] == 8
    assert batches["invoicer.create_invoice"] == 1, "a handler that calls WHMCS is never batched"
    assert batches["usage_collector.collect_usage"] == 1


@pytest.mark.usefixtures("suite_logging_restored")
def test_every_event_of_a_batch_gets_its_own_audit_line(postgres_processor: MessageProcessor) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    outcomes = postgres_processor.process_batch(
        SUBSCRIPTION, [received(Tallied(key=f"l{n}"), attempt=2) for n in range(3)]
    )
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    handled = [line for line in lines if line["event"] == "event handled"]
    assert sorted(line["event_id"] for line in handled) == sorted(str(outcome.event_id) for outcome in outcomes)
    assert all(line["attempt"] == 3 and line["batch"] == 3 and line["handler"] == "batchy.tally" for line in handled)
