"""An idle relay is woken by commits instead of polling, on the real PostgreSQL (LISTEN/NOTIFY) and on
SQLite (in-process); its poll, which backs off while idle, still catches a wake-up that was lost."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import func, insert, select, text

from shared.bus.messages import OutgoingMessage, PublishResult
from shared.db import Database
from shared.relay import OutboxRelay
from shared.service import ServiceTables
from tests.support.toy import ProbeHappened


class RecordingPublisher:
    """Confirms everything and remembers when each event arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()

    def publish(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        with self.lock:
            for message in messages:
                self.arrived.setdefault(message.body.decode(), time.monotonic())
        return PublishResult(frozenset(m.event_id for m in messages), {})

    def close(self) -> None:
        pass

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.arrived) >= count:
                return True
            time.sleep(0.01)
        return len(self.arrived) >= count


class RunningRelay:
    def __init__(self, db: Database, tables: ServiceTables, **options: float) -> None:
        self.publisher = RecordingPublisher()
        self.passes = 0
        self.relay = OutboxRelay(db, [tables.outbox], lambda producer: self.publisher, **options)
        counted = self.relay.relay_once

        def relay_once() -> int:
            self.passes += 1
            return counted()

        self.relay.relay_once = relay_once  # type: ignore[method-assign]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.relay.run, args=(self.stop,), daemon=True)

    def start(self) -> RunningRelay:
        self.thread.start()
        deadline = time.monotonic() + 10
        while self.passes == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        listener = self.relay.listener
        if listener is not None:
            assert listener.listening.wait(10), "the relay's listener never listened"
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


def _tables(db: Database) -> ServiceTables:
    tables = ServiceTables(f"wake{uuid.uuid4().hex[:8]}")  # a channel of its own: no other test's NOTIFY
    tables.metadata.create_all(db.engine)
    return tables


def _commit(db: Database, tables: ServiceTables, *keys: str) -> float:
    with db.transaction() as session:
        for key in keys:
            tables.outbox.add_event(session, ProbeHappened(key=key))
    return time.monotonic()


def _commit_raw(db: Database, tables: ServiceTables, key: str) -> None:
    """An outbox row whose commit wakes nobody (as if its notification were lost)."""
    with db.transaction() as session:
        session.execute(
            insert(tables.outbox.table).values(
                event_id=uuid.uuid4(),
                event_type="ProbeHappened",
                body=key,
                headers="{}",
                correlation_id="c",
                producer="test",
                occurred_at=datetime.now(UTC),
                attempts=0,
            )
        )


def _outbox_empties(db: Database, tables: ServiceTables, timeout: float = 10.0) -> bool:
    """The relay deletes a row once its publish is confirmed, a moment after the publisher saw it."""
    deadline = time.monotonic() + timeout
    while True:
        with db.transaction() as session:
            if session.execute(select(func.count()).select_from(tables.outbox.table)).scalar_one() == 0:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@pytest.fixture
def other_process_db(postgres_database: Database) -> Iterator[Database]:
    """The same schema through an engine of its own: a writer in another process, as far as the relay
    can tell (no in-process wake-up reaches it)."""
    db = Database(postgres_database.url, schema=postgres_database.schema, pool_size=2)
    yield db
    db.dispose()


def test_a_burst_after_an_idle_spell_is_published_long_before_the_poll_would_find_it(
    postgres_database: Database, other_process_db: Database
) -> None:
    tables = _tables(postgres_database)
    # The poll alone would first look again 20 s after start: only the NOTIFY can explain a prompt publish.
    running = RunningRelay(postgres_database, tables, poll_seconds=20.0, max_poll_seconds=60.0).start()
    try:
        time.sleep(1.0)  # idle
        committed = _commit(other_process_db, tables, *(f"burst-{n}" for n in range(50)))
        assert running.publisher.wait_for(50, timeout=10.0), "the burst was not published"
        first = min(running.publisher.arrived.values()) - committed
        assert first < 5.0, f"the first event took {first:.2f}s: it waited for a poll"
        assert running.passes <= 10  # woken, not polling
    finally:
        running.close()


def test_a_commit_in_the_relays_own_process_wakes_it_without_a_notify(
    postgres_database: Database, postgres_url: str
) -> None:
    tables = _tables(postgres_database)
    running = RunningRelay(postgres_database, tables, poll_seconds=20.0, max_poll_seconds=60.0).start()
    spy = psycopg.connect(postgres_database.url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    try:
        spy.execute(f'LISTEN "{tables.outbox.table.name}"')
        _commit(postgres_database, tables, "local")
        assert running.publisher.wait_for(1, timeout=5.0), "the in-process wake-up did not reach the relay"
        assert list(spy.notifies(timeout=0.5)) == []  # the relay here ships it: NOTIFY would only cost
        running.close()
        _commit(postgres_database, tables, "nobody-relays-here")  # now only another process could ship it
        assert [n.channel for n in spy.notifies(timeout=5.0, stop_after=1)] == [tables.outbox.table.name]
    finally:
        spy.close()
        if running.thread.is_alive():
            running.close()


def test_a_lost_notification_is_recovered_by_the_backed_off_poll(
    postgres_database: Database, other_process_db: Database
) -> None:
    tables = _tables(postgres_database)
    running = RunningRelay(postgres_database, tables, poll_seconds=0.1, max_poll_seconds=1.0).start()
    try:
        listener = running.relay.listener
        assert listener is not None
        first_pid = listener.backend_pid
        # The listener's connection dies (a failover, a proxy's idle timeout): it listens again.
        with other_process_db.engine.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid}).scalar()
            connection.commit()
        deadline = time.monotonic() + 15
        while (listener.backend_pid == first_pid or not listener.listening.is_set()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listener.listening.is_set() and listener.backend_pid != first_pid, "the listener did not listen again"
        # A commit whose notification is lost: only the poll can find it.
        time.sleep(2.5)  # the poll is backed off to its max by now
        _commit_raw(other_process_db, tables, "lost")
        assert running.publisher.wait_for(1, timeout=10.0), "the poll did not recover the row"
        assert _outbox_empties(postgres_database, tables), "the published row stayed in the outbox"
    finally:
        running.close()


def test_sqlite_an_idle_relay_backs_off_its_poll(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'idle.sqlite'}")
    tables = _tables(db)
    running = RunningRelay(db, tables, poll_seconds=0.05, max_poll_seconds=0.8).start()
    try:
        time.sleep(3.0)
        # Without the back-off, 60 passes in 3 s; with it (0.05, 0.1, ... 0.8, 0.8 ...): under 10.
        assert running.passes <= 10, f"{running.passes} polls in 3 s of idle"
    finally:
        running.close()
        db.dispose()


def test_sqlite_a_commit_wakes_the_relay_in_process(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'wake.sqlite'}")
    tool = Database(f"sqlite:///{tmp_path / 'wake.sqlite'}")  # e.g. the console, on an engine of its own
    tables = _tables(db)
    # The poll alone would first look again 20 s after start: only the wake-up explains a prompt publish.
    running = RunningRelay(db, tables, poll_seconds=20.0, max_poll_seconds=60.0).start()
    try:
        time.sleep(1.0)
        committed = _commit(tool, tables, "a", "b")
        assert running.publisher.wait_for(2, timeout=10.0), "the commit did not wake the relay"
        assert min(running.publisher.arrived.values()) - committed < 5.0
        assert _outbox_empties(db, tables), "the published rows stayed in the outbox"
    finally:
        running.close()
        tool.dispose()
        db.dispose()


def test_sqlite_a_row_nobody_announced_is_still_found_by_the_poll(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'poll.sqlite'}")
    tables = _tables(db)
    running = RunningRelay(db, tables, poll_seconds=0.1, max_poll_seconds=1.0).start()
    try:
        time.sleep(2.0)
        _commit_raw(db, tables, "unannounced")
        assert running.publisher.wait_for(1, timeout=10.0)
    finally:
        running.close()
        db.dispose()
