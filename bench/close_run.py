"""One month close by postpay: its services as separate processes on real RabbitMQ and PostgreSQL.

The run gets a database and a bus namespace of its own (dropped afterwards), migrates them, loads the
usage collector's customer projection directly (enrollment is not what is measured), starts
``postpay run usage-collector`` and ``postpay run invoicer`` (each also relays its own outbox), waits
until each reports ready, then closes the period the way ``postpay close-period`` does: the close
event goes into the scheduler's outbox and is published at once. The clock starts just before that
commit and stops at the last invoice recorded by the invoicer.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from bench.processes import (
    PYTHON,
    BrokerProcess,
    Child,
    child_env,
    free_port,
    service_cpu_seconds,
    start,
    stop_all,
    system_cpu_seconds,
    wait_http,
)
from bench.upstreams import Simulators
from bench.world import LONG_AGO, PRICES, World
from postpay.bootstrap import SERVICES, service_builder
from services.invoicer import store as invoicer_store
from services.invoicer.settings import InvoicerSettings
from services.scheduler.closing import close_period
from services.scheduler.settings import SchedulerSettings
from services.usage_collector import store as collector_store
from shared import migrations
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming
from shared.db import Database, normalise_url
from shared.dependencies import Dependencies
from shared.relay import OutboxRelay
from shared.service import ServiceDefinition

BILLING = ("scheduler", "usage_collector", "invoicer")
ENROL_CHUNK = 5000


@dataclass(frozen=True)
class CloseSettings:
    concurrency: int = 16
    prefetch: int = 64
    collectors: int = 1
    invoicers: int = 1
    log_level: str = "INFO"
    stall_seconds: float = 120.0
    profile: bool = False  # py-spy on every postpay process during the close (GIL holders: Python CPU)
    code: str | None = None  # run postpay's processes from this source tree (an A/B comparison)
    env: tuple[tuple[str, str], ...] = ()  # more POSTPAY_* settings for postpay's processes
    deadline_seconds: float | None = None  # stop waiting then, and report the close as unfinished


@dataclass(frozen=True)
class Infra:
    amqp_url: str
    database_url: str


def all_services() -> dict[str, ServiceDefinition]:
    """Every service's definition as the driver needs it: tables, outboxes, subscriptions (no adapters)."""
    deps = Dependencies(
        whmcs=None,
        solusvm=None,
        mailer=None,
        overrides={
            SchedulerSettings: SchedulerSettings(billing_timezone="UTC"),
            InvoicerSettings: InvoicerSettings(token_prices=PRICES),
        },
    )
    return {name: service_builder(name)(deps) for name in SERVICES}


@contextmanager
def bench_database(admin_url: str) -> Iterator[str]:
    """A database of its own for one run, dropped afterwards (other engineers share the server)."""
    name = f"postpay_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(normalise_url(admin_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def enrol(db: Database, world: World) -> None:
    """The usage collector's projection of who is enrolled: the first ``world.clients`` customers."""
    now = datetime.now(UTC)
    with db.transaction() as session:
        for first in range(1, world.clients + 1, ENROL_CHUNK):
            last = min(first + ENROL_CHUNK - 1, world.clients)
            rows = [
                {"whmcs_client_id": n, "solusvm_user_id": n + 1, "enrolled_at": LONG_AGO, "updated_at": now}
                for n in range(first, last + 1)
            ]
            session.execute(insert(collector_store.customers), rows)


def close(db: Database, bus: RabbitBus, scheduler: ServiceDefinition, world: World) -> float:
    """Commit the close (as ``postpay close-period`` does) and publish it; returns when it committed."""
    with db.transaction() as session:
        emitted = close_period(session, scheduler.outbox, world.period, trigger="manual", now=datetime.now(UTC))
        assert emitted is not None and emitted.newly_closed
        started = time.time()
    publisher = bus.publisher()
    try:
        assert OutboxRelay(db, [scheduler.outbox], lambda producer: publisher).relay_once() == 1
    finally:
        publisher.close()
    return started


def progress(db: Database, period: str) -> tuple[int, datetime | None, int, datetime | None]:
    """Invoices recorded (and when the last was), customers settled (and when the last was)."""
    ledger, collections = invoicer_store.ledger, collector_store.collections
    with db.transaction() as session:
        invoiced, last_invoice = session.execute(
            select(func.count(), func.max(ledger.c.updated_at)).where(
                ledger.c.period == period, ledger.c.status == invoicer_store.INVOICED
            )
        ).one()
        settled, last_settled = session.execute(
            select(func.count(), func.max(collections.c.settled_at)).where(
                collections.c.period == period, collections.c.outcome == collector_store.INVOICED
            )
        ).one()
    return int(invoiced), last_invoice, int(settled), last_settled


def wait_for_close(
    db: Database, world: World, children: list[Child], stall_seconds: float, deadline_seconds: float | None = None
) -> dict[str, Any]:
    """Poll until every customer is invoiced and settled; fail on a dead process or a stall. Past
    ``deadline_seconds`` the close is returned unfinished (``complete`` False)."""
    seen, moved_at, samples = -1, time.monotonic(), []
    deadline = None if deadline_seconds is None else time.monotonic() + deadline_seconds
    while True:
        invoiced, last_invoice, settled, last_settled = progress(db, world.period.key)
        if invoiced >= world.clients and settled == 0:
            # postpay's code no longer settles the collector's records (period status reads the invoicer's
            # ledger): the invoices are the whole close. Code from before that (a --code comparison)
            # settles them as the invoices come, so by the last invoice some are, and it waits for all.
            settled, last_settled = invoiced, last_invoice
        samples.append((time.time(), invoiced))
        complete = invoiced >= world.clients and settled >= world.clients
        if complete or (deadline is not None and time.monotonic() > deadline):
            return {
                "invoiced": invoiced,
                "last_invoice_at": last_invoice,
                "settled": settled,
                "last_settled_at": last_settled,
                "progress": samples,
                "complete": complete,
            }
        for child in children:
            if not child.alive():
                raise RuntimeError(f"{child.name} died ({child.popen.returncode}):\n{child.tail()}")
        if invoiced + settled != seen:
            seen, moved_at = invoiced + settled, time.monotonic()
        elif time.monotonic() - moved_at > stall_seconds:
            tails = "\n".join(f"--- {c.name}\n{c.tail()}" for c in children)
            raise RuntimeError(f"no progress for {stall_seconds}s at {invoiced} invoiced, {settled} settled\n{tails}")
        time.sleep(0.25)


def postpay_settings(infra: Infra, database_url: str, namespace: str, settings: CloseSettings) -> dict[str, str]:
    return {
        "POSTPAY_AMQP_URL": infra.amqp_url,
        # One login for every process of the benchmark (a broker user per service costs nothing more).
        "POSTPAY_BROKER_USERS": RabbitBus(infra.amqp_url).login_user,
        "POSTPAY_DATABASE_URL": database_url,
        "POSTPAY_BUS_NAMESPACE": namespace,
        "POSTPAY_CONCURRENCY": str(settings.concurrency),
        "POSTPAY_PREFETCH": str(settings.prefetch),
        "POSTPAY_LOG_LEVEL": settings.log_level,
        "POSTPAY_BILLING_TIMEZONE": "UTC",
        "POSTPAY_TOKEN_PRICES": json.dumps({code: str(price) for code, price in PRICES.items()}),
    } | dict(settings.env)


def start_postpay(settings: CloseSettings, env: dict[str, str], log_dir: Path) -> list[Child]:
    parts = [("usage-collector", settings.collectors), ("invoicer", settings.invoicers)]
    children: list[Child] = []
    try:
        for part, count in parts:
            for index in range(count):
                port = free_port()
                child = start(
                    f"{part}-{index + 1}",
                    "postpay",
                    [PYTHON, "-m", "postpay.cli", "run", part, "--no-migrate", "--health-port", str(port)],
                    env=env,
                    log_dir=log_dir,
                    cwd=log_dir,
                )
                child.extra["ready_url"] = f"http://127.0.0.1:{port}/readyz"
                children.append(child)
        for child in children:
            wait_http(child, str(child.extra["ready_url"]), timeout=120)
    except Exception:
        stop_all(children)
        raise
    return children


def parked_count(bus: RabbitBus, subscriptions: list[Any]) -> int:
    """Messages in every parking lot of the run's namespace (work that failed for good)."""
    with bus.connection() as connection:
        channel = bus.open_channel(connection)
        return sum(
            channel.queue_declare(bus.naming.parking_lot(s.queue), passive=True).message_count for s in subscriptions
        )


def start_profilers(children: list[Child], log_dir: Path) -> list[Child]:
    """``py-spy record --gil`` on each process: where its Python code spends CPU, as a flame graph."""
    return [
        start(
            f"py-spy-{child.name}",
            "profiler",
            [
                str(Path(PYTHON).parent / "py-spy"),
                "record",
                "--pid",
                str(child.pid),
                "--gil",
                "--rate",
                "50",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(log_dir / f"profile-{child.name}.txt"),
            ],
            env=child_env({}),
            log_dir=log_dir,
            cwd=log_dir,
        )
        for child in children
    ]


def run_close(world: World, settings: CloseSettings, infra: Infra, sims: Simulators, log_dir: Path) -> dict[str, Any]:
    """One close of ``world.period`` for ``world.clients`` customers; the figures of that run."""
    services = all_services()
    profilers: list[Child] = []
    namespace = f"bench-{uuid.uuid4().hex[:10]}"
    bus = RabbitBus(infra.amqp_url, naming=Naming(namespace))
    subscriptions = [s for service in services.values() for s in service.subscriptions]
    setup_started = time.perf_counter()
    broker = BrokerProcess(infra.amqp_url)
    try:
        with bench_database(infra.database_url) as database_url:
            db = Database(database_url, pool_size=2)
            children: list[Child] = []
            try:
                for name in BILLING:
                    migrations.upgrade(db, services[name])
                enrol(db, world)
                bus.declare(subscriptions)
                env = child_env(sims.postpay_settings() | postpay_settings(infra, database_url, namespace, settings))
                if settings.code:
                    env["PYTHONPATH"] = settings.code
                children = start_postpay(settings, env, log_dir)
                setup_seconds = time.perf_counter() - setup_started
                profilers = start_profilers(children, log_dir) if settings.profile else []
                watched = children + sims.children
                for child in watched:
                    child.mark_cpu()
                kernel_mark = {child.name: _system_seconds(child) for child in children}
                machine_cpu, broker_cpu, database_cpu = (
                    system_cpu_seconds(),
                    broker.cpu_seconds(),
                    service_cpu_seconds(["postgres"]),
                )
                started = close(db, bus, services["scheduler"], world)
                outcome = wait_for_close(db, world, children, settings.stall_seconds, settings.deadline_seconds)
                finished = time.time()
                cpu = {child.name: child.cpu_since_mark() for child in watched}
                kernel = {child.name: _system_seconds(child) - kernel_mark[child.name] for child in children}
                machine_cpu = system_cpu_seconds() - machine_cpu
                broker_cpu = broker.cpu_seconds() - broker_cpu
                database_cpu = service_cpu_seconds(["postgres"]) - database_cpu
                peak_rss = {child.name: child.peak_rss_bytes() for child in children}
            finally:
                stop_all(children)
                for profiler in profilers:
                    profiler.popen.wait(60)  # py-spy writes its file once its target exits
                db.dispose()
            parked = parked_count(bus, subscriptions)
    finally:
        # About 90 quorum queues per namespace: leaving them would weigh on the shared broker.
        bus.delete_topology(subscriptions)
    figures = _figures(
        world,
        settings,
        started,
        finished,
        outcome,
        cpu,
        peak_rss,
        children,
        sims,
        parked,
        setup_seconds,
        machine_cpu,
        broker_cpu,
        database_cpu,
    )
    # The kernel's part of each process's CPU (system seconds: syscalls, futex waits on the GIL), per
    # invoice: a profiler of the Python code does not see it.
    figures["kernel_cpu_ms_per_invoice"] = {name: 1000 * seconds / world.clients for name, seconds in kernel.items()}
    return figures


def _system_seconds(child: Child) -> float:
    return float(psutil.Process(child.pid).cpu_times().system)


def _figures(
    world: World,
    settings: CloseSettings,
    started: float,
    finished: float,
    outcome: dict[str, Any],
    cpu: dict[str, float],
    peak_rss: dict[str, int],
    children: list[Child],
    sims: Simulators,
    parked: int,
    setup_seconds: float,
    machine_cpu: float,
    broker_cpu: float,
    database_cpu: float,
) -> dict[str, Any]:
    complete = outcome.get("complete", True)
    # An unfinished close (past its deadline) ran until it was stopped: that is its time.
    wall = outcome["last_invoice_at"].timestamp() - started if complete else finished - started
    settled_wall = outcome["last_settled_at"].timestamp() - started if complete else finished - started
    observed = finished - started
    ours = sum(cpu[child.name] for child in children)
    sims_cpu = {child.name: cpu[child.name] for child in sims.children}
    samples = outcome["progress"]
    first = samples[0][0]
    return {
        "clients": world.clients,
        "vms": world.vms,
        "settings": asdict(settings),
        "invoices": outcome["invoiced"],
        "complete": complete,
        "parked": parked,
        "setup_seconds": setup_seconds,
        "wall_seconds_to_last_invoice": wall,
        "wall_seconds_to_all_settled": settled_wall,
        "invoices_per_second": (world.clients if complete else outcome["invoiced"]) / wall,
        "cpu_seconds": {
            "postpay": ours,
            **cpu,
            "rabbitmq": broker_cpu,
            "postgresql": database_cpu,
            "machine": machine_cpu,
        },
        "cpu_ms_per_invoice": 1000 * ours / world.clients,
        # Where the machine's CPU went, per invoice: what bounds the rate on two shared cores.
        "cpu_ms_per_invoice_by_role": {
            "postpay": 1000 * ours / world.clients,
            "postgresql": 1000 * database_cpu / world.clients,
            "rabbitmq": 1000 * broker_cpu / world.clients,
            "simulators": 1000 * sum(sims_cpu.values()) / world.clients,
            "everything else on the machine": 1000
            * (machine_cpu - ours - database_cpu - broker_cpu - sum(sims_cpu.values()))
            / world.clients,
        },
        # Busy fraction of one core during the close: near 1.0, a single-threaded simulator is the limit.
        "core_utilisation": {
            name: seconds / observed for name, seconds in {**sims_cpu, "postpay": ours, "machine": machine_cpu}.items()
        },
        "peak_rss_mib": {name: value / 2**20 for name, value in peak_rss.items()},
        # Invoices recorded over time (about 60 points): the shape of the close.
        "progress": [(round(moment - first, 2), count) for moment, count in samples[:: max(1, len(samples) // 60)]],
    }
