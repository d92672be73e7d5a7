"""The RabbitMQ parking lot's walk, against a hand-written broker channel.

A quorum queue's passive declare answers a message count of 0 when its leader is slow to reply, and
takes returned messages back only after the channel has closed. Neither may make an operator's purge
quietly remove nothing, or a requeue send a still-poisonous message round twice.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import amqp

from shared.bus.parking import Selection
from shared.bus.rabbit_parking import RabbitParkingLot

LOT = "billing.handle.parked"


class FakeQueue:
    """One parking lot: ready messages, and a declare that first answers like a slow quorum leader."""

    def __init__(self, bodies: list[str]) -> None:
        self.ready: deque[amqp.Message] = deque(
            amqp.Message(json.dumps({"event_type": "Probe", "event_id": body}).encode(), message_id=body)
            for body in bodies
        )
        self.slow_answers = 1
        self.republished: list[amqp.Message] = []
        self.park_requeued_again = False


class FakeChannel:
    def __init__(self, queue: FakeQueue) -> None:
        self.queue = queue
        self.unacked: dict[int, amqp.Message] = {}
        self.next_tag = 1

    def queue_declare(self, name: str, passive: bool) -> Any:
        assert name == LOT and passive
        if self.queue.slow_answers:
            self.queue.slow_answers -= 1
            return SimpleNamespace(message_count=0)
        return SimpleNamespace(message_count=len(self.queue.ready))

    def basic_get(self, name: str, no_ack: bool) -> amqp.Message | None:
        assert not no_ack
        if not self.queue.ready:
            return None
        message = self.queue.ready.popleft()
        message.delivery_info = {"delivery_tag": self.next_tag}
        self.unacked[self.next_tag] = message
        self.next_tag += 1
        return message

    def basic_ack(self, tag: int) -> None:
        del self.unacked[tag]

    def basic_publish_confirm(self, message: amqp.Message, **kwargs: Any) -> None:
        self.queue.republished.append(message)
        if self.queue.park_requeued_again:
            self.queue.ready.append(message)

    def close(self) -> None:
        for tag in sorted(self.unacked, reverse=True):
            self.queue.ready.appendleft(self.unacked.pop(tag))


def parking_lot(queue: FakeQueue) -> RabbitParkingLot:
    @contextmanager
    def connection() -> Iterator[None]:
        yield None

    bus = SimpleNamespace(
        connection=connection,
        open_channel=lambda connection: FakeChannel(queue),
        subscriptions=[SimpleNamespace(queue="billing.handle", service="billing")],
        naming=SimpleNamespace(parking_lot=lambda queue: f"{queue}.parked", internal_exchange=lambda s: f"{s}.x"),
        users=SimpleNamespace(user_of=lambda service: service),
        login_user="operator",
        confirm_timeout=5,
    )
    return RabbitParkingLot(bus)  # type: ignore[arg-type]


def test_a_purge_finds_its_message_when_the_declare_answers_zero() -> None:
    queue = FakeQueue(["a", "b", "c"])
    removed = parking_lot(queue).purge(LOT, Selection(positions=frozenset({1})), actor="ops", reason="known bad")
    assert [m.message_id for m in removed] == ["b"]
    assert [m.message_id for m in queue.ready] == ["a", "c"]


def test_a_listing_shows_every_message_in_order_and_leaves_them_all() -> None:
    queue = FakeQueue(["a", "b", "c"])
    listing = parking_lot(queue).list(LOT)
    assert [(m.position, m.message_id) for m in listing] == [(0, "a"), (1, "b"), (2, "c")]
    assert [m.message_id for m in queue.ready] == ["a", "b", "c"]


def test_a_listing_stops_at_its_limit() -> None:
    queue = FakeQueue(["a", "b", "c"])
    assert [m.message_id for m in parking_lot(queue).list(LOT, limit=2)] == ["a", "b"]
    assert len(queue.ready) == 3


def test_a_requeued_message_parked_again_at_once_is_requeued_only_once() -> None:
    queue = FakeQueue(["a", "b"])
    queue.park_requeued_again = True
    moved = parking_lot(queue).requeue(LOT, Selection(everything=True), actor="ops", reason="fixed upstream")
    assert [m.message_id for m in moved] == ["a", "b"]
    assert [m.message_id for m in queue.republished] == ["a", "b"]
    assert [m.message_id for m in queue.ready] == ["a", "b"], "the re-parked copies wait in the lot"
    again = parking_lot(queue).requeue(LOT, Selection(everything=True), actor="ops", reason="second try")
    assert [m.message_id for m in again] == ["a", "b"], "a later requeue walk meets them again"
