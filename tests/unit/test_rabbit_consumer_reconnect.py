"""How soon a consumer reconnects. While the broker stays unreachable it backs off, up to 10 s; once it
has consumed again, losing its node (a cluster node killed or restarted) starts the backoff over, so a
long-running consumer that lived through outages before still fails over to another node in a second,
not in ten."""

from __future__ import annotations

import threading
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from shared.bus.rabbit_consume import RabbitConsumer
from shared.bus.topology import Naming


class FakeChannel:
    def __init__(self) -> None:
        self.events: defaultdict[str, set[Any]] = defaultdict(set)

    def basic_qos(self, *args: Any) -> None:
        pass

    def confirm_select(self) -> None:
        pass

    def basic_consume(self, *args: Any, **kwargs: Any) -> str:
        return "tag"


class NodeThatDies:
    """Accepts the consumer, then drops it (as a SIGKILLed node's socket does)."""

    def channel(self) -> FakeChannel:
        return FakeChannel()

    def drain_events(self, timeout: float) -> None:
        raise ConnectionResetError(104, "Connection reset by peer")

    def close(self) -> None:
        pass


class Broker:
    """Unreachable for the first ``outage`` connection attempts, then reachable but dying each time."""

    def __init__(self, outage: int) -> None:
        self.naming = Naming("unit")
        self.concurrency, self.prefetch, self.confirm_timeout, self.retry_delays = 1, 1, 1.0, [1.0]
        self.outage = outage
        self.attempts = 0

    def connection(self) -> NodeThatDies:
        return NodeThatDies()

    def trusted_copiers(self) -> frozenset[str]:
        return frozenset({"guest"})

    def open_channel(self, connection: NodeThatDies) -> FakeChannel:
        self.attempts += 1
        if self.attempts <= self.outage:
            raise ConnectionRefusedError(111, "Connection refused")
        return FakeChannel()

    def declare_on(self, channel: FakeChannel, subscriptions: Any) -> None:
        pass


class CountedStop(threading.Event):
    """A stop event whose waits return at once, recording each backoff, and which stops after ``waits``."""

    def __init__(self, waits: int) -> None:
        super().__init__()
        self.delays: list[float] = []
        self.waits = waits

    def wait(self, timeout: float | None = None) -> bool:
        self.delays.append(timeout or 0.0)
        if len(self.delays) >= self.waits:
            self.set()
        return self.is_set()


def test_backoff_grows_while_unreachable_and_starts_over_once_consuming_again() -> None:
    broker = Broker(outage=7)
    consumer = RabbitConsumer(broker, [])  # type: ignore[arg-type]
    stop = CountedStop(waits=10)
    consumer.run(stop)
    assert stop.delays[:7] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0], stop.delays
    # Consuming again, then its node dies, three times over: a quick reconnect each time.
    assert stop.delays[7:] == [1.0, 1.0, 1.0], stop.delays


def test_a_consumer_that_never_got_to_consume_keeps_backing_off() -> None:
    consumer = RabbitConsumer(Broker(outage=100), [])  # type: ignore[arg-type]
    stop = CountedStop(waits=8)
    consumer.run(stop)
    assert stop.delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]


def test_the_fake_node_is_what_the_consumer_drives() -> None:
    # Guard against the test above passing for the wrong reason: the consumer did reach its pump loop.
    broker = Broker(outage=0)
    consumer = RabbitConsumer(broker, [])  # type: ignore[arg-type]
    reached = SimpleNamespace(pumped=False)
    original = consumer._pump

    def pump(*args: Any) -> None:
        reached.pumped = True
        original(*args)

    consumer._pump = pump  # type: ignore[method-assign]
    consumer.run(CountedStop(waits=1))
    assert reached.pumped and broker.attempts == 1
