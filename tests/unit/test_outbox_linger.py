"""The relay's linger: a burst of commits that wakes it ships in one confirm round, not one per event."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from shared.bus.messages import OutgoingMessage, PublishResult
from shared.db import Database
from shared.relay import OutboxRelay
from shared.service import ServiceTables
from tests.support.toy import ProbeHappened


class BatchRecordingPublisher:
    """Confirms everything, and remembers each call's batch."""

    def __init__(self) -> None:
        self.batches: list[list[OutgoingMessage]] = []
        self.all_shipped = threading.Event()
        self.expected = 0

    def publish(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        self.batches.append(list(messages))
        if sum(len(batch) for batch in self.batches) >= self.expected:
            self.all_shipped.set()
        return PublishResult(frozenset(m.event_id for m in messages), {})

    def close(self) -> None:
        pass


def _commit_one(db: Database, tables: ServiceTables, key: str) -> None:
    with db.transaction() as session:
        tables.outbox.add_event(session, ProbeHappened(key=key))


def _run_burst(tmp_path: Path, linger: float, burst: int) -> BatchRecordingPublisher:
    db = Database(f"sqlite:///{tmp_path / f'linger-{linger}.sqlite'}")
    tables = ServiceTables("burst")
    tables.metadata.create_all(db.engine)
    publisher = BatchRecordingPublisher()
    publisher.expected = burst
    # A long poll: only a wake (a handler's commit) makes the relay look.
    relay = OutboxRelay(db, [tables.outbox], lambda producer: publisher, poll_seconds=30, linger_seconds=linger)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        # The relay's first pass runs at once, before any wake: let it find the outbox empty first, or
        # it ships whatever part of the burst is committed by then without lingering.
        deadline = time.monotonic() + 10
        while not relay._last_backlog_report and time.monotonic() < deadline:
            time.sleep(0.005)
        for n in range(burst):  # handlers commit one event each, waking the relay every time
            _commit_one(db, tables, f"event-{n}")
            relay.wake()
        assert publisher.all_shipped.wait(10), "the relay did not ship the burst"
    finally:
        stop.set()
        relay.wake()
        thread.join(10)
        db.dispose()
    return publisher


def test_a_burst_of_commits_ships_in_one_confirm_round_after_the_linger(tmp_path: Path) -> None:
    publisher = _run_burst(tmp_path, linger=2.0, burst=10)

    assert [len(batch) for batch in publisher.batches] == [10]
    assert len({m.event_id for m in publisher.batches[0]}) == 10


def test_without_a_linger_every_event_still_ships(tmp_path: Path) -> None:
    publisher = _run_burst(tmp_path, linger=0.0, burst=10)

    assert sum(len(batch) for batch in publisher.batches) == 10
    assert len({m.event_id for batch in publisher.batches for m in batch}) == 10


def _relay(linger: float, busy: float | None = None) -> OutboxRelay:
    return OutboxRelay(
        None, [], lambda producer: BatchRecordingPublisher(), linger_seconds=linger, busy_linger_seconds=busy
    )  # type: ignore[arg-type]


def test_a_wake_soon_after_a_pass_that_shipped_lingers_longer() -> None:
    relay = _relay(0.02)
    assert relay.linger_for(100.0) == 0.02  # nothing shipped yet: the first event is not held back
    relay._shipped_at = 100.0
    assert relay.linger_for(100.01) == 0.1  # events keep coming: five times the linger by default
    assert relay.linger_for(100.5) == 0.02  # a quiet spell since: short again


def test_the_busy_linger_is_never_shorter_than_the_linger() -> None:
    relay = _relay(0.05, busy=0.01)
    relay._shipped_at = 1.0
    assert relay.linger_for(1.001) == 0.05
    assert _relay(0.0).linger_for(0.0) == 0.0
