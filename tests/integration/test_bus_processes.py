"""The bus against real process deaths and a real broker outage (RabbitMQ; SQLite file and PostgreSQL)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from shared.bus.rabbit import RabbitBus
from shared.db import Database
from shared.runtime import Runtime
from tests.support.bus_helpers import publish, wait_until
from tests.support.private_broker import PrivateBroker
from tests.support.toy import ProbeHappened, attempts, count, effects, followups, toy_service

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.rabbit


class ConsumerProcess:
    def __init__(self, bus: RabbitBus, db: Database, log: Path) -> None:
        self.command = [
            sys.executable,
            "-m",
            "tests.support.toy_consumer",
            "--amqp",
            bus.url,
            "--database",
            db.url,
            "--namespace",
            bus.naming.namespace,
        ]
        if db.schema:
            self.command += ["--schema", db.schema]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ConsumerProcess:
        output = self.log.open("ab")
        self.process = subprocess.Popen(self.command, cwd=ROOT, stdout=output, stderr=output)
        return self

    def signal(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def toy_tables(rabbit_bus: RabbitBus, database: Database) -> Runtime:
    runtime = Runtime(rabbit_bus, database, [toy_service()])
    runtime.create_tables()
    runtime.declare()
    return runtime


def test_consumer_killed_mid_handler_applies_the_event_exactly_once_after_restart(
    toy_tables: Runtime, tmp_path: Path
) -> None:
    bus, db = toy_tables.bus, toy_tables.db
    key = uuid.uuid4().hex
    marker = tmp_path / "handler-started"
    first = ConsumerProcess(bus, db, tmp_path / "consumer.log").start()
    try:
        publish(bus, ProbeHappened(key=key, sleep_seconds=2.0, started_marker=str(marker)))
        wait_until(marker.exists, timeout=30, what="handler to start in the consumer process")
        # The effect row is written but not committed when the process dies.
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL
    finally:
        first.stop()
    assert count(db, effects, key) == 0
    second = ConsumerProcess(bus, db, tmp_path / "consumer.log").start()
    try:
        wait_until(lambda: count(db, effects, key) == 1, timeout=60, what="redelivered event applied")
        time.sleep(1.0)
        assert count(db, effects, key) == 1
        assert count(db, attempts, key) == 2, "once in the killed process, once after restart"
    finally:
        second.stop()


def test_sigterm_finishes_the_handler_in_flight_and_exits_cleanly(toy_tables: Runtime, tmp_path: Path) -> None:
    bus, db = toy_tables.bus, toy_tables.db
    key = uuid.uuid4().hex
    marker = tmp_path / "handler-started"
    consumer = ConsumerProcess(bus, db, tmp_path / "consumer.log").start()
    try:
        publish(bus, ProbeHappened(key=key, sleep_seconds=1.5, started_marker=str(marker), emit_followup=True))
        wait_until(marker.exists, timeout=30, what="handler to start")
        assert consumer.signal(signal.SIGTERM) == 0, (tmp_path / "consumer.log").read_text()[-2000:]
    finally:
        consumer.stop()
    assert count(db, effects, key) == 1
    # Acknowledged before exit: nothing is left in the queue to be handled again.
    with bus.connection() as connection:
        channel = bus.open_channel(connection)
        assert channel.queue_declare(bus.naming.queue("toy.apply_probe"), passive=True).message_count == 0
    # The follow-up it emitted was relayed before the relay stopped, or stays in the outbox: never lost.
    with db.transaction() as session:
        backlog = toy_tables.services[0].outbox.backlog(session)
    with bus.connection() as connection:
        channel = bus.open_channel(connection)
        queued = channel.queue_declare(bus.naming.queue("toy.record_followup"), passive=True).message_count
    assert backlog + queued == 1


def test_events_written_while_the_broker_is_down_are_published_after_it_returns(
    private_rabbit_bus: RabbitBus, private_broker_up: PrivateBroker, database: Database
) -> None:
    """On a private node: stopping the shared broker would break every other test running beside this one."""
    runtime = Runtime(private_rabbit_bus, database, [toy_service()], relay_poll_seconds=0.05)
    runtime.create_tables()
    runtime.start()
    try:
        assert runtime.consumer.connected.wait(10)
        warm = uuid.uuid4().hex
        with database.transaction() as session:
            runtime.services[0].outbox.add_event(session, ProbeHappened(key=warm))
        wait_until(lambda: count(database, effects, warm) == 1, what="broker path works before the outage")

        private_broker_up.stop_app()
        wait_until(lambda: not runtime.consumer.connected.is_set(), timeout=30, what="consumer to notice the outage")
        key = uuid.uuid4().hex
        with database.transaction() as session:
            runtime.services[0].outbox.add_event(session, ProbeHappened(key=key, emit_followup=True))
        runtime.relay.wake()
        time.sleep(1.0)
        with database.transaction() as session:
            assert runtime.services[0].outbox.backlog(session) == 1, "kept while the broker is down"

        private_broker_up.start_app()
        # The relay reconnects and publishes; the consumer reconnects and handles it, follow-up too.
        wait_until(lambda: count(database, followups, key) == 1, timeout=60, what="event published after the outage")
        assert count(database, effects, key) == 1
        with database.transaction() as session:
            assert runtime.services[0].outbox.backlog(session) == 0
    finally:
        runtime.stop()
