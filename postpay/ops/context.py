"""What the billing operator commands work with: the database, the bus, the upstream clients and the
billing services' definitions, built from the same settings as the services themselves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from postpay.bootstrap import make_bus, make_database, make_dependencies, service_builder
from shared.bus.amqp_wire import UNREACHABLE_ERRORS
from shared.bus.memory import InMemoryBus
from shared.bus.messages import PublishError
from shared.db import Database
from shared.dependencies import Dependencies
from shared.events.base import OPERATOR
from shared.outbox import OutboxRelay
from shared.periods import BillingPeriod
from shared.service import ServiceDefinition
from shared.settings import KernelSettings

from services.invoicer.settings import InvoicerSettings
from services.scheduler.settings import SchedulerSettings

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

    def period(self, key: str) -> BillingPeriod:
        return BillingPeriod.parse(key, self.scheduler_settings.billing_timezone)

    @property
    def bus_is_local(self) -> bool:
        """An in-process bus lives in the process running the services, not in this command."""
        return isinstance(self.bus, InMemoryBus)

    def publish_scheduler_events(self) -> int:
        """Ship the scheduler's outbox now, instead of waiting for the scheduler process's relay.

        Not with the in-process bus: its queues are in the process that runs the services, which
        relays the outbox itself; publishing here would hand the events to a bus nobody consumes.
        """
        if self.bus_is_local:
            return 0
        if self.bus.declares_everything:
            # Declared first, so the close is routable (and waits in its queue) even before the consumers
            # start. With a broker user per service the operator declares nothing: each service declares
            # its own queues, and an event nobody is bound for yet waits in the outbox.
            self.bus.declare([s for service in self.services.values() for s in service.subscriptions])
        # Published as the operator (this command's login), whom the catalog lets state a close and a sync.
        publisher = self.bus.publisher(OPERATOR)
        try:
            relay = OutboxRelay(self.db, [self.services["scheduler"].outbox], lambda producer: publisher)
            return relay.relay_once()
        except PublishError as exc:
            if isinstance(exc.__cause__, UNREACHABLE_ERRORS):
                raise exc.__cause__ from None  # the broker is away, not refusing: say so as such
            raise PublishError(f"{exc} (as broker user {self.bus.login_user}; the operators' tools publish as "
                               f"{self.bus.users.user_of(OPERATOR)})") from exc
        finally:
            publisher.close()

    def close(self) -> None:
        for client in (self.deps.whmcs, self.deps.solusvm):
            client.close()
        self.db.dispose()
