"""Publishing to RabbitMQ with confirms, in batches.

All messages of a batch are sent, then the broker's confirms are awaited together (one round trip per
batch, not per message). Each message is ``mandatory``: one that no queue is bound for comes back as a
``basic.return`` and is reported as unroutable instead of silently dropped. A nack, a timeout or a lost
connection fails the whole batch with ``PublishError``; nothing of it may be assumed delivered, and
consumers deduplicate whatever was.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import amqp

from shared.bus.amqp_wire import CONNECTION_ERRORS, is_timeout, publish_frames, write_frames
from shared.bus.messages import (
    CONTENT_TYPE,
    PUBLISHED_BY_HEADER,
    OutgoingMessage,
    PublishError,
    PublishResult,
)

if TYPE_CHECKING:
    from shared.bus.rabbit import RabbitBus


def to_amqp_message(message: OutgoingMessage, user_id: str) -> amqp.Message:
    """``user_id`` must be the connection's user: RabbitMQ refuses any other (PRECONDITION_FAILED)."""
    return amqp.Message(message.body, **amqp_properties(message, user_id))


def amqp_properties(message: OutgoingMessage, user_id: str) -> dict[str, Any]:
    """The properties ``to_amqp_message`` gives ``message``: the relay publishes them without building
    the ``amqp.Message``."""
    headers = {k: v for k, v in message.headers.items() if k != PUBLISHED_BY_HEADER}  # only copies vouch
    return {
        "content_type": CONTENT_TYPE,
        "content_encoding": "utf-8",
        "delivery_mode": 2,
        "message_id": str(message.event_id),
        "type": message.event_type,
        "correlation_id": message.correlation_id,
        "app_id": message.producer,
        "timestamp": int(message.occurred_at.timestamp()),
        "user_id": user_id,
        "application_headers": headers,
    }


class ConfirmTracker:
    """Delivery tags of one channel in confirm mode, and what the broker said about each."""

    def __init__(self) -> None:
        self.next_tag = 1
        self.pending: dict[int, uuid.UUID] = {}
        self.nacked: set[uuid.UUID] = set()
        self.returned: dict[uuid.UUID, str] = {}
        self.acked: set[uuid.UUID] = set()

    def sent(self, event_id: uuid.UUID) -> None:
        self.pending[self.next_tag] = event_id
        self.next_tag += 1

    def _settle(self, delivery_tag: int, multiple: bool, into: set[uuid.UUID]) -> None:
        tags = [delivery_tag]
        if multiple:
            # Pending tags are in the order sent, which is ascending: stop at the first one above (the
            # broker confirms a batch in many ``multiple`` acks, and each walked every pending tag).
            tags = list(itertools.takewhile(lambda tag: tag <= delivery_tag, self.pending))
        for tag in tags:
            event_id = self.pending.pop(tag, None)
            if event_id is not None:
                into.add(event_id)

    def on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self.acked)

    def on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self.nacked)

    def on_return(self, exc: Exception, exchange: str, routing_key: str, message: amqp.Message) -> None:
        message_id = message.properties.get("message_id")
        if message_id:
            self.returned[uuid.UUID(message_id)] = f"{getattr(exc, 'reply_text', exc)} ({routing_key})"

    def reset(self) -> None:
        self.pending.clear()
        self.nacked.clear()
        self.returned.clear()
        self.acked.clear()


class RabbitPublisher:
    """One connection and one confirm-mode channel, used by one thread, logged in as ``user_id``."""

    def __init__(self, bus: RabbitBus, *, url: str | None = None, user_id: str | None = None) -> None:
        self.bus = bus
        self.url = url or bus.url
        self.user_id = user_id or bus.login_user
        self._connection: Any = None
        self._channel: Any = None
        self._tracker = ConfirmTracker()
        self._last_used = time.monotonic()

    def _ensure_channel(self) -> Any:
        if self._channel is not None and self._connection.connected and not self._idle_too_long():
            return self._channel
        self.close()
        self._connection = self.bus.connection(self.url)
        channel = self.bus.open_channel(self._connection)
        channel.confirm_select()
        self._tracker = ConfirmTracker()
        channel.events["basic_ack"].add(self._tracker.on_ack)
        channel.events["basic_nack"].add(self._tracker.on_nack)
        channel.events["basic_return"].add(self._tracker.on_return)
        self._channel = channel
        self._last_used = time.monotonic()
        return channel

    def _idle_too_long(self) -> bool:
        # Between publishes nobody drives this connection's heartbeats, so after a quiet spell the broker
        # has dropped it; a fresh connection costs a few milliseconds, a failed publish a warning and a retry.
        heartbeat = self.bus.heartbeat
        return heartbeat > 0 and time.monotonic() - self._last_used > heartbeat / 2

    def publish(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        if not messages:
            return PublishResult(frozenset(), {})
        try:
            channel = self._ensure_channel()
            tracker = self._tracker
            tracker.reset()
            amqp_connection = self._connection.connection
            exchange, frame_max, channel_id = self.bus.naming.exchange, amqp_connection.frame_max, channel.channel_id
            frames = []
            for message in messages:
                tracker.sent(message.event_id)
                properties = amqp_properties(message, self.user_id)
                frames.append(
                    publish_frames(channel_id, exchange, message.event_type, message.body, properties, frame_max)
                )
            # The whole batch in one write; the broker's confirms are read after it (_await_confirms).
            write_frames(amqp_connection, b"".join(frames))
            self._await_confirms(tracker)
            self._last_used = time.monotonic()
        except PublishError:
            self.close()
            raise
        except CONNECTION_ERRORS as exc:
            self.close()
            raise PublishError(f"publish failed: {type(exc).__name__}: {exc}") from exc
        if tracker.nacked:
            self.close()
            raise PublishError(f"the broker refused {len(tracker.nacked)} message(s)")
        confirmed = frozenset(tracker.acked - set(tracker.returned))
        return PublishResult(confirmed, dict(tracker.returned))

    def _await_confirms(self, tracker: ConfirmTracker) -> None:
        deadline = time.monotonic() + self.bus.confirm_timeout
        while tracker.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError(
                    f"no confirm within {self.bus.confirm_timeout}s for {len(tracker.pending)} message(s)"
                )
            try:
                self._connection.drain_events(timeout=min(remaining, 1.0))
            except Exception as exc:
                if not is_timeout(exc):
                    raise

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.close()
            except CONNECTION_ERRORS:
                pass
