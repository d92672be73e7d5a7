"""Running services: consumers, the outbox relay, graceful shutdown.

One ``Runtime`` per process. It declares the topology of every known service when its broker user may
(so every event a process may publish is routable even before its consumers start), or else of its own
services, consumes for the services it runs, relays their outboxes, and stops cleanly on SIGTERM: consumers stop taking messages, in-flight handlers
finish and are acknowledged, the relay finishes its batch.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from shared.bus.processing import MessageProcessor
from shared.bus.topology import Subscription
from shared.db import Database
from shared.logging import get_logger
from shared.relay import OutboxRelay
from shared.service import ServiceDefinition

log = get_logger("postpay.runtime")


class Runtime:
    def __init__(
        self,
        bus: Any,
        db: Database,
        services: Sequence[ServiceDefinition],
        *,
        all_services: Sequence[ServiceDefinition] | None = None,
        max_message_bytes: int = 262_144,
        relay_batch_size: int = 500,
        relay_poll_seconds: float = 0.2,
        relay_max_poll_seconds: float = 30.0,
        relay_linger_seconds: float = 0.02,
        handler_batch: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``handler_batch`` caps every subscription's ``batch`` (1 turns batching off)."""
        self.bus = bus
        self.db = db
        self.services = list(services)
        self.handler_batch = handler_batch
        self.all_services = list(all_services or services)
        self.clock = clock
        self.relay = OutboxRelay(
            db,
            [service.outbox for service in self.services],
            bus.publisher,
            batch_size=relay_batch_size,
            poll_seconds=relay_poll_seconds,
            max_poll_seconds=relay_max_poll_seconds,
            linger_seconds=relay_linger_seconds,
            clock=clock,
        )
        self.processors = {
            service.name: MessageProcessor(
                db,
                service.name,
                service.inbox,
                service.outbox,
                max_message_bytes=max_message_bytes,
                clock=clock,
                after_commit=self.relay.wake,
                producers=getattr(bus, "users", None),
            )
            for service in self.services
        }
        for service in self.services:
            # Rows committed outside a handler (the signup web's) leave at once, not at the next poll.
            if service.outbox_committed is not None:
                service.outbox_committed.connect(self.relay.wake)
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._relaying = False
        self.consumer: Any = None

    @property
    def bindings(self) -> list[tuple[Subscription, MessageProcessor]]:
        return [
            (self._capped(subscription), self.processors[service.name])
            for service in self.services
            for subscription in service.subscriptions
        ]

    def _capped(self, subscription: Subscription) -> Subscription:
        if self.handler_batch is None or subscription.batch <= self.handler_batch:
            return subscription
        return dataclasses.replace(subscription, batch=self.handler_batch)

    def all_subscriptions(self) -> list[Subscription]:
        return [subscription for service in self.all_services for subscription in service.subscriptions]

    def own_subscriptions(self) -> list[Subscription]:
        return [subscription for service in self.services for subscription in service.subscriptions]

    def create_tables(self) -> None:
        """Create missing tables directly (embedded mode and tests; production uses migrations)."""
        for service in self.all_services:
            service.metadata.create_all(self.db.engine)

    def declare(self) -> None:
        """Every service's topology when the broker user may declare it all (one user for everything,
        or the in-process bus); with a broker user per service, only the topology of this process's own
        services: the others' queues are theirs to declare (and an event meanwhile unroutable waits in
        its outbox)."""
        everything = getattr(self.bus, "declares_everything", True)
        self.bus.declare(self.all_subscriptions() if everything else self.own_subscriptions())

    def start(
        self, *, consume: bool = True, relay: bool = True, background: bool = True, declare: bool = True
    ) -> Runtime:
        """``declare=False`` when the caller has just declared the topology itself."""
        if declare:
            self.declare()
        if consume and self.bindings:
            self.consumer = self.bus.consumer(self.bindings)
            self._spawn("consumer", self.consumer.run)
        if relay:
            self._relaying = True
            self._spawn("relay", self.relay.run)
        if background:
            for service in self.services:
                for index, task in enumerate(service.background):
                    self._spawn(f"{service.name}-background-{index}", task)
        return self

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self.stop_event,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 90.0) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        if self._relaying:
            # Handlers that finished during shutdown committed events after the relay's last pass:
            # ship them now rather than leave them for the next start.
            self.relay.flush()
            self._relaying = False

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, _frame: Any) -> None:
            log.info("shutting down", signal=signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def wait(self) -> None:
        """Block until stopped (by a signal or ``stop()``), then shut down cleanly."""
        while not self.stop_event.wait(0.5):
            pass
        self.stop()

    def drain(self, *, timeout: float = 60.0) -> None:
        """In-process bus only: relay and handle until nothing is left to do (tests, the demo)."""
        deadline = time.monotonic() + timeout
        while True:
            shipped = self.relay.relay_once()
            self.bus.run_until_idle(self.bindings, timeout=max(0.1, deadline - time.monotonic()))
            if shipped == 0 and self.relay.relay_once() == 0 and not self._has_queued():
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the system did not become idle in time")

    def _has_queued(self) -> bool:
        return any(self.bus.queued(subscription.queue) for subscription, _ in self.bindings)
