"""The in-process bus: the embedded default, and the fast half of tests that run on both buses.

Same topology, same processor, same retry and park decisions as RabbitMQ; simplified in that queues
live in memory (an outbox row is still kept until the bus accepted its event) and a "retry queue" is a
timer. Producers are told apart as on RabbitMQ, with no password to prove it: everything in the process
is trusted alike, so a message speaks for the broker user of the producer it was published for (the
outbox's service), and its retry, parking and requeued copies keep that. What this catches is a
service publishing an event the catalog does not let it publish.
"""

from __future__ import annotations

import builtins
import dataclasses
import heapq
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.bus.identity import BrokerUsers
from shared.bus.messages import (
    CONTENT_TYPE,
    PUBLISHED_BY_HEADER,
    OutgoingMessage,
    ParkedMessage,
    PublishResult,
    ReceivedMessage,
)
from shared.bus.parking import ParkingLot, ParkingLotMissing, Selection, describe_parked, requeued_headers
from shared.bus.policy import next_step, parked_headers, retry_headers
from shared.bus.processing import MessageProcessor, Outcome
from shared.bus.topology import Naming, Subscription, check_unique, topic_matches
from shared.logging import get_logger
from shared.metrics import MESSAGES_PARKED, MESSAGES_RETRIED

log = get_logger("postpay.bus.memory")

Binding = tuple[Subscription, MessageProcessor]


@dataclass
class _Stored:
    body: bytes
    headers: dict[str, Any]
    content_type: str | None = CONTENT_TYPE
    message_id: str | None = None
    user_id: str | None = None


@dataclass(order=True)
class _Delayed:
    due: float
    sequence: int
    queue: str = field(compare=False)
    message: _Stored = field(compare=False)


class InMemoryBus:
    def __init__(
        self,
        *,
        retry_delays: Sequence[float] = (1.0, 10.0, 60.0, 600.0),
        naming: Naming | None = None,
        concurrency: int = 4,
        users: BrokerUsers | None = None,
    ) -> None:
        self.retry_delays = list(retry_delays)
        self.naming = naming or Naming()
        self.users = users or BrokerUsers()
        self.declares_everything = True
        self.concurrency = concurrency
        self._lock = threading.Condition()
        self._queues: dict[str, deque[_Stored]] = {}
        self._parked: dict[str, deque[_Stored]] = {}
        self._bindings: list[tuple[str, str]] = []
        self._delayed: list[_Delayed] = []
        self._sequence = itertools.count()
        self._busy = 0

    # -- topology and publishing -------------------------------------------------------------
    def declare(self, subscriptions: Sequence[Subscription]) -> None:
        with self._lock:
            for subscription in check_unique(subscriptions):
                queue = self.naming.queue(subscription.queue)
                self._queues.setdefault(queue, deque())
                self._parked.setdefault(self.naming.parking_lot(subscription.queue), deque())
                for key in subscription.routing_keys:
                    if (key, queue) not in self._bindings:
                        self._bindings.append((key, queue))

    def publisher(self, producer: str | None = None) -> InMemoryPublisher:
        """A publisher for ``producer`` (None: each message for its envelope's producer)."""
        return InMemoryPublisher(self, producer)

    def ping(self) -> bool:
        return True

    def _route(self, message: OutgoingMessage, user_id: str) -> bool:
        headers = {k: v for k, v in message.headers.items() if k != PUBLISHED_BY_HEADER}
        stored = _Stored(message.body, headers, CONTENT_TYPE, str(message.event_id), user_id)
        targets = sorted({queue for key, queue in self._bindings if topic_matches(key, message.event_type)})
        for queue in targets:
            self._queues[queue].append(dataclasses.replace(stored, headers=dict(stored.headers)))
        return bool(targets)

    def publish_raw(
        self,
        queue: str,
        body: bytes,
        *,
        content_type: str | None,
        headers: dict[str, Any] | None = None,
        user_id: str | None = None,
    ) -> None:
        """Put an arbitrary body straight into a queue (tests of malformed or forged input)."""
        with self._lock:
            self._queues[queue].append(_Stored(body, dict(headers or {}), content_type, user_id=user_id))
            self._lock.notify_all()

    # -- consuming ---------------------------------------------------------------------------
    def consumer(self, bindings: Sequence[Binding]) -> InMemoryConsumer:
        self.declare([subscription for subscription, _ in bindings])
        return InMemoryConsumer(self, list(bindings))

    def _take(self, queues: dict[str, Binding]) -> tuple[str, list[_Stored]] | None:
        """The next waiting messages of one queue: as many as its subscription applies together."""
        self._release_due()
        for queue, (subscription, _) in queues.items():
            pending = self._queues.get(queue)
            if pending:
                taken = [pending.popleft() for _ in range(min(subscription.batch, len(pending)))]
                self._busy += len(taken)
                return queue, taken
        return None

    def _release_due(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0].due <= now:
            delayed = heapq.heappop(self._delayed)
            self._queues[delayed.queue].append(delayed.message)

    def _settle(self, queue: str, binding: Binding, taken: list[_Stored]) -> None:
        subscription, processor = binding
        messages = [_received(stored) for stored in taken]
        outcomes = processor.process_batch(subscription, messages)
        with self._lock:
            for stored, message, outcome in zip(taken, messages, outcomes, strict=True):
                self._settle_one(queue, subscription, stored, message, outcome)
            self._lock.notify_all()

    def _settle_one(
        self, queue: str, subscription: Subscription, stored: _Stored, message: ReceivedMessage, outcome: Outcome
    ) -> None:
        step = next_step(outcome, message.attempt, self.retry_delays)
        self._busy -= 1
        if step.action == "retry":
            MESSAGES_RETRIED.labels(subscription.queue).inc()
            headers = retry_headers(stored.headers, message.attempt, step.counted)
            retry = dataclasses.replace(stored, headers=headers)
            heapq.heappush(self._delayed, _Delayed(time.monotonic() + step.delay, next(self._sequence), queue, retry))
        elif step.action == "park":
            MESSAGES_PARKED.labels(subscription.queue, step.reason).inc()
            headers = parked_headers(stored.headers, queue, outcome, step.reason, message.attempt)
            parked = dataclasses.replace(stored, headers=headers)
            self._parked[self.naming.parking_lot(subscription.queue)].append(parked)

    def run_until_idle(self, bindings: Sequence[Binding], *, timeout: float = 30.0) -> None:
        """Process in the calling thread until nothing is queued or waiting to be retried."""
        self.declare([subscription for subscription, _ in bindings])
        by_queue = {
            self.naming.queue(subscription.queue): (subscription, processor) for subscription, processor in bindings
        }
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                taken = self._take(by_queue)
                if taken is None:
                    waiting = [d for d in self._delayed if d.queue in by_queue]
                    if not waiting:
                        return
                    pause = max(0.0, min(d.due for d in waiting) - time.monotonic())
            if taken is None:
                if time.monotonic() + pause > deadline:
                    raise TimeoutError("the in-memory bus did not become idle in time")
                time.sleep(min(pause, 0.05))
                continue
            queue, messages = taken
            self._settle(queue, by_queue[queue], messages)
            if time.monotonic() > deadline:
                raise TimeoutError("the in-memory bus did not become idle in time")

    def queued(self, queue: str) -> int:
        with self._lock:
            return len(self._queues.get(self.naming.queue(queue), ()))

    def parking_lot(self) -> InMemoryParkingLot:
        return InMemoryParkingLot(self)


def _received(stored: _Stored) -> ReceivedMessage:
    return ReceivedMessage(stored.body, stored.content_type, dict(stored.headers), producer_user=stored.user_id)


class InMemoryPublisher:
    def __init__(self, bus: InMemoryBus, producer: str | None = None) -> None:
        self.bus = bus
        self.producer = producer

    def publish(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        confirmed: set[uuid.UUID] = set()
        unroutable: dict[uuid.UUID, str] = {}
        with self.bus._lock:
            for message in messages:
                user_id = self.bus.users.user_of(self.producer or message.producer)
                if self.bus._route(message, user_id):
                    confirmed.add(message.event_id)
                else:
                    unroutable[message.event_id] = "NO_ROUTE"
            self.bus._lock.notify_all()
        return PublishResult(frozenset(confirmed), unroutable)

    def close(self) -> None:
        return None


class InMemoryConsumer:
    """Worker threads that take messages from the bound queues until stopped."""

    def __init__(self, bus: InMemoryBus, bindings: list[Binding]) -> None:
        self.bus = bus
        self.by_queue = {bus.naming.queue(s.queue): (s, p) for s, p in bindings}

    def run(self, stop: threading.Event) -> None:
        workers = [
            threading.Thread(target=self._work, args=(stop,), name=f"memory-consumer-{n}", daemon=True)
            for n in range(self.bus.concurrency)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self.bus._lock:
                taken = self.bus._take(self.by_queue)
                if taken is None:
                    self.bus._lock.wait(0.05)
                    continue
            queue, messages = taken
            self.bus._settle(queue, self.by_queue[queue], messages)


class InMemoryParkingLot(ParkingLot):
    def __init__(self, bus: InMemoryBus) -> None:
        self.bus = bus

    def queues(self) -> dict[str, int]:
        with self.bus._lock:
            return {queue: len(messages) for queue, messages in self.bus._parked.items()}

    def list(self, parking_lot: str, limit: int = 1000) -> list[ParkedMessage]:
        with self.bus._lock:
            stored = list(self.bus._parked.get(parking_lot, ()))[:limit]
        return [
            describe_parked(parking_lot, index, s.message_id, s.headers, s.body, s.content_type)
            for index, s in enumerate(stored)
        ]

    def _remove(self, parking_lot: str, selection: Selection) -> builtins.list[tuple[ParkedMessage, _Stored]]:
        messages = self.bus._parked.get(parking_lot)
        if messages is None:
            raise ParkingLotMissing(f"no parking lot {parking_lot}")
        kept: deque[_Stored] = deque()
        removed = []
        for index, stored in enumerate(messages):
            parked = describe_parked(
                parking_lot, index, stored.message_id, stored.headers, stored.body, stored.content_type
            )
            if selection.matches(parked):
                removed.append((parked, stored))
            else:
                kept.append(stored)
        self.bus._parked[parking_lot] = kept
        return removed

    def _requeue(
        self, parking_lot: str, selection: Selection, actor: str, reason: str, done: builtins.list[ParkedMessage]
    ) -> None:
        target = parking_lot.removesuffix(".parked")
        with self.bus._lock:
            removed = self._remove(parking_lot, selection)
            for parked, stored in removed:
                # The copy speaks for whoever the parked message spoke for: a requeue vouches for nobody new.
                headers = requeued_headers(parked.headers, actor, reason)
                self.bus._queues[target].append(dataclasses.replace(stored, headers=headers))
            done.extend(parked for parked, _ in removed)
            self.bus._lock.notify_all()

    def _purge(self, parking_lot: str, selection: Selection, done: builtins.list[ParkedMessage]) -> None:
        with self.bus._lock:
            done.extend(parked for parked, _ in self._remove(parking_lot, selection))
