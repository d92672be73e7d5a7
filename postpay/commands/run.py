"""``postpay run <service>|relay|all``: run part or all of postpay against the configured broker and
database (RabbitMQ and PostgreSQL in production).

Several copies of any consumer may run at once: they compete for messages and the inbox keeps their
effects single. ``relay`` only ships outboxes (each as its own service's broker user, and it migrates
nothing: each service creates its own tables); every consuming process also relays its own.

A process logs in to RabbitMQ as the user of the service it runs (``POSTPAY_BROKER_USERS``) and refuses
to start as anyone else.
"""

from __future__ import annotations

import os
import threading
from enum import Enum
from typing import Annotated, Any

import typer

from postpay.bootstrap import SERVICES, System
from postpay.console.server import console_for
from postpay.console.server import serve as serve_console
from postpay.console.settings import ConsoleSettings
from postpay.operators.schema import console_definition
from shared import migrations
from shared.bus.amqp_wire import CONNECTION_ERRORS, UNREACHABLE_ERRORS, is_transient_topology_error
from shared.bus.rabbit import RabbitBus
from shared.health import HealthServer
from shared.logging import configure_logging, get_logger
from shared.metrics import (
    HANDLER_SECONDS,
    MESSAGES_FAILED,
    MESSAGES_HANDLED,
    MESSAGES_PARKED,
    MESSAGES_RETRIED,
    OUTBOX_BACKLOG,
)
from shared.runtime import Runtime
from shared.settings import KernelSettings

log = get_logger("postpay.run")


class Part(str, Enum):
    signup = "signup"
    signup_web = "signup-web"
    signup_handlers = "signup-handlers"
    provisioner = "provisioner"
    usage_collector = "usage-collector"
    invoicer = "invoicer"
    scheduler = "scheduler"
    meter = "meter"
    relay = "relay"
    console = "console"
    all = "all"


# The signup's two halves, each its own process and deployment: the web (landing page, forms, API and
# panel) and the handlers (emails, WHMCS). A handler backlog then never takes CPU from the pages, and each
# half gets its own replicas. `postpay run signup` still runs both in one process.
HALVES: dict[Part, tuple[str, str]] = {Part.signup_web: ("signup", "web"), Part.signup_handlers: ("signup", "handlers")}


def services_for(part: Part) -> tuple[str, ...]:
    if part in (Part.all, Part.relay):
        return SERVICES
    if part is Part.console:
        return ()
    if part in HALVES:
        return (HALVES[part][0],)
    return (part.value.replace("-", "_"),)


def half(part: Part) -> str | None:
    return HALVES[part][1] if part in HALVES else None


def consumes(part: Part) -> bool:
    """Whether the part runs its services' handlers (consumers)."""
    return part not in (Part.relay, Part.console) and half(part) != "web"


def serves(part: Part) -> bool:
    """Whether the part runs its services' background tasks (the signup's web server among them): the
    handlers half runs none, so its process serves no page."""
    return part not in (Part.relay, Part.console) and half(part) != "handlers"


def migrate(system: System, names: tuple[str, ...], *, console: bool = False) -> None:
    """Bring the schema up to date before serving; on PostgreSQL one replica at a time."""
    with system.db.engine.begin() as connection:
        if system.db.is_postgres:
            connection.exec_driver_sql("SELECT pg_advisory_lock(7264183)")
        try:
            for name in names:
                migrations.upgrade_on(connection, system.service(name))
            if console:
                migrations.upgrade_on(connection, console_definition())
        finally:
            if system.db.is_postgres:
                connection.exec_driver_sql("SELECT pg_advisory_unlock(7264183)")


def build_runtime(system: System, part: Part) -> Runtime:
    names = services_for(part)
    # The runtime connects the signup web's commits (ServiceDefinition.outbox_committed) to its relay.
    return system.runtime(names)


def expose_metrics(runtime: Runtime, *, handlers: bool) -> None:
    """Create every handler's series at zero before the first message, so dashboards and ``rate()``
    see the first increment (an ``unauthorised-producer`` above all: someone is forging events). Other
    parking reasons are rare and appear when they happen."""
    for subscription, _ in runtime.bindings if handlers else ():
        handler = subscription.queue
        for outcome in ("done", "duplicate"):
            MESSAGES_HANDLED.labels(handler, outcome)
        MESSAGES_FAILED.labels(handler)
        MESSAGES_RETRIED.labels(handler)
        HANDLER_SECONDS.labels(handler)
        for reason in ("rejected", "retries-exhausted", "unauthorised-producer"):
            MESSAGES_PARKED.labels(handler, reason)
    for service in runtime.services:
        OUTBOX_BACKLOG.labels(service.name)


def broker_identity_problem(bus: Any, part: Part) -> str | None:
    """Why this process's broker login cannot do the part's work, or None. Checked before anything
    starts: a consumer logged in as another service's user would park every event it republishes, and
    a relay without a service's password would publish its outbox under the wrong name."""
    if not isinstance(bus, RabbitBus):
        return None
    names = services_for(part)
    if part is not Part.relay:
        wrong = [name for name in names if bus.users.user_of(name) != bus.login_user]
        if wrong:
            expected = ", ".join(sorted({bus.users.user_of(name) for name in wrong}))
            hint = (
                "postpay run all runs every service over one login: give every producer that user "
                f"(POSTPAY_BROKER_USERS={bus.login_user}, development only) or run the services apart"
                if part is Part.all
                else "POSTPAY_AMQP_URL must log in as the service's own user (POSTPAY_BROKER_USERS names it)"
            )
            return f"{part.value} publishes and consumes as {expected}, but POSTPAY_AMQP_URL logs in as {bus.login_user}: {hint}"
    missing = [name for name in names if not bus.can_publish_as(name)]
    if missing:
        return (
            f"{part.value} relays the outboxes of {', '.join(missing)} but logs in as {bus.login_user} and "
            f"has no password for {', '.join(sorted({bus.users.user_of(name) for name in missing}))}: "
            "put them in POSTPAY_AMQP_PASSWORDS"
        )
    return None


def wait_for_broker(runtime: Runtime, *, first_delay: float = 0.5, declare: bool = True) -> bool:
    """Declare the topology, waiting for the broker as long as it takes (or until SIGTERM).

    A service started during a broker outage (a restart of both, a node being replaced) waits for it,
    as a running service does after losing it, instead of exiting and depending on a supervisor. So
    does one whose declare meets a quorum queue still forming on a fresh broker (404 "home node ... is
    down or inaccessible" and the like); a configuration fault (403, 406) still stops it at once.
    """
    delay = first_delay
    while True:
        try:
            if declare:
                runtime.declare()
            elif not runtime.bus.ping():
                raise ConnectionRefusedError("the broker does not answer")
            return True
        except UNREACHABLE_ERRORS as exc:
            log.warning("broker unreachable at start; waiting for it", error=str(exc), retry_in_seconds=delay)
        except CONNECTION_ERRORS as exc:
            if not is_transient_topology_error(exc):
                raise
            log.warning(
                "broker not ready to declare the queues at start; retrying", error=str(exc), retry_in_seconds=delay
            )
        if runtime.stop_event.wait(delay):
            return False
        delay = min(2 * delay, 5.0)


def yield_cpu(niceness: int) -> int:
    """Lower this process's CPU priority to ``niceness`` before any thread starts (on Linux a niceness
    belongs to a thread, and threads inherit their creator's): a part that only works off queues then
    gives way to one serving pages on the same machine. Never raises the priority (that needs root); the
    niceness in effect is returned."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > current:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    return os.getpriority(os.PRIO_PROCESS, 0)


def readiness_checks(system: System, runtime: Runtime) -> dict:
    checks = {"database": system.db.ping, "broker": system.bus.ping}
    if runtime.consumer is not None and hasattr(runtime.consumer, "connected"):
        checks["consumer"] = runtime.consumer.connected.is_set
    return checks


def run(
    part: Annotated[
        Part,
        typer.Argument(
            help="Which service to run, `relay`, or `all` of them; `signup-web` and `signup-handlers` run the two "
            "halves of `signup` apart."
        ),
    ],
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate", help="Apply migrations first.")] = True,
    health_port: Annotated[int | None, typer.Option(help="Serve /healthz, /readyz, /metrics here.")] = None,
) -> None:
    """Run a postpay service (or all of them) until SIGTERM."""
    kernel = KernelSettings()
    niceness = yield_cpu(kernel.cpu_niceness)
    configure_logging(kernel.log_level)
    system = System(kernel=kernel)
    names = services_for(part)
    problem = broker_identity_problem(system.bus, part)
    if problem is not None:
        log.error("cannot start: wrong broker user", problem=problem)
        typer.echo(f"postpay run {part.value}: {problem}", err=True)
        system.db.dispose()
        raise typer.Exit(2)
    # The relay only ships rows: each service creates its own tables, as its own database role.
    if migrate_first and part is not Part.relay:
        migrate(system, names, console=part in (Part.console, Part.all))
    runtime = build_runtime(system, part)
    if part is not Part.relay:  # the relay only ships rows: it serves nobody with the services' secrets
        for service in runtime.services:
            for check in service.preflight:
                check()
    consume = consumes(part)
    console_settings = ConsoleSettings()
    web = []
    if part is Part.console or (part is Part.all and console_settings.console_port):
        # The console reads every service's tables and, with the in-process bus, this process's parking lots.
        web.append(serve_console(console_for(system, console_settings)))
    expose_metrics(runtime, handlers=consume)
    runtime.install_signal_handlers()
    # A relay consumes nothing, and with a broker user per service may declare nothing either; the signup
    # web declares its own service's queues, so its first registrations are routable.
    declare = consume or part in HALVES or getattr(system.bus, "declares_everything", True)
    if not wait_for_broker(runtime, declare=declare):
        system.db.dispose()
        return
    runtime.start(consume=consume, relay=part is not Part.console, background=serves(part), declare=False)
    for task in web:
        threading.Thread(target=task, args=(runtime.stop_event,), name="console", daemon=True).start()
    port = kernel.health_port if health_port is None else health_port
    health = HealthServer(readiness_checks(system, runtime), port=port).start() if port else None
    log.info(
        "postpay running",
        part=part.value,
        services=list(names),
        bus="rabbitmq" if kernel.amqp_url else "in-process",
        cpu_niceness=niceness,
    )
    try:
        runtime.wait()
    finally:
        if health is not None:
            health.stop()
        system.db.dispose()


def register(app: typer.Typer) -> None:
    app.command("run")(run)
