"""The outbox relay: ships each service's outbox rows to the broker.

The relay publishes unpublished rows, waits for the broker's confirms, and only then deletes them. A
row may be published twice (the relay can die between the confirm and its commit); consumers
deduplicate by event id.

An idle relay costs next to nothing: a commit that wrote an outbox wakes its relays (in-process, and on
PostgreSQL by NOTIFY, see ``shared.outbox_wakeup``), so the poll that remains only catches a lost
wake-up, and backs off while idle from ``poll_seconds`` to ``max_poll_seconds``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.bus.messages import OutgoingMessage, PublishError
from shared.db import (
    Database,
    rows_on_driver,
)
from shared.logging import get_logger
from shared.metrics import EVENTS_PUBLISHED, OUTBOX_BACKLOG
from shared.outbox import Outbox
from shared.outbox_wakeup import OutboxListener, register, unregister
from shared.ports import Publisher

log = get_logger("postpay.outbox")


def _due_sql(table: Table) -> str:
    """The relay's claim of a batch on PostgreSQL (what it selects with SQLAlchemy elsewhere)."""
    return (
        f'SELECT {", ".join(column.name for column in table.columns)} FROM "{table.name}" '
        "WHERE next_attempt_at IS NULL OR next_attempt_at <= %(now)s "
        "ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
    )


def _row_to_message(row: Any) -> OutgoingMessage:
    return OutgoingMessage(
        event_id=row.event_id,
        event_type=row.event_type,
        body=row.body.encode(),
        correlation_id=row.correlation_id,
        producer=row.producer,
        occurred_at=row.occurred_at.astimezone(UTC),  # as UtcTimestamp reads it (the driver: the session's zone)
        headers=json.loads(row.headers),
    )


class OutboxRelay:
    """Moves outbox rows to the broker. Several relays may run: PostgreSQL rows are claimed with
    ``FOR UPDATE SKIP LOCKED`` so two relays do not ship the same batch at the same time.

    Each outbox is published by a publisher for its own service (``publisher_factory(service)``): on
    RabbitMQ, connected as that service's broker user, the only one allowed to state its events.
    """

    def __init__(
        self,
        db: Database,
        outboxes: Sequence[Outbox],
        publisher_factory: Callable[[str], Publisher],
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.2,
        max_poll_seconds: float = 30.0,
        linger_seconds: float = 0.0,
        busy_linger_seconds: float | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``linger_seconds``: the pause after a wake, so a burst of commits ships in one confirm round.
        ``busy_linger_seconds`` (default five times that): the pause instead while events keep coming,
        i.e. when the wake comes less than this long after a pass that shipped some."""
        self.db = db
        self.outboxes = list(outboxes)
        self._publisher_factory = publisher_factory
        self._publishers: dict[str, Publisher] = {}
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_poll_seconds = max(max_poll_seconds, poll_seconds)
        self.linger_seconds = linger_seconds
        self.busy_linger_seconds = max(
            linger_seconds, 5 * linger_seconds if busy_linger_seconds is None else busy_linger_seconds
        )
        self._shipped_at: float | None = None  # time.monotonic() of the last pass that shipped something
        self.clock = clock
        self._wake = threading.Event()
        self._full_batch = False
        self._last_backlog_report = 0.0
        self.listener: OutboxListener | None = None
        # Per outbox: failures in a row and when to try it again, so one broken outbox (a missing
        # table, a bad row) is retried on its own schedule instead of stalling every outbox after it.
        self._outbox_failures: dict[str, tuple[int, float]] = {}

    def wake(self) -> None:
        """Ask for a pass now (called after a commit that wrote to an outbox)."""
        self._wake.set()

    def relay_once(self) -> int:
        """Publish what is due in every outbox, one batch each; return how many were confirmed."""
        shipped, self._full_batch = 0, False
        for outbox in self.outboxes:
            failures, retry_at = self._outbox_failures.get(outbox.producer, (0, 0.0))
            if time.monotonic() < retry_at:
                continue
            try:
                shipped += self._relay_batch(outbox)
            except PublishError:
                raise  # the broker, not this outbox: every outbox would fail the same way
            except Exception:
                failures += 1
                delay = min(30.0, 0.5 * 2**failures)
                log.exception(
                    "outbox relay failed; other outboxes go on", service=outbox.producer, retry_in_seconds=delay
                )
                self._outbox_failures[outbox.producer] = (failures, time.monotonic() + delay)
                continue
            self._outbox_failures.pop(outbox.producer, None)
        return shipped

    def _publisher_for(self, producer: str) -> Publisher:
        publisher = self._publishers.get(producer)
        if publisher is None:
            publisher = self._publishers[producer] = self._publisher_factory(producer)
        return publisher

    def _drop_publisher(self, producer: str | None = None) -> None:
        """Close one producer's publisher (None: every one)."""
        for name in [producer] if producer is not None else list(self._publishers):
            publisher = self._publishers.pop(name, None)
            if publisher is not None:
                try:
                    publisher.close()
                except Exception:
                    pass

    def _relay_batch(self, outbox: Outbox) -> int:
        table = outbox.table
        now = self.clock()
        on_driver = self.db.is_postgres
        with self._pass_transaction() as session:
            if on_driver:
                rows = rows_on_driver(session, _due_sql(table), {"now": now, "limit": self.batch_size})
            else:
                due = (
                    select(table)
                    .where((table.c.next_attempt_at.is_(None)) | (table.c.next_attempt_at <= now))
                    .order_by(table.c.id)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
                rows = list(session.execute(due).all())
            if not rows:
                return 0
            messages = [_row_to_message(row) for row in rows]
            try:
                result = self._publisher_for(outbox.producer).publish(messages)
            except PublishError as exc:
                self._drop_publisher(outbox.producer)
                log.warning("outbox publish failed; will retry", service=outbox.producer, error=str(exc))
                raise
            confirmed = [row.id for row in rows if row.event_id in result.confirmed]
            if confirmed and on_driver:
                rows_on_driver(session, f'DELETE FROM "{table.name}" WHERE id = ANY(%(ids)s)', {"ids": confirmed})
            elif confirmed:
                session.execute(delete(table).where(table.c.id.in_(confirmed)))
            for row in rows:
                reason = result.unroutable.get(row.event_id)
                if reason is not None:
                    self._defer(session, table, row, reason, now)
        EVENTS_PUBLISHED.labels(outbox.producer).inc(len(confirmed))
        self._full_batch = self._full_batch or len(rows) >= self.batch_size
        return len(confirmed)

    @contextmanager
    def _pass_transaction(self) -> Iterator[Session | Connection]:
        """A pass's transaction: on PostgreSQL a Core connection (its statements all run on the driver,
        and a Session cost as much CPU again per pass), elsewhere a Session."""
        if not self.db.is_postgres:
            with self.db.transaction() as session:
                yield session
            return
        with self.db.engine.begin() as connection:
            yield connection

    def _defer(self, session: Session | Connection, table: Table, row: Any, reason: str, now: datetime) -> None:
        delay = min(300, 2 ** min(row.attempts, 8))
        log.error(
            "event is unroutable: no queue is bound for it; kept in the outbox",
            event_type=row.event_type,
            event_id=str(row.event_id),
            reason=reason,
            retry_in_seconds=delay,
        )
        session.execute(
            update(table)
            .where(table.c.id == row.id)
            .values(attempts=row.attempts + 1, next_attempt_at=now + timedelta(seconds=delay), last_error=reason)
        )

    def report_backlog(self) -> dict[str, int]:
        with self.db.transaction() as session:
            backlog = {outbox.producer: outbox.backlog(session) for outbox in self.outboxes}
        for service, count in backlog.items():
            OUTBOX_BACKLOG.labels(service).set(count)
        return backlog

    def flush(self, max_passes: int = 20) -> None:
        """Best effort at shutdown: ship what is due; whatever cannot go now stays in the outbox."""
        try:
            for _ in range(max_passes):
                if self.relay_once() == 0:
                    break
        except Exception as exc:
            log.warning("outbox not flushed at shutdown; it ships on the next start", error=str(exc))
        finally:
            self._drop_publisher()

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set: at once when woken, else by a poll that backs off while idle;
        back off too while the broker is unreachable."""
        tables = [outbox.table for outbox in self.outboxes]
        register(self.db.engine, tables, self.wake)
        listener = listening = None
        if self.db.engine.dialect.name == "postgresql":
            listener = self.listener = OutboxListener(self.db.engine, tables, self.wake)
            listening = threading.Thread(target=listener.run, args=(stop,), name="outbox-listener", daemon=True)
            listening.start()

        def on_stop() -> None:
            stop.wait()
            self._wake.set()
            if listener is not None:
                listener.interrupt()

        # The idle waits can be long: stopping ends them (a blocked thread costs nothing, a sliced wait would).
        threading.Thread(target=on_stop, name="relay-stop", daemon=True).start()
        try:
            self._run(stop)
        finally:
            unregister(self.db.engine, tables, self.wake)
            if listening is not None:
                listening.join(10)
            self._drop_publisher()

    def _run(self, stop: threading.Event) -> None:
        failures = 0
        idle_wait = self.poll_seconds
        while not stop.is_set():
            try:
                shipped = self.relay_once()
                failures = 0
                if shipped:
                    self._shipped_at = time.monotonic()
            except PublishError:
                failures += 1
                stop.wait(min(5.0, 0.2 * 2**failures))
                continue
            except Exception:
                failures += 1
                log.exception("outbox relay pass failed")
                stop.wait(min(5.0, 0.2 * 2**failures))
                continue
            # The backlog gauge is read no more often than the poll: idle, it costs no extra commits.
            if time.monotonic() - self._last_backlog_report > max(2.0, idle_wait):
                self._last_backlog_report = time.monotonic()
                self.report_backlog()
            if self._full_batch:
                continue  # more is waiting
            if shipped:
                idle_wait = self.poll_seconds  # more may follow
            # A commit during the pass has set the wake already, so nothing committed is left behind.
            woken = self._wake.wait(idle_wait)
            self._wake.clear()
            # Each pass that found nothing to do doubles the wait, up to the max: only a lost wake-up
            # needs the poll at all.
            idle_wait = self.poll_seconds if woken else min(2 * idle_wait, self.max_poll_seconds)
            if woken and self.linger_seconds:
                # Handlers commit one event at a time: pausing lets a burst of them share a confirm
                # round, which costs the relay far less CPU per event for a few ms of latency.
                stop.wait(self.linger_for(time.monotonic()))

    def linger_for(self, now: float) -> float:
        """How long to pause after a wake at ``now`` (monotonic). A stream of events (a month close: a
        pass every few ms) gets the longer pause, so each pass and its commit and confirm round carry
        several times more events; a wake after a quiet spell (the first event of a burst, a lone
        signup) gets the short one, so it is not delayed more than before."""
        if self._shipped_at is not None and now - self._shipped_at < self.busy_linger_seconds:
            return self.busy_linger_seconds
        return self.linger_seconds
