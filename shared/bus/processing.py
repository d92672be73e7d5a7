"""Turning one delivery into one outcome: ack, duplicate, retry or park.

This is where "exactly-once effects on an at-least-once broker" happens, identically for RabbitMQ and
the in-process bus:

1. the body is decoded and validated, and its publisher checked against the event type's producers;
   what cannot be (bad JSON, wrong schema, unknown type, wrong content type, too big, a publisher the
   catalog does not name) is parked at once, because no retry can fix it;
2. an event already in the handler's inbox is acknowledged and skipped;
3. the handler runs inside a transaction; its state change, the events it emits (outbox) and its
   inbox row commit together. Only then is the message acknowledged (by the caller).
"""

from __future__ import annotations

import functools
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict, cast

import structlog
from sqlalchemy.exc import IntegrityError

from shared.bus.handler_context import AlreadyHandled, DatabaseContext, HandlerContext, is_database_first
from shared.bus.identity import BrokerUsers
from shared.bus.messages import CONTENT_TYPE, MAX_ERROR_TEXT, ReceivedMessage
from shared.bus.topology import DatabaseHandler, Subscription
from shared.db import Database
from shared.errors import PermanentError, RetryLater
from shared.events.base import Envelope, EnvelopeError, parse_envelope
from shared.inbox import Inbox
from shared.logging import get_logger
from shared.metrics import HANDLER_SECONDS, MESSAGES_FAILED, MESSAGES_HANDLED, labelled
from shared.outbox import Outbox

log = get_logger("postpay.bus")

OutcomeKind = Literal["done", "duplicate", "retry", "park"]


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    reason: str = ""
    error: str = ""
    event_id: str | None = None
    event_type: str | None = None
    wait: float | None = None  # a handler's RetryLater: retry after this long, not counted as a failure

    @property
    def acknowledges(self) -> bool:
        return self.kind in ("done", "duplicate")


class _Ids(TypedDict):
    """Which event an outcome is about."""

    event_id: str
    event_type: str


class MessageProcessor:
    """Applies deliveries for one service's subscriptions against its database."""

    def __init__(
        self,
        db: Database,
        service: str,
        inbox: Inbox,
        outbox: Outbox,
        *,
        max_message_bytes: int = 262_144,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        after_commit: Callable[[], None] | None = None,
        producers: BrokerUsers | None = None,
    ) -> None:
        """``producers``: whose events to accept (None: anyone's, for tests of the processor alone)."""
        self.db = db
        self.service = service
        self.inbox = inbox
        self.outbox = outbox
        self.max_message_bytes = max_message_bytes
        self.clock = clock
        self.after_commit = after_commit
        self.producers = producers

    def decode(self, subscription: Subscription, message: ReceivedMessage) -> Envelope[Any] | Outcome:
        if len(message.body) > self.max_message_bytes:
            return Outcome("park", "oversized", f"{len(message.body)} bytes > {self.max_message_bytes}")
        content_type = (message.content_type or "").split(";")[0].strip().lower()
        if content_type != CONTENT_TYPE:
            return Outcome("park", "wrong-content-type", f"content type {message.content_type!r}")
        try:
            envelope = parse_envelope(message.body)
        except EnvelopeError as exc:
            return Outcome("park", exc.reason, exc.detail[:MAX_ERROR_TEXT])
        if not subscription.accepts(envelope.event_type):
            return Outcome(
                "park",
                "unexpected-type",
                f"{subscription.queue} does not consume {envelope.event_type}",
                str(envelope.event_id),
                envelope.event_type,
            )
        if self.producers is not None and not self.producers.allows(envelope.event_type, message.producer_user):
            allowed = ", ".join(sorted(self.producers.allowed_users(envelope.event_type)))
            publisher = message.producer_user or "an unidentified publisher"
            return Outcome(
                "park",
                "unauthorised-producer",
                f"{envelope.event_type} published by {publisher}; only {allowed} may publish it",
                str(envelope.event_id),
                envelope.event_type,
            )
        return envelope

    def _read(self, subscription: Subscription, message: ReceivedMessage) -> Envelope[Any] | Outcome:
        try:
            decoded = self.decode(subscription, message)
        except Exception as exc:
            decoded = Outcome("park", "undecodable", _error_text(exc))
        if isinstance(decoded, Outcome):
            log.warning("message parked unread", queue=subscription.queue, reason=decoded.reason, error=decoded.error)
        return decoded

    def process(self, subscription: Subscription, message: ReceivedMessage) -> Outcome:
        decoded = self._read(subscription, message)
        if isinstance(decoded, Outcome):
            return decoded
        return self._apply_alone(subscription, decoded, message.attempt)

    def process_batch(self, subscription: Subscription, messages: Sequence[ReceivedMessage]) -> list[Outcome]:
        """Several deliveries to one handler applied in one transaction: one inbox statement and one
        commit for all of them instead of one each. Only for handlers that touch nothing but
        ``ctx.session`` (``Subscription.batch``).

        If any handler fails, the whole transaction rolls back and each event is applied alone, so a
        failure retries or parks only its own event. One message, or SQLite (one writer): ``process``
        for each, so callers need not choose.
        """
        if len(messages) == 1 or self.db.is_sqlite:
            return [self.process(subscription, message) for message in messages]
        outcomes: list[Outcome | None] = []
        readable: list[tuple[int, Envelope[Any]]] = []
        for index, message in enumerate(messages):
            decoded = self._read(subscription, message)
            if isinstance(decoded, Outcome):
                outcomes.append(decoded)
            else:
                outcomes.append(None)
                readable.append((index, decoded))
        together = self._apply_together(
            subscription, [envelope for _, envelope in readable], [messages[index].attempt for index, _ in readable]
        )
        for position, (index, envelope) in enumerate(readable):
            outcomes[index] = (
                together[position]
                if together is not None
                else self._apply_alone(subscription, envelope, messages[index].attempt)
            )
        return [outcome for outcome in outcomes if outcome is not None]

    def _apply_alone(self, subscription: Subscription, envelope: Envelope[Any], attempt: int) -> Outcome:
        with _EventLogContext(subscription.queue) as log_context:
            log_context.bind(envelope)
            return self._apply(subscription, envelope, attempt)

    def _apply_together(
        self, subscription: Subscription, envelopes: list[Envelope[Any]], attempts: list[int]
    ) -> list[Outcome] | None:
        """All of ``envelopes`` in one transaction, or None (and nothing committed) if any failed."""
        if not envelopes:
            return []
        handler = subscription.queue
        started = time.perf_counter()
        outcomes: list[Outcome] = []
        wrote_outbox = False
        apply = cast(DatabaseHandler[Any], subscription.handler)  # only database-only handlers are batched
        try:
            # The log context is reset before the commit, so nothing logged after it carries the last event's ids.
            with self.db.transaction() as session, _EventLogContext(handler) as log_context:
                claimed = self.inbox.claim_many(session, handler, (e.event_id for e in envelopes), self.clock())
                for envelope in envelopes:
                    ids = _Ids(event_id=str(envelope.event_id), event_type=envelope.event_type)
                    if envelope.event_id not in claimed:
                        outcomes.append(Outcome("duplicate", **ids))
                        continue
                    claimed.discard(envelope.event_id)  # the same event twice in one batch: once applied
                    log_context.bind(envelope, ids["event_id"])
                    # Batched handlers are database-only: they get no way to another transaction.
                    context = DatabaseContext(session, envelope, self.outbox, self.clock, handler)
                    apply(envelope.payload, context)
                    wrote_outbox = wrote_outbox or context.wrote_outbox
                    outcomes.append(Outcome("done", **ids))
        except Exception as exc:
            log.info(
                "batch rolled back; applying its events one by one",
                handler=handler,
                size=len(envelopes),
                error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_TEXT],
            )
            return None
        # Each event is timed at its share of the batch, so the histogram's sum stays the handler's time.
        share = (time.perf_counter() - started) / len(envelopes)
        observe, info, size = labelled(HANDLER_SECONDS, handler).observe, log.info, len(envelopes)
        done = 0
        for envelope, outcome, attempt in zip(envelopes, outcomes, attempts, strict=True):
            observe(share)
            # The audit trail: a line per event, its fields passed as they are (no context to merge).
            correlation_id = str(envelope.correlation_id)
            if outcome.kind == "done":
                done += 1
                info(
                    "event handled",
                    attempt=attempt + 1,
                    batch=size,
                    event_id=outcome.event_id,
                    correlation_id=correlation_id,
                    event_type=outcome.event_type,
                    handler=handler,
                )
            else:
                info(
                    "duplicate event skipped",
                    batch=size,
                    event_id=outcome.event_id,
                    correlation_id=correlation_id,
                    event_type=outcome.event_type,
                    handler=handler,
                )
        # One increment per outcome kind and batch: the counters end where one per event would leave them.
        if done:
            labelled(MESSAGES_HANDLED, handler, "done").inc(done)
        if size > done:
            labelled(MESSAGES_HANDLED, handler, "duplicate").inc(size - done)
        if wrote_outbox and self.after_commit is not None:
            self.after_commit()
        return outcomes

    def _apply(self, subscription: Subscription, envelope: Envelope[Any], attempt: int) -> Outcome:
        handler = subscription.queue
        ids = _Ids(event_id=str(envelope.event_id), event_type=envelope.event_type)
        started = time.perf_counter()
        wrote_outbox = False
        context: HandlerContext | None = None
        try:
            # A delivery of an event already handled stops here, before the handler can make an
            # upstream call (an email, an invoice) a second time, whatever the handler touches first.
            # The check has a short transaction of its own, so no connection is held while the handler
            # waits for an upstream, and (SQLite) the handler's begins only when it first uses it. A
            # batched handler (its own database only, so nothing to repeat) relies on the claim alone.
            # A handler marked ``database_first`` has it done in its own first transaction instead.
            check_first = subscription.batch == 1 and _database_first(subscription)
            if self.db.is_sqlite or (subscription.batch == 1 and not check_first):
                with self.db.transaction() as session:
                    if self.inbox.seen(session, handler, envelope.event_id):
                        return self._duplicate(handler, ids)
            if self.db.is_sqlite:
                with self.db.transaction() as session:
                    context = HandlerContext(session, envelope, self.outbox, self.db, self.clock, handler)
                    subscription.handler(envelope.payload, context)
                    self.inbox.record(session, handler, envelope.event_id, self.clock())
                    wrote_outbox = context.wrote_outbox
            else:
                with self.db.connection_transaction() as transaction:
                    # PostgreSQL: the inbox row is claimed in the handler's transaction, as its first
                    # statement, when the handler first touches it (HandlerContext): one statement
                    # instead of a check and an insert, committed or rolled back with the work, and no
                    # connection held while the handler waits for an upstream before that. A Session
                    # is made only if the handler touches ``ctx.session``.
                    context = HandlerContext(
                        None,
                        envelope,
                        self.outbox,
                        self.db,
                        self.clock,
                        handler,
                        inbox=self.inbox,
                        check_first=check_first,
                        transaction=transaction,
                    )
                    subscription.handler(envelope.payload, context)
                    context.claim()
                    if context.already_handled:
                        raise AlreadyHandled("the handler went on after its event was found handled")
                    wrote_outbox = context.wrote_outbox
        except Exception as exc:
            if context is not None and context.already_handled:
                return self._duplicate(handler, ids)
            return self._outcome_of(exc, handler, attempt, envelope.event_id, ids)
        finally:
            labelled(HANDLER_SECONDS, handler).observe(time.perf_counter() - started)
        labelled(MESSAGES_HANDLED, handler, "done").inc()
        log.info("event handled", attempt=attempt + 1)
        if wrote_outbox and self.after_commit is not None:
            self.after_commit()
        return Outcome("done", **ids)

    def _outcome_of(self, exc: Exception, handler: str, attempt: int, event_id: uuid.UUID, ids: _Ids) -> Outcome:
        """What a handler's exception means for its event."""
        if isinstance(exc, IntegrityError):
            if self._inbox_has(handler, event_id):
                return self._duplicate(handler, ids)
            return self._failed(handler, exc, attempt, ids)
        if isinstance(exc, PermanentError):
            MESSAGES_FAILED.labels(handler).inc()
            log.error("handler rejected the event; parking it", error=str(exc))
            return Outcome("park", "rejected", _error_text(exc), **ids)
        if isinstance(exc, RetryLater):
            log.info("handler waits; will retry", wait_seconds=round(exc.seconds, 3), reason=str(exc))
            return Outcome("retry", "waiting", _error_text(exc), wait=exc.seconds, **ids)
        return self._failed(handler, exc, attempt, ids)

    @staticmethod
    def _duplicate(handler: str, ids: _Ids) -> Outcome:
        labelled(MESSAGES_HANDLED, handler, "duplicate").inc()
        log.info("duplicate event skipped")
        return Outcome("duplicate", **ids)

    def _failed(self, handler: str, exc: BaseException, attempt: int, ids: _Ids) -> Outcome:
        MESSAGES_FAILED.labels(handler).inc()
        log.warning("handler failed; will retry", attempt=attempt + 1, error=f"{type(exc).__name__}: {exc}")
        return Outcome("retry", "handler-error", _error_text(exc), **ids)

    def _inbox_has(self, handler: str, event_id: uuid.UUID) -> bool:
        with self.db.transaction() as session:
            return self.inbox.seen(session, handler, event_id)


@functools.lru_cache(maxsize=1024)
def _database_first(subscription: Subscription) -> bool:
    return is_database_first(subscription.handler)


class _EventLogContext:
    """Binds the event being handled (its ids, its type, the handler) for every line logged meanwhile,
    as ``structlog.contextvars.bound_contextvars`` would, and on exit restores what was bound before.

    ``bound_contextvars`` copies the whole context twice and makes each variable's name anew per
    event; here an event after the first costs one ``ContextVar.set`` per field, so a batch binds
    each of its events for about what ``bound_contextvars`` costs for one."""

    __slots__ = ("_handler", "_tokens", "_variables")

    def __init__(self, handler: str) -> None:
        self._handler = handler
        self._tokens: Mapping[str, Any] = {}
        self._variables: tuple[Any, ...] = ()

    def __enter__(self) -> _EventLogContext:
        return self

    def bind(self, envelope: Envelope[Any], event_id: str | None = None) -> None:
        values = (event_id or str(envelope.event_id), str(envelope.correlation_id), envelope.event_type)
        if not self._tokens:
            self._tokens = structlog.contextvars.bind_contextvars(
                event_id=values[0], correlation_id=values[1], event_type=values[2], handler=self._handler
            )
            self._variables = tuple(self._tokens[name].var for name in ("event_id", "correlation_id", "event_type"))
            return
        for variable, value in zip(self._variables, values, strict=True):
            variable.set(value)

    def __exit__(self, *exc_info: object) -> None:
        if self._tokens:
            structlog.contextvars.reset_contextvars(**self._tokens)
            self._tokens = {}


def _error_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text[:MAX_ERROR_TEXT]
