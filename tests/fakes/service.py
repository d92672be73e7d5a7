"""One real service, on in-memory SQLite, with fakes for every port: deliver it an event, then look at
what it did upstream (the fakes), what it stored (its tables) and what it published (the fake bus).

    svc = ServiceUnderTest("invoicer", settings=[InvoicerSettings(token_prices=...)])
    outcome = svc.deliver("create_invoice", UsageCollected(...))
    assert outcome.kind == "done"
    (created,) = svc.published("InvoiceCreated")

Deliveries go through the kernel's own ``MessageProcessor`` (decode, inbox, one transaction, the
outcome), so a handler is tested as the bus runs it: a second delivery of one event is a "duplicate",
a ``PermanentError`` parks, anything else retries. Handlers are found by their queue name in the
service's ``build()``, as wired in production, so the test does not care which module holds them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic_settings import BaseSettings
from sqlalchemy import Table, select

from postpay.bootstrap import service_builder
from shared.bus.messages import ATTEMPT_HEADER, CONTENT_TYPE, OutgoingMessage, ReceivedMessage
from shared.bus.processing import MessageProcessor, Outcome
from shared.bus.topology import Subscription
from shared.db import Database
from shared.dependencies import Dependencies
from shared.events.base import Envelope, Event, new_envelope
from shared.relay import OutboxRelay
from shared.service import ServiceDefinition
from tests.fakes.bus import FakePublisher
from tests.fakes.clock import FakeClock
from tests.fakes.mailer import FakeMailer
from tests.fakes.solusvm import FakeSolusvm
from tests.fakes.whmcs import FakeWhmcs

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class ServiceUnderTest:
    def __init__(
        self,
        name: str,
        *,
        settings: Sequence[BaseSettings] = (),
        now: datetime = NOW,
        whmcs: FakeWhmcs | None = None,
        solusvm: FakeSolusvm | None = None,
        mailer: FakeMailer | None = None,
    ) -> None:
        self.name = name
        self.whmcs = whmcs or FakeWhmcs()
        self.solusvm = solusvm or FakeSolusvm()
        self.mailer = mailer or FakeMailer()
        self.clock = FakeClock(now)
        self.db = Database("sqlite://")
        self.deps = Dependencies(
            whmcs=self.whmcs,
            solusvm=self.solusvm,
            mailer=self.mailer,
            clock=self.clock,
            db=self.db,
            overrides={type(s): s for s in settings},
        )
        self.service: ServiceDefinition = service_builder(name)(self.deps)
        self.service.metadata.create_all(self.db.engine)
        self.processor = MessageProcessor(self.db, name, self.service.inbox, self.service.outbox, clock=self.clock)
        self.bus = FakePublisher()
        self.relay = OutboxRelay(self.db, [self.service.outbox], lambda _producer: self.bus, clock=self.clock)

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> ServiceUnderTest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- delivering --------------------------------------------------------------------------------
    def subscription(self, queue: str) -> Subscription:
        for subscription in self.service.subscriptions:
            if subscription.name == queue:
                return subscription
        raise LookupError(f"{self.name} has no subscription {queue!r}")

    def envelope(self, event: Event, *, event_id: uuid.UUID | None = None) -> Envelope[Any]:
        return new_envelope(event, producer=event.producers[0], event_id=event_id, occurred_at=self.clock())

    def deliver(self, queue: str, event: Event | Envelope[Any], *, attempt: int = 0) -> Outcome:
        """Hand one event (or an envelope, to deliver the same one again) to the named subscription."""
        envelope = event if isinstance(event, Envelope) else self.envelope(event)
        message = OutgoingMessage.from_envelope(envelope)
        received = ReceivedMessage(
            body=message.body, content_type=CONTENT_TYPE, headers={**message.headers, ATTEMPT_HEADER: attempt}
        )
        return self.processor.process(self.subscription(queue), received)

    # -- looking ----------------------------------------------------------------------------------
    def published(self, event_type: str | None = None) -> list[Any]:
        """The payloads the relay published so far (of ``event_type``), in order."""
        return [e.payload for e in self.bus_events() if event_type is None or e.event_type == event_type]

    def bus_events(self) -> list[Envelope[Any]]:
        """The envelopes the relay published so far (to deliver one on, as the bus would)."""
        self.relay.relay_once()
        return self.bus.envelopes()

    def rows(self, table: Table) -> list[Any]:
        with self.db.transaction() as session:
            return list(session.execute(select(table)).all())
