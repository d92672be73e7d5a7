"""A bus publisher that keeps what it is given (the outbox relay's ``Publisher``): every message is
confirmed, unless the test made an event type unroutable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.bus.messages import OutgoingMessage, PublishResult
from shared.events.base import Envelope, parse_envelope
from shared.ports import Publisher


class FakePublisher:
    """Satisfies ``shared.ports.Publisher``."""

    CONTROLS = ("envelopes", "unroutable_types")

    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []
        self.unroutable_types: set[str] = set()
        self.closed = False

    def publish(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        routed = [m for m in messages if m.event_type not in self.unroutable_types]
        self.messages.extend(routed)
        return PublishResult(
            frozenset(m.event_id for m in routed),
            {m.event_id: "NO_ROUTE" for m in messages if m.event_type in self.unroutable_types},
        )

    def close(self) -> None:
        self.closed = True

    def envelopes(self) -> list[Envelope[Any]]:
        """What was published, read back as the consumers would read it."""
        return [parse_envelope(message.body) for message in self.messages]


_port: type[Publisher] = FakePublisher  # mypy: the fake is a Publisher
