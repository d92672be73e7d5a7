"""Waking outbox relays when an outbox is written, so that an idle relay need not poll.

In the process that commits: a transaction that wrote to an outbox (``Outbox.add``, or
``outbox_written``) wakes, once committed, every relay of this process that ships that outbox, on
SQLite and PostgreSQL alike (a global SQLAlchemy ``after_commit`` hook: nothing for a writer to wire).

In other processes (PostgreSQL): the same transaction sends ``NOTIFY`` on the outbox's channel (its table
name); PostgreSQL delivers it on commit only, never for a rollback. Each relay ``LISTEN``s on a connection
of its own (``OutboxListener``). A transaction whose outbox a relay of its own process ships sends no
NOTIFY: that relay is woken in-process, and NOTIFY is not free (PostgreSQL serialises the commits of
notifying transactions; measured here, 16 writers commit about half as fast).

A lost wake-up (a listener reconnecting, a process that died between its commit and its relay pass) is
caught by the relay's own poll, which backs off while idle up to a bounded interval.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from sqlalchemy import Table, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from shared.logging import get_logger

log = get_logger("postpay.outbox")

_WRITTEN = "postpay.outbox_written"  # session.info: (engine, names of the outbox tables written)
_NOTIFY = text("SELECT pg_notify(:channel, '')")

_lock = threading.Lock()
_relays: dict[tuple[Hashable, str], list[Callable[[], None]]] = {}


def channel(table: Table) -> str:
    return table.name


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind.engine if isinstance(bind, Connection) else bind  # a session may be bound to a Connection


def _key(engine: Engine, table_name: str) -> tuple[Hashable, str]:
    # SQLite: two engines on one file are one database (a tool's and a runtime's). PostgreSQL: the engine
    # itself, since two engines with one URL may sit in different schemas; NOTIFY covers the rest.
    return (str(engine.url) if engine.dialect.name == "sqlite" else engine, table_name)


def register(engine: Engine, tables: Iterable[Table], wake: Callable[[], None]) -> None:
    """``wake`` is called after each commit in this process that wrote to one of ``tables``."""
    with _lock:
        for table in tables:
            _relays.setdefault(_key(engine, table.name), []).append(wake)


def unregister(engine: Engine, tables: Iterable[Table], wake: Callable[[], None]) -> None:
    with _lock:
        for table in tables:
            waiting = _relays.get(_key(engine, table.name), [])
            if wake in waiting:
                waiting.remove(wake)
            if not waiting:
                _relays.pop(_key(engine, table.name), None)


def relayed_here(engine: Engine, table: Table) -> bool:
    return bool(_relays.get(_key(engine, table.name)))


def outbox_written(session: Session, table: Table) -> None:
    """Mark the session's transaction as having written to ``table``'s outbox (once per transaction)."""
    written: tuple[Engine, set[str]] | None = session.info.get(_WRITTEN)
    if written is None:
        written = session.info[_WRITTEN] = (_engine(session), set())
    engine, names = written
    if table.name in names:
        return
    names.add(table.name)
    if engine.dialect.name == "postgresql" and not relayed_here(engine, table):
        session.execute(_NOTIFY, {"channel": channel(table)})


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    written = session.info.pop(_WRITTEN, None)
    if written is None:
        return
    engine, names = written
    with _lock:
        wakes = [wake for name in names for wake in _relays.get(_key(engine, name), ())]
    for wake in wakes:
        wake()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_WRITTEN, None)


class OutboxListener:
    """LISTENs to outboxes' channels on a PostgreSQL connection of its own and wakes a relay on each
    notification, and after each (re)connect: what was committed while nobody listened notified nobody."""

    def __init__(
        self,
        engine: Engine,
        tables: Iterable[Table],
        wake: Callable[[], None],
        *,
        reconnect_max_seconds: float = 30.0,
        check_seconds: float = 60.0,
    ) -> None:
        self.engine = engine
        self.channels = sorted({channel(table) for table in tables})
        self.wake = wake
        self.reconnect_max_seconds = reconnect_max_seconds
        self.check_seconds = check_seconds  # longest idle sleep without a look at the stop event (no query)
        self._interrupt_reader, self._interrupt_writer = socket.socketpair()
        self.listening = threading.Event()
        self.backend_pid: int | None = None

    def interrupt(self) -> None:
        """Wake the wait at once (to stop)."""
        try:
            self._interrupt_writer.send(b"\0")
        except OSError:
            pass

    def _connect(self) -> Any:
        # Out of the pool: this connection is held for the life of the process.
        pooled = self.engine.raw_connection()
        connection: Any = pooled.driver_connection  # psycopg's, whose LISTEN API SQLAlchemy does not type
        pooled.detach()
        connection.autocommit = True
        for name in self.channels:
            connection.execute(f'LISTEN "{name}"')
        self.backend_pid = connection.info.backend_pid
        return connection

    def run(self, stop: threading.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            connection = None
            try:
                connection = self._connect()
                delay = 0.5
                self.listening.set()
                self.wake()  # anything committed before the LISTEN took effect
                while not stop.is_set():
                    # Drain what has arrived (timeout 0: libpq may hold some read with the LISTEN's answer),
                    # then sleep on the socket itself: psycopg's own wait wakes every 0.1 s to look for
                    # signals, which alone cost an idle process more CPU than everything else it does.
                    for _ in connection.notifies(timeout=0):
                        self.wake()
                    select.select([connection.fileno(), self._interrupt_reader], [], [], self.check_seconds)
            except Exception as exc:
                if stop.is_set():
                    break
                log.warning(
                    "outbox listener lost its connection; listening again", error=str(exc), retry_in_seconds=delay
                )
                self.wake()
                stop.wait(delay)
                delay = min(2 * delay, self.reconnect_max_seconds)
            finally:
                self.listening.clear()
                if stop.is_set():
                    self._interrupt_reader.close()
                    self._interrupt_writer.close()
                if connection is not None:
                    try:
                        connection.close()
                    except Exception:
                        pass
