"""Every delivery a worker takes comes back to the connection thread with an outcome, whatever the
processor does: a delivery without one would stay unacknowledged until the connection drops."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import amqp

from shared.bus.messages import CONTENT_TYPE, ReceivedMessage
from shared.bus.processing import Outcome
from shared.bus.rabbit_consume import RabbitConsumer, _Delivery
from shared.bus.topology import Naming, Subscription
from tests.support.toy import ProbeHappened


class ShortProcessor:
    """Answers for one delivery of a batch, however many it is given."""

    def process(self, subscription: Subscription, message: ReceivedMessage) -> Outcome:
        return Outcome("done")

    def process_batch(self, subscription: Subscription, messages: list[ReceivedMessage]) -> list[Outcome]:
        return [Outcome("done")]


def finished_outcomes(processor: Any, count: int) -> list[Outcome]:
    subscription = Subscription("toy", "batched", (ProbeHappened,), lambda event, ctx: None, batch=8)
    bus = SimpleNamespace(naming=Naming("unit"), concurrency=1, trusted_copiers=frozenset)
    consumer = RabbitConsumer(bus, [(subscription, processor)])  # type: ignore[arg-type]
    try:
        deliveries = [
            _Delivery(1, tag, ReceivedMessage(b"{}", CONTENT_TYPE, {}), amqp.Message(b"{}"))
            for tag in range(1, count + 1)
        ]
        consumer._apply(subscription, processor, deliveries)
        return [consumer._finished.get_nowait().outcome for _ in range(consumer._finished.qsize())]
    finally:
        consumer._pool.shutdown()


def test_a_processor_short_of_outcomes_gets_every_delivery_retried() -> None:
    outcomes = finished_outcomes(ShortProcessor(), 3)
    assert [(outcome.kind, outcome.reason) for outcome in outcomes] == [("retry", "processor-error")] * 3
    assert "1 outcomes for 3 deliveries" in outcomes[0].error


def test_a_processor_that_raises_gets_every_delivery_retried() -> None:
    class Broken(ShortProcessor):
        def process_batch(self, subscription: Subscription, messages: list[ReceivedMessage]) -> list[Outcome]:
            raise ConnectionError("database down")

    outcomes = finished_outcomes(Broken(), 2)
    assert [outcome.kind for outcome in outcomes] == ["retry", "retry"]
    assert "database down" in outcomes[1].error
