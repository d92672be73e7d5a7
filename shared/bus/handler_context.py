"""What a handler gets besides its event: its transaction, a way to emit events, the clock, and (for
a handler that may call upstreams) transactions of its own; and the marks the processor reads.

The processor (``processing.py``) makes one of these per delivery: the claim of the event in its
inbox, the handler's effects and the events it emits commit in the one transaction given here.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.clock import Clock
from shared.db import ConnectionTransaction, Database
from shared.events.base import Envelope, Event, deterministic_event_id, new_envelope
from shared.inbox import Inbox
from shared.logging import get_logger
from shared.outbox import Outbox

log = get_logger("postpay.bus")

_H = TypeVar("_H", bound=Callable[..., None])


class DatabaseContext:
    """What a database-only handler gets besides its event: its transaction, a way to emit events, the
    clock. Nothing else: it cannot open another transaction, so it may be batched (``Subscription``).

    ``session`` is the handler's transaction: what the event changes commits in it together with the
    event's inbox row and the events emitted, or, if the handler raises, none of it does.

    Events emitted here get deterministic ids (from the incoming event id, the event type and a key),
    so a handler that is run again after a crash emits the same ids and nothing is duplicated.
    """

    def __init__(
        self,
        session: Session,
        envelope: Envelope[Any],
        outbox: Outbox,
        clock: Clock,
        handler: str,
    ) -> None:
        self._session: Session | None = session  # None only in a HandlerContext given a transaction
        self.envelope = envelope
        self.outbox = outbox
        self.clock = clock
        self.handler = handler
        self._emitted = 0
        self.wrote_outbox = False

    @functools.cached_property
    def log(self) -> Any:
        # Bound when first used: most handlers never log through it, and binding costs per event.
        return log.bind(handler=self.handler)

    @property
    def session(self) -> Session:
        return cast(Session, self._session)

    @property
    def event_id(self) -> uuid.UUID:
        return self.envelope.event_id

    def now(self) -> datetime:
        return self.clock()

    def emit(self, event: Event, *, key: str | None = None, session: Session | None = None) -> Envelope[Any]:
        """Write ``event`` to the outbox, caused by the event being handled."""
        (envelope,) = self.emit_all([(event, key)], session=session)
        return envelope

    def emit_all(
        self, events: Iterable[tuple[Event, str | None]], *, session: Session | None = None
    ) -> list[Envelope[Any]]:
        """Write many events in one statement; each ``(event, key)`` gets its deterministic id."""
        envelopes = [self._envelope(event, key) for event, key in events]
        self.outbox.add_all(session or self.writer, envelopes)
        self.wrote_outbox = self.wrote_outbox or bool(envelopes)
        return envelopes

    def emitted(self, event: Event, *, key: str) -> Envelope[Any]:
        """``emit``'s envelope (the same deterministic id) for a handler whose own statement writes its
        outbox row in this transaction (``Outbox.insert_one_part``, then ``Outbox.written``): one
        statement fewer. The relay is woken after the commit, as for ``emit``."""
        envelope = self._envelope(event, key)
        self.wrote_outbox = True
        return envelope

    def _envelope(self, event: Event, key: str | None) -> Envelope[Any]:
        self._emitted += 1
        event_id = deterministic_event_id(
            self.envelope.event_id, self.handler, event.event_type, key if key is not None else self._emitted
        )
        return new_envelope(
            event,
            producer=self.outbox.producer,
            event_id=event_id,
            correlation_id=self.envelope.correlation_id,
            causation_id=self.envelope.event_id,
            occurred_at=self.clock(),
        )

    @property
    def writer(self) -> Session | Connection:
        """The handler's transaction for statements that need no Session: ``session`` here."""
        return self.session


class HandlerContext(DatabaseContext):
    """What a handler that may call upstreams gets: the database context, and transactions that
    commit on their own, before the handler's (docs/handlers.md, "Which transaction").

    ``ctx.session`` is the default. Each of ``record_now``, ``checkpoint`` and ``read_first`` is a
    transaction of its own, named for the one reason to use it, so the reason shows where it is used.
    Open them before the handler first touches ``ctx.session``: SQLite has one writer at a time, and
    the handler's own transaction, once begun, would make this one wait for it forever.

    ``inbox`` (PostgreSQL): the event's inbox row is claimed in ``ctx.session`` when the handler first
    touches it, not before the handler runs, so a handler waiting for or making an upstream call holds
    no pooled connection; the claim is still the first statement of the handler's transaction, and
    commits or rolls back with its effect and its outbox rows. A duplicate found then raises
    ``AlreadyHandled`` (two deliveries running at once). A redelivery of an event already handled never
    gets to an effect: the processor looks it up first, before the handler runs, or, for a handler
    marked ``database_first``, the handler's first transaction does (``check_first``).
    """

    def __init__(
        self,
        session: Session | None,
        envelope: Envelope[Any],
        outbox: Outbox,
        db: Database,
        clock: Clock,
        handler: str,
        *,
        inbox: Inbox | None = None,
        check_first: bool = False,
        transaction: ConnectionTransaction | None = None,
    ) -> None:
        """``inbox``: claim the event in it when ``session`` is first touched (None: the caller did or will).
        ``check_first``: the first separate transaction looks the event up in ``inbox`` before the
        handler reads anything (the processor did not: see ``database_first``). ``transaction`` instead
        of ``session``: the claim runs on its connection and a Session is made over it only if the
        handler touches ``session`` (most of a Session's cost is saved for a handler that does not)."""
        if (session is None) == (transaction is None):
            raise ValueError("give a session or a transaction")
        super().__init__(cast(Session, session), envelope, outbox, clock, handler)
        self.db = db
        self._inbox = inbox
        self._transaction = transaction
        self._claimed = inbox is None
        self._unchecked = check_first and inbox is not None
        self.already_handled = False

    @property
    def session(self) -> Session:
        """The handler's transaction; its first use claims the event (and may raise ``AlreadyHandled``)."""
        if not self._claimed:
            self.claim()
        if self._session is None:
            assert self._transaction is not None
            self._session = self._transaction.session
        return self._session

    @property
    def writer(self) -> Session | Connection:
        """The handler's transaction for statements that need no Session (plain SQL on the driver, Core
        statements; the outbox rows ``emit`` writes): on PostgreSQL its Core connection, claimed on first
        use as ``session`` is, without making a Session over it (most of a Session's cost per delivery is
        saved for a handler whose writes are all such statements); elsewhere ``session``. Both are the
        one transaction: what is written through either commits or rolls back with the other's."""
        if self._transaction is None:
            return self.session
        if not self._claimed:
            self.claim()
        return self._transaction.connection

    def claim(self) -> None:
        """Claim the event in the handler's transaction, if not yet: the processor calls it after a
        handler that never touched ``session``. Marked claimed only once the claim succeeded, so a
        claim that failed is tried again (and fails again, in the aborted transaction) at the end."""
        if self._claimed or self._inbox is None:
            return
        where = self._transaction.connection if self._transaction is not None else cast(Session, self._session)
        if not self._inbox.claim(where, self.handler, self.envelope.event_id, self.clock()):
            self._found_handled()
        self._claimed = True
        self._unchecked = False

    def _found_handled(self) -> None:
        self.already_handled = True
        raise AlreadyHandled(f"{self.envelope.event_id} is already in {self.handler}'s inbox")

    def record_now(self) -> AbstractContextManager[Session]:
        """For a row that must outlive this attempt whatever its outcome: a claim made before an
        upstream call whose outcome could be lost, a call's result or failure (a ledger row), a step
        the customer must see at once. Committed when the block ends, even if the handler then raises."""
        return self.separate_transaction()

    def checkpoint(self) -> AbstractContextManager[Session]:
        """For one step of work done in steps (a fan-out chunk) with its resume point, and the events it
        emits (``emit_all(..., session=)``): a redelivery after a crash resumes after the last step."""
        return self.separate_transaction()

    def read_first(self) -> AbstractContextManager[Session]:
        """For what the handler reads before an upstream call or before its own writes, without
        beginning its own transaction (which would hold a connection, and SQLite's lock, meanwhile)."""
        return self.separate_transaction()

    @contextmanager
    def record_now_writer(self) -> Iterator[Session | Connection]:
        """``record_now`` for statements that need no Session (plain SQL on the driver, Core
        statements): on PostgreSQL a Core-connection transaction, with the same look-up first when
        the processor left it to this one; elsewhere ``record_now``'s Session. A Session cost about as
        much CPU as the three statements the invoicer's first transaction runs on the driver."""
        if not self.db.is_postgres:
            with self.separate_transaction() as session:
                yield session
            return
        with self.db.engine.begin() as connection:
            self._check_first(connection)
            yield connection

    @contextmanager
    def separate_transaction(self) -> Iterator[Session]:
        """A transaction that commits on its own, before the handler's; prefer the named ones above."""
        with self.db.transaction() as session:
            self._check_first(session)
            yield session

    def _check_first(self, where: Session | Connection) -> None:
        """The look-up the processor skipped, as this transaction's first statement: one round trip
        instead of a transaction of its own, and still before any effect."""
        if self._unchecked and self._inbox is not None:
            if self._inbox.seen(where, self.handler, self.envelope.event_id):
                self._found_handled()
            self._unchecked = False


def database_first(handler: _H) -> _H:
    """Mark a handler that touches its database (``ctx.session`` or one of its own transactions)
    before any upstream call with an effect (an email, an invoice, a change), and calls none at all
    if that first transaction raises: what it calls before that only reads.

    The processor then does not look the event up in the inbox in a transaction of its own before
    the handler runs; the handler's first transaction does (``seen``, or the claim in
    ``ctx.session``), so a redelivery of an event already handled still stops before any effect,
    one transaction per delivery cheaper. A read made before it is made again on a redelivery.
    """
    setattr(handler, _DATABASE_FIRST, True)
    return handler


_DATABASE_FIRST = "__postpay_database_first__"


def is_database_first(handler: Callable[..., None]) -> bool:
    # Ports and settings are bound with functools.partial (``bind``): the mark is on the function.
    return bool(getattr(getattr(handler, "func", handler), _DATABASE_FIRST, False))


class AlreadyHandled(Exception):
    """The event being handled is already in the handler's inbox: another delivery of it committed.
    The processor acknowledges it as a duplicate and rolls back whatever this one did in ``ctx.session``
    (even if the handler caught this and went on)."""
