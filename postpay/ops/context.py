"""What the billing operator commands work with: the database, the bus, the upstream clients and the
billing services' definitions, built from the same settings as the services themselves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from postpay.bootstrap import make_bus, make_database, make_dependencies, service_builder
from shared.bus.memory import InMemoryBus
from shared.db import Database
from shared.dependencies import Dependencies
from shared.outbox import OutboxRelay
from shared.periods import BillingPeriod
from shared.service import ServiceDefinition
from shared.settings import KernelSettings

from services.invoicer.settings import InvoicerSettings
from services.scheduler.settings import SchedulerSettings
from services.scheduler.windows import PeriodChoice, choose_period

BILLING_SERVICES = ("scheduler", "usage_collector", "invoicer")


@dataclass
class BillingContext:
    db: Database
    bus: Any
    deps: Dependencies
    services: dict[str, ServiceDefinition]

    @classmethod
    def from_settings(cls) -> BillingContext:
        kernel = KernelSettings()
        db = make_database(kernel)
        deps = make_dependencies()
        deps.db = db
        services = {name: service_builder(name)(deps) for name in BILLING_SERVICES}
        return cls(db=db, bus=make_bus(kernel), deps=deps, services=services)

    @property
    def scheduler_settings(self) -> SchedulerSettings:
        return self.deps.settings(SchedulerSettings)

    @property
    def invoicer_settings(self) -> InvoicerSettings:
        return self.deps.settings(InvoicerSettings)

    def period_choice(self, key: str) -> PeriodChoice:
        """The month's window: recorded at its first close, whatever the zone configured now."""
        timezone = self.scheduler_settings.billing_timezone
        BillingPeriod.parse(key, timezone)  # a bad key is refused before the database is asked
        with self.db.transaction() as session:
            return choose_period(session, key, timezone)

    def period(self, key: str) -> BillingPeriod:
        return self.period_choice(key).period

    @property
    def bus_is_local(self) -> bool:
        """An in-process bus lives in the process running the services, not in this command."""
        return isinstance(self.bus, InMemoryBus)

    def publish_scheduler_events(self) -> int:
        return self.publish_events("scheduler")

    def publish_events(self, service: str) -> int:
        """Ship a billing service's outbox now, instead of waiting for its process's relay.

        Not with the in-process bus: its queues are in the process that runs the services, which
        relays the outbox itself; publishing here would hand the events to a bus nobody consumes.
        """
        if self.bus_is_local:
            return 0
        # Declared first, so the close is routable (and waits in its queue) even before the consumers start.
        self.bus.declare([s for service in self.services.values() for s in service.subscriptions])
        publisher = self.bus.publisher()
        try:
            relay = OutboxRelay(self.db, [self.services[service].outbox], lambda: publisher)
            return relay.relay_once()
        finally:
            publisher.close()

    def close(self) -> None:
        for client in (self.deps.whmcs, self.deps.solusvm):
            client.close()
        self.db.dispose()
