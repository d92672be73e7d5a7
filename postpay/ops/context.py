"""What the billing operator commands work with: the database, the bus, the upstream clients and the
billing services' definitions, built from the same settings as the services themselves."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from postpay.bootstrap import make_bus, make_database, make_dependencies, service_builder
from services.invoicer.public import InvoicerSettings
from services.scheduler.public import PeriodChoice, SchedulerSettings, choose_period
from shared import migrations
from shared.bus.amqp_wire import UNREACHABLE_ERRORS
from shared.bus.memory import InMemoryBus
from shared.bus.messages import PublishError
from shared.db import Database, normalise_url
from shared.dependencies import Dependencies
from shared.events.base import OPERATOR
from shared.periods import BillingPeriod
from shared.relay import OutboxRelay
from shared.service import ServiceDefinition, ServiceTables
from shared.settings import KernelSettings

try:  # recent typer runs on its own copy of click: its commands only turn that copy's exceptions into messages
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - typer on the click package
    from click import ClickException

BILLING_SERVICES = ("scheduler", "usage_collector", "invoicer")
UPGRADE_HINT = "run `postpay db upgrade` (or start postpay with `postpay run …`, which migrates first)"


class DatabaseProblem(ClickException):
    """The configured database is missing, unreachable or not migrated: one line saying which
    database and what to run, never a traceback."""

    exit_code = 2


def describe_database(url: str) -> str:
    """Where the database is, with only the password hidden."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        return (
            "an in-memory SQLite database"
            if database in (None, "", ":memory:")
            else f"the SQLite file {Path(database).resolve()}"
        )
    return parsed.render_as_string(hide_password=True)


def open_database(kernel: KernelSettings | None = None, *, needs: Sequence[str] = BILLING_SERVICES) -> Database:
    """The configured database, checked: it exists (a missing SQLite file is never created here), it
    answers, and the tables of every service in ``needs`` are migrated to their newest revision."""
    kernel = kernel or KernelSettings()
    url = kernel.database_url.get_secret_value()
    where = describe_database(url)
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).exists():
            raise DatabaseProblem(
                f"there is no database at {where} (POSTPAY_DATABASE_URL); to create it, {UPGRADE_HINT}"
            )
    db = make_database(kernel)
    try:
        with db.engine.connect() as connection:
            present = set(inspect(connection).get_table_names())
            stale = [name for name in needs if not _ready(connection, name, present)]
    except DBAPIError as exc:
        db.dispose()
        reason = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc).strip() else type(exc).__name__
        raise DatabaseProblem(f"cannot use the database at {where} (POSTPAY_DATABASE_URL): {reason}") from exc
    if stale:
        db.dispose()
        raise DatabaseProblem(f"the database at {where} is not migrated for {', '.join(stale)}: {UPGRADE_HINT}")
    return db


def _ready(connection: Any, name: str, present: set[str]) -> bool:
    """Migrated to the newest revision; or, never migrated, holding every table of its models (a database
    built directly from them, as the demo and tests do)."""
    if f"{name}_alembic_version" in present:
        return migrations.is_current(connection, _definition(name))
    if name == "console":
        from postpay.operators.schema import metadata
    else:
        metadata = importlib.import_module(f"services.{name}.public").tables.metadata
    return set(metadata.tables) <= present


def _definition(name: str) -> ServiceDefinition:
    """Enough of a service to find its migrations (building the service itself would start its checks)."""
    if name == "console":
        from postpay.operators.schema import console_definition

        return console_definition()
    return ServiceDefinition(name=name, tables=ServiceTables(name), subscriptions=[])


def period_choice(db: Database, key: str, timezone: str) -> PeriodChoice:
    """The window an operator means by month ``key`` (the CLI's and the console's one rule): the one
    recorded at its first close, whatever the zone configured now; a month not closed yet, the calendar
    month in ``timezone`` joined to its closed neighbours. Raises ``ValueError`` for a key that is not a
    month (refused before the database is asked)."""
    BillingPeriod.parse(key, timezone)
    with db.transaction() as session:
        return choose_period(session, key, timezone)


@dataclass
class BillingContext:
    db: Database
    bus: Any
    deps: Dependencies
    services: dict[str, ServiceDefinition]

    @classmethod
    def from_settings(cls, needs: Sequence[str] = ("scheduler",)) -> BillingContext:
        kernel = KernelSettings()
        deps = make_dependencies()
        db = open_database(kernel, needs=needs)
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
        return period_choice(self.db, key, self.scheduler_settings.billing_timezone)

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
        if self.bus_is_local or not self._may_relay(service):
            return 0
        if self.bus.declares_everything:
            # Declared first, so the close is routable (and waits in its queue) even before the consumers
            # start. With a broker user per service the operator declares nothing: each service declares
            # its own queues, and an event nobody is bound for yet waits in the outbox.
            self.bus.declare([s for service in self.services.values() for s in service.subscriptions])
        # Published as the operator (this command's login), whom the catalog lets state a close and a sync.
        publisher = self.bus.publisher(OPERATOR)
        try:
            relay = OutboxRelay(self.db, [self.services[service].outbox], lambda producer: publisher)
            return relay.relay_once()
        except PublishError as exc:
            if isinstance(exc.__cause__, UNREACHABLE_ERRORS):
                raise exc.__cause__ from None  # the broker is away, not refusing: say so as such
            raise PublishError(
                f"{exc} (as broker user {self.bus.login_user}; the operators' tools publish as "
                f"{self.bus.users.user_of(OPERATOR)})"
            ) from exc
        finally:
            publisher.close()

    def publish_outbox(self, outbox: Any, services: Sequence[str]) -> int:
        """Ship one outbox now (e.g. the signup's, for an operator's request), declaring the queues of
        ``services`` first so the events are routable; 0 with the in-process bus (see above)."""
        if self.bus_is_local or not self.bus.declares_everything:
            # With a broker user per service, only that service may publish what its outbox holds.
            return 0
        definitions = [service_builder(name)(self.deps) for name in services]
        self.bus.declare([s for service in definitions for s in service.subscriptions])
        publisher = self.bus.publisher(OPERATOR)
        try:
            return OutboxRelay(self.db, [outbox], lambda producer: publisher).relay_once()
        finally:
            publisher.close()

    def _may_relay(self, service: str) -> bool:
        """Whether this tool may ship ``service``'s outbox itself. With a broker user per service it
        publishes as the operator, which the catalog lets state only the scheduler's facts (a close, a
        sync); any other service's outbox (a released hold in the invoicer's, say) waits for that
        service's own relay, or its events would be parked as coming from the wrong producer."""
        return self.bus.declares_everything or service == "scheduler"

    def close(self) -> None:
        for client in (self.deps.whmcs, self.deps.solusvm):
            client.close()
        self.db.dispose()
