"""Helpers for tests that talk to a bus directly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import amqp

from shared.bus.memory import InMemoryBus
from shared.bus.messages import OutgoingMessage
from shared.events.base import Envelope, Event, new_envelope
from shared.metrics import REGISTRY


def publish(bus: Any, event: Event | Envelope[Any], *, producer: str | None = None) -> Envelope[Any]:
    """Publish as the event's rightful producer (the first its catalog entry names), or ``producer``."""
    payload = event.payload if isinstance(event, Envelope) else event
    producer = producer or type(payload).producers[0]
    envelope = event if isinstance(event, Envelope) else new_envelope(event, producer=producer)
    publisher = bus.publisher(producer)
    try:
        result = publisher.publish([OutgoingMessage.from_envelope(envelope)])
    finally:
        publisher.close()
    assert envelope.event_id in result.confirmed, result
    return envelope


def publish_raw(
    bus: Any,
    queue: str,
    body: bytes,
    *,
    content_type: str | None = "application/json",
    user_id: str | None = None,
    headers: dict[str, Any] | None = None,
) -> None:
    """Put any body straight into a queue, the way a broken producer could (through the default
    exchange: the test's broker user is an administrator)."""
    if isinstance(bus, InMemoryBus):
        bus.publish_raw(bus.naming.queue(queue), body, content_type=content_type, user_id=user_id, headers=headers)
        return
    with bus.connection() as connection:
        channel = bus.open_channel(connection)
        properties: dict[str, Any] = {"delivery_mode": 2, "application_headers": dict(headers or {})}
        if content_type is not None:
            properties["content_type"] = content_type
        if user_id is not None:
            properties["user_id"] = user_id
        channel.basic_publish_confirm(
            amqp.Message(body, **properties), exchange="", routing_key=bus.naming.queue(queue)
        )


def wait_until(condition: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
