"""A batched queue's deliveries share the tasks queued for them: however the deliveries and the workers
interleave, every delivery is applied exactly once, no batch is larger than the subscription's, and no
more tasks wait in the pool than there are workers to run them."""

from __future__ import annotations

import random
import threading
import time
from types import SimpleNamespace

import amqp
import pytest

from shared.bus.messages import CONTENT_TYPE, ReceivedMessage
from shared.bus.processing import Outcome
from shared.bus.rabbit_consume import RabbitConsumer
from shared.bus.topology import Naming, Subscription
from tests.support.toy import ProbeHappened


class SlowProcessor:
    def __init__(self, seed: int) -> None:
        self.applied: list[bytes] = []
        self.batches: list[int] = []
        self.lock = threading.Lock()
        self.random = random.Random(seed)

    def process_batch(self, subscription: Subscription, messages: list[ReceivedMessage]) -> list[Outcome]:
        time.sleep(self.random.choice([0, 0, 0.001, 0.003]))
        with self.lock:
            self.applied.extend(message.body for message in messages)
            self.batches.append(len(messages))
        return [Outcome("done") for _ in messages]


@pytest.mark.parametrize("seed", range(5))
def test_every_delivery_of_a_batched_queue_is_applied_once_by_at_most_a_worker_s_worth_of_tasks(seed: int) -> None:
    subscription = Subscription("toy", "batched", (ProbeHappened,), lambda event, ctx: None, batch=4)
    bus = SimpleNamespace(naming=Naming("unit"), concurrency=3, trusted_copiers=frozenset)
    processor = SlowProcessor(seed)
    consumer = RabbitConsumer(bus, [(subscription, processor)])  # type: ignore[arg-type]
    queued_most = 0
    submit = consumer._pool.submit

    def counting_submit(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal queued_most
        queued_most = max(queued_most, consumer._scheduled["unit.toy.batched"])
        return submit(*args, **kwargs)

    consumer._pool.submit = counting_submit  # type: ignore[method-assign]
    receive = consumer._receiver("unit.toy.batched", generation=1)
    pace = random.Random(seed)
    try:
        for tag in range(1, 401):
            raw = amqp.Message(f"{tag}".encode(), content_type=CONTENT_TYPE)
            raw.delivery_info = {"delivery_tag": tag, "redelivered": False}
            receive(raw)
            if pace.random() < 0.05:
                time.sleep(0.002)
        deadline = time.monotonic() + 10
        while len(processor.applied) < 400 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        consumer._pool.shutdown(wait=True)
    assert sorted(processor.applied, key=int) == [f"{tag}".encode() for tag in range(1, 401)]
    assert max(processor.batches) <= 4 and 1 < len(processor.batches) < 400
    assert queued_most <= 3
    assert consumer._scheduled["unit.toy.batched"] == 0 and not consumer._waiting["unit.toy.batched"]


def test_in_hand_names_per_queue_the_deliveries_held_and_those_still_waiting_for_a_task() -> None:
    subscription = Subscription("toy", "batched", (ProbeHappened,), lambda event, ctx: None, batch=2)
    bus = SimpleNamespace(naming=Naming("unit"), concurrency=1, trusted_copiers=frozenset)
    release = threading.Event()

    class HeldProcessor:
        def process_batch(self, subscription: Subscription, messages: list[ReceivedMessage]) -> list[Outcome]:
            release.wait(10)
            return [Outcome("done") for _ in messages]

    consumer = RabbitConsumer(bus, [(subscription, HeldProcessor())])  # type: ignore[arg-type]
    receive = consumer._receiver("unit.toy.batched", generation=1)
    try:
        assert consumer.in_hand() == {}
        for tag in range(1, 6):
            raw = amqp.Message(f"{tag}".encode(), content_type=CONTENT_TYPE)
            raw.delivery_info = {"delivery_tag": tag, "redelivered": False}
            receive(raw)
            time.sleep(0.02)  # the one worker takes the first delivery alone and holds it
        assert consumer.in_hand() == {"unit.toy.batched": {"unsettled": 5, "waiting": 4}}
        release.set()
        deadline = time.monotonic() + 10
        while consumer._waiting["unit.toy.batched"] and time.monotonic() < deadline:
            time.sleep(0.01)
        # Applied, but acknowledged only by the consumer's thread (not running here): still held.
        assert consumer.in_hand() == {"unit.toy.batched": {"unsettled": 5, "waiting": 0}}
    finally:
        release.set()
        consumer._pool.shutdown(wait=True)
