"""The composition root: settings in, a running system out.

The one place that knows every service and picks the adapters: RabbitMQ or the in-process bus,
PostgreSQL or SQLite, the real upstream clients, SMTP. Services never import each other or this module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from pydantic_settings import BaseSettings

from shared.bus.memory import InMemoryBus
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming
from shared.clock import Clock, utcnow
from shared.db import Database
from shared.dependencies import Dependencies
from shared.mail import MailSettings, SmtpMailer
from shared.runtime import Runtime
from shared.service import ServiceDefinition
from shared.settings import KernelSettings, UpstreamSettings
from shared.upstream.solusvm import SolusVMClient
from shared.upstream.whmcs import WhmcsClient

SERVICES: tuple[str, ...] = ("signup", "provisioner", "usage_collector", "invoicer", "scheduler", "meter")


def service_builder(name: str) -> Callable[[Dependencies], ServiceDefinition]:
    if name not in SERVICES:
        raise ValueError(f"no service {name!r}; the services are {', '.join(SERVICES)}")
    module = importlib.import_module(f"services.{name}.service")
    return module.build  # type: ignore[no-any-return]


def make_database(kernel: KernelSettings) -> Database:
    # Not one connection per handler thread: a handler holds one only while it uses the database
    # (HandlerContext claims its inbox row when it first touches ctx.session, after its upstream calls).
    pool_size = min(kernel.db_pool_size, kernel.concurrency + 4)
    return Database(kernel.database_url.get_secret_value(), pool_size=pool_size)


def make_bus(kernel: KernelSettings) -> Any:
    naming = Naming(kernel.bus_namespace)
    users = kernel.broker_identities()
    if kernel.amqp_url is None:
        return InMemoryBus(
            retry_delays=kernel.retry_delays, naming=naming, concurrency=min(kernel.concurrency, 8), users=users
        )
    return RabbitBus(
        kernel.amqp_url.get_secret_value(),
        naming=naming,
        users=users,
        passwords=kernel.producer_passwords(),
        retry_delays=kernel.retry_delays,
        prefetch=kernel.prefetch,
        concurrency=kernel.concurrency,
        confirm_timeout=kernel.confirm_timeout,
        heartbeat=kernel.heartbeat,
        delivery_limit=kernel.delivery_limit,
        quorum_initial_group_size=kernel.quorum_initial_group_size,
    )


def make_dependencies(
    upstream: UpstreamSettings | None = None,
    mail: MailSettings | None = None,
    *,
    clock: Clock = utcnow,
    overrides: Sequence[BaseSettings] = (),
) -> Dependencies:
    upstream = upstream or UpstreamSettings()
    return Dependencies(
        whmcs=WhmcsClient.from_settings(upstream),
        solusvm=SolusVMClient.from_settings(upstream),
        mailer=SmtpMailer(mail or MailSettings()),
        clock=clock,
        overrides={type(settings): settings for settings in overrides},
    )


class System:
    """Everything one process needs: database, bus, adapters, and every service's definition."""

    def __init__(
        self,
        *,
        kernel: KernelSettings | None = None,
        db: Database | None = None,
        bus: Any = None,
        deps: Dependencies | None = None,
    ) -> None:
        self.kernel = kernel or KernelSettings()
        self.db = db or make_database(self.kernel)
        self.bus = bus if bus is not None else make_bus(self.kernel)
        self.deps = deps or make_dependencies()
        if self.deps.db is None:
            self.deps.db = self.db
        self.services = [service_builder(name)(self.deps) for name in SERVICES]

    def service(self, name: str) -> ServiceDefinition:
        for service in self.services:
            if service.name == name:
                return service
        raise ValueError(f"no service {name!r}")

    def runtime(self, names: Sequence[str] = SERVICES) -> Runtime:
        return Runtime(
            self.bus,
            self.db,
            [self.service(name) for name in names],
            all_services=self.services,
            max_message_bytes=self.kernel.max_message_bytes,
            relay_batch_size=self.kernel.relay_batch_size,
            relay_poll_seconds=self.kernel.relay_poll_seconds,
            relay_max_poll_seconds=self.kernel.relay_max_poll_seconds,
            relay_linger_seconds=self.kernel.relay_linger_seconds,
            handler_batch=self.kernel.handler_batch,
            clock=self.deps.clock,
        )

    def create_tables(self) -> None:
        for service in self.services:
            service.metadata.create_all(self.db.engine)
