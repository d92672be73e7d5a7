"""The bus delivers each event's effect exactly once, retries with delays, and parks what it cannot
handle. Every test runs on both buses (in-process and real RabbitMQ) and both databases."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import amqp.exceptions
import pytest
from sqlalchemy import select

from shared.bus.parking import ParkingLotMissing, Selection
from shared.db import Database
from shared.events.base import Event, new_envelope
from shared.runtime import Runtime
from tests.support.bus_helpers import metric, publish, publish_raw, wait_until
from tests.support.toy import ProbeHappened, attempts, count, effects, followups, toy_service

QUEUE = "toy.apply_probe"


@pytest.fixture
def runtime(bus: object, database: Database) -> Iterator[Runtime]:
    runtime = Runtime(bus, database, [toy_service()], relay_poll_seconds=0.05)
    runtime.create_tables()
    runtime.start()
    if hasattr(runtime.consumer, "connected"):
        assert runtime.consumer.connected.wait(10), "consumer did not connect"
    yield runtime
    runtime.stop()


def parked(runtime: Runtime) -> list:
    return runtime.bus.parking_lot().list(runtime.bus.naming.parking_lot(QUEUE))


def test_event_is_applied_once_and_its_followup_is_relayed(runtime: Runtime) -> None:
    key = uuid.uuid4().hex
    publish(runtime.bus, ProbeHappened(key=key, emit_followup=True))
    wait_until(lambda: count(runtime.db, followups, key) == 1, what="follow-up handled")
    assert count(runtime.db, effects, key) == 1

    def backlog() -> int:
        with runtime.db.transaction() as session:
            return runtime.services[0].outbox.backlog(session)

    # The relay deletes a row once the publish is confirmed, and the in-process bus may hand the
    # follow-up to its handler before that delete commits: the outbox drains, a moment after.
    wait_until(lambda: backlog() == 0, what="the follow-up's outbox row deleted after its confirm")


def test_duplicate_delivery_of_one_event_id_has_one_effect(runtime: Runtime) -> None:
    key = uuid.uuid4().hex
    envelope = new_envelope(ProbeHappened(key=key), producer="test")
    duplicates_before = metric("postpay_messages_handled_total", handler=QUEUE, outcome="duplicate")
    publish(runtime.bus, envelope)
    wait_until(lambda: count(runtime.db, effects, key) == 1, what="first delivery applied")
    publish(runtime.bus, envelope)
    publish(runtime.bus, envelope)
    wait_until(
        lambda: metric("postpay_messages_handled_total", handler=QUEUE, outcome="duplicate") >= duplicates_before + 2,
        what="duplicates acknowledged",
    )
    assert count(runtime.db, effects, key) == 1
    assert count(runtime.db, attempts, key) == 1, "a duplicate must not even reach the handler"


def test_handler_failing_twice_then_succeeding_is_applied_once_after_the_retry_delays(runtime: Runtime) -> None:
    key = uuid.uuid4().hex
    publish(runtime.bus, ProbeHappened(key=key, fail_times=2))
    wait_until(lambda: count(runtime.db, effects, key) == 1, what="third try succeeds")
    with runtime.db.transaction() as session:
        times = (
            session.execute(select(attempts.c.at).where(attempts.c.key == key).order_by(attempts.c.id)).scalars().all()
        )
    assert len(times) == 3
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(times, times[1:])]
    # The configured delays are 0.2 s then 0.5 s; a retry never comes early.
    assert gaps[0] >= 0.2 - 0.02, gaps
    assert gaps[1] >= 0.5 - 0.02, gaps
    assert gaps[1] > gaps[0], gaps
    assert parked(runtime) == []


def test_permanent_error_parks_at_once_with_its_reason(runtime: Runtime) -> None:
    key = uuid.uuid4().hex
    envelope = publish(runtime.bus, ProbeHappened(key=key, permanent=True))
    messages = wait_until(lambda: parked(runtime), what="message parked")
    assert [m.message_id for m in messages] == [str(envelope.event_id)]
    assert messages[0].reason == "rejected"
    assert "cannot be applied" in messages[0].error
    assert count(runtime.db, attempts, key) == 1, "a permanent failure is not retried"
    assert count(runtime.db, effects, key) == 0


def test_retries_exhausted_parks_then_requeue_of_the_fixed_message_applies_it(runtime: Runtime) -> None:
    key = uuid.uuid4().hex
    # Fails three times: the first try and both retries. The fourth try (after requeue) succeeds,
    # as it would once an operator fixed what made it fail.
    envelope = publish(runtime.bus, ProbeHappened(key=key, fail_times=3))
    messages = wait_until(lambda: parked(runtime), what="message parked after retries")
    assert messages[0].reason == "retries-exhausted"
    assert "failed on try 3" in messages[0].error
    assert messages[0].headers["x-postpay-attempt"] == 3
    assert count(runtime.db, attempts, key) == 3
    lot = runtime.bus.parking_lot()
    moved = lot.requeue(
        runtime.bus.naming.parking_lot(QUEUE),
        Selection(message_ids=frozenset({str(envelope.event_id)})),
        actor="test-operator",
        reason="upstream fixed",
    )
    assert len(moved) == 1
    wait_until(lambda: count(runtime.db, effects, key) == 1, what="requeued message applied")
    assert parked(runtime) == []


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/json", "undecodable"),
        (b'{"event_id": "x"}', "application/json", "invalid"),
        (b"[1, 2]", "application/json", "invalid"),
        (None, "text/plain", "wrong-content-type"),
        (None, None, "wrong-content-type"),
        ("unknown-type", "application/json", "unknown-type"),
        ("wrong-payload", "application/json", "invalid"),
        ("wrong-event", "application/json", "unexpected-type"),
        (b"x" * 300_000, "application/json", "oversized"),
    ],
)
def test_poison_message_is_parked_with_its_reason_and_the_next_valid_one_is_processed(
    runtime: Runtime, body: object, content_type: str | None, reason: str
) -> None:
    valid = new_envelope(ProbeHappened(key=uuid.uuid4().hex), producer="test")
    document = json.loads(valid.to_json())
    if body is None:
        body = valid.to_json().encode()
    elif body == "unknown-type":
        body = json.dumps({**document, "event_type": "NoSuchEvent"}).encode()
    elif body == "wrong-payload":
        body = json.dumps({**document, "payload": {"key": 42}}).encode()
    elif body == "wrong-event":
        from shared.events import NothingToBill

        other = new_envelope(NothingToBill(whmcs_client_id=1, period="2026-10"), producer="test")
        body = other.to_json().encode()
    publish_raw(runtime.bus, QUEUE, body, content_type=content_type)  # type: ignore[arg-type]
    publish(runtime.bus, valid)
    wait_until(lambda: count(runtime.db, effects, valid.payload.key) == 1, what="valid message processed")
    messages = wait_until(lambda: parked(runtime), what="poison message parked")
    assert [m.reason for m in messages] == [reason]
    assert messages[0].body == body


def test_purge_removes_only_the_selected_parked_messages(runtime: Runtime) -> None:
    for key in ("a", "b", "c"):
        publish(runtime.bus, ProbeHappened(key=f"{key}-{uuid.uuid4().hex}", permanent=True))
    wait_until(lambda: len(parked(runtime)) == 3, what="three parked")
    lot = runtime.bus.parking_lot()
    name = runtime.bus.naming.parking_lot(QUEUE)
    with pytest.raises(ValueError, match="say why"):
        lot.purge(name, Selection(positions=frozenset({0})), actor="ops", reason=" ")
    removed = lot.purge(name, Selection(positions=frozenset({1})), actor="ops", reason="known bad")
    assert len(removed) == 1
    remaining = parked(runtime)
    assert len(remaining) == 2
    assert removed[0].message_id not in {m.message_id for m in remaining}


def test_a_purge_right_after_a_listing_removes_the_message_listed_at_that_position(runtime: Runtime) -> None:
    for key in range(5):
        publish(runtime.bus, ProbeHappened(key=f"{key}-{uuid.uuid4().hex}", permanent=True))
    wait_until(lambda: len(parked(runtime)) == 5, what="five parked")
    lot = runtime.bus.parking_lot()
    name = runtime.bus.naming.parking_lot(QUEUE)
    for left in (5, 4, 3, 2, 1):
        listing = parked(runtime)
        assert len(listing) == left, "a listing must show every parked message, including ones just browsed"
        removed = lot.purge(name, Selection(positions=frozenset({left - 1})), actor="ops", reason="known bad")
        assert [m.message_id for m in removed] == [listing[-1].message_id]
    assert parked(runtime) == []


class OrphanHappened(Event):
    """An event no queue is bound for."""

    producers = ("toy",)

    key: str


def test_an_unroutable_event_is_an_error_and_stays_in_the_outbox(runtime: Runtime) -> None:
    outbox = runtime.services[0].outbox
    with runtime.db.transaction() as session:
        envelope = outbox.add_event(session, OrphanHappened(key="lost?"))

    def tried() -> list:
        with runtime.db.transaction() as session:
            rows = session.execute(select(outbox.table).where(outbox.table.c.event_id == envelope.event_id)).all()
        assert len(rows) == 1, "an unroutable event must not be dropped"
        return rows if rows[0].attempts >= 1 else []

    rows = wait_until(tried, what="the relay's attempt at the unroutable event")
    assert "NO_ROUTE" in rows[0].last_error


def test_a_rolled_back_change_never_publishes(runtime: Runtime) -> None:
    outbox = runtime.services[0].outbox
    key = uuid.uuid4().hex
    with pytest.raises(RuntimeError):
        with runtime.db.transaction() as session:
            outbox.add_event(session, ProbeHappened(key=key))
            raise RuntimeError("the state change failed")
    # A sentinel written after the rollback: once its effect is seen, the relay has shipped everything
    # that was ever committed before it, so a missing effect for the rolled-back event means something.
    sentinel = uuid.uuid4().hex
    with runtime.db.transaction() as session:
        outbox.add_event(session, ProbeHappened(key=sentinel))
    runtime.relay.wake()
    wait_until(lambda: count(runtime.db, effects, sentinel) == 1, what="the sentinel event applied")
    with runtime.db.transaction() as session:
        assert outbox.backlog(session) == 0
    assert count(runtime.db, effects, key) == 0
    assert count(runtime.db, attempts, key) == 0


def test_a_parking_copy_the_broker_cannot_route_is_not_acknowledged_and_nothing_is_lost(
    rabbit_bus: object, database: Database
) -> None:
    runtime = Runtime(rabbit_bus, database, [toy_service()], relay_poll_seconds=0.05)
    runtime.create_tables()
    runtime.start()
    try:
        assert runtime.consumer.connected.wait(10)
        with rabbit_bus.connection() as connection:  # type: ignore[attr-defined]
            rabbit_bus.open_channel(connection).queue_delete(rabbit_bus.naming.parking_lot(QUEUE))  # type: ignore[attr-defined]
        publish_raw(rabbit_bus, QUEUE, b"{not json")

        # The copy comes back unroutable: the original stays unacknowledged, the consumer reconnects,
        # declares its topology again, and the redelivered message is parked for good.
        def parked_once_redeclared() -> list:
            try:
                return parked(runtime)
            except ParkingLotMissing:
                return []
            except amqp.exceptions.InternalError:
                # The consumer has just declared the lot again and its quorum process is still starting
                # (the broker answers "noproc"): not there yet, like a missing lot.
                return []

        messages = wait_until(parked_once_redeclared, timeout=30, what="message parked after the lot came back")
        assert [m.reason for m in messages] == ["undecodable"]
    finally:
        runtime.stop()
