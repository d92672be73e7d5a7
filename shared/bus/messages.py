"""What travels to and from the broker, independent of which broker it is.

Header names are part of the contract with operators (``postpay dlq``) and outside producers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.events.base import Envelope

CONTENT_TYPE = "application/json"
ATTEMPT_HEADER = "x-postpay-attempt"
SCHEMA_VERSION_HEADER = "x-postpay-schema-version"
PARKED_REASON_HEADER = "x-postpay-parked-reason"
PARKED_ERROR_HEADER = "x-postpay-parked-error"
PARKED_AT_HEADER = "x-postpay-parked-at"
PARKED_QUEUE_HEADER = "x-postpay-parked-from"
REQUEUED_BY_HEADER = "x-postpay-requeued-by"
REQUEUED_REASON_HEADER = "x-postpay-requeued-reason"
# On a requeued copy: which requeue walk sent it, so that walk stops when the copy is parked again.
REQUEUE_WALK_HEADER = "x-postpay-requeue-walk"
# On a retry or parking copy and a requeue: the broker user that published the original (see identity.py).
PUBLISHED_BY_HEADER = "x-postpay-published-by"
MAX_ERROR_TEXT = 2000


@dataclass(frozen=True)
class OutgoingMessage:
    """One event ready for the events exchange."""

    event_id: uuid.UUID
    event_type: str
    body: bytes
    correlation_id: str
    producer: str
    occurred_at: datetime
    headers: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_envelope(cls, envelope: Envelope[Any]) -> OutgoingMessage:
        return cls(
            event_id=envelope.event_id,
            event_type=envelope.event_type,
            body=envelope.to_json().encode(),
            correlation_id=str(envelope.correlation_id),
            producer=envelope.producer,
            occurred_at=envelope.occurred_at,
            headers={SCHEMA_VERSION_HEADER: envelope.schema_version},
        )


@dataclass(frozen=True)
class PublishResult:
    """Which messages the broker confirmed, and which it could not route anywhere."""

    confirmed: frozenset[uuid.UUID]
    unroutable: dict[uuid.UUID, str]


@dataclass
class ReceivedMessage:
    """A delivery, as the processor sees it. ``producer_user`` is the broker user it speaks for (None:
    nobody the broker vouched for); the bus works it out (``identity.published_by``)."""

    body: bytes
    content_type: str | None
    headers: dict[str, Any]
    redelivered: bool = False
    producer_user: str | None = None

    @property
    def attempt(self) -> int:
        """How many times handling already failed (0 on the first delivery)."""
        try:
            return int(self.headers.get(ATTEMPT_HEADER, 0))
        except (TypeError, ValueError):
            return 0


@dataclass(frozen=True)
class ParkedMessage:
    """A message in a parking lot, for ``postpay dlq``."""

    queue: str
    position: int
    message_id: str | None
    event_type: str | None
    reason: str
    error: str
    parked_at: str | None
    headers: dict[str, Any]
    body: bytes
    content_type: str | None = CONTENT_TYPE


class PublishError(Exception):
    """The broker did not confirm a batch; none of it may be assumed published."""


class UnroutableError(PublishError):
    """An event no queue is bound for: a configuration error, never a silent drop."""
