"""What postpay costs while nothing happens, and how fast the first event after a quiet spell goes out.

    python -m bench.idle                       # every service + the relay, 120 s idle, then 3 probes
    python -m bench.idle --seconds 60 --code /tmp/postpay-before   # the same with another source tree

Starts the whole deployment as production does, each part its own ``postpay run <part> --no-migrate``
process (signup, provisioner, usage-collector, invoicer, scheduler, meter, relay) on the real RabbitMQ
and PostgreSQL, against the simulators, in a database and bus namespace of its own. Once every process
is ready and a warm-up has passed (first ticks, first sweep), it measures for ``--seconds``:

* CPU seconds of every postpay process (user + system, all threads), and their sum as % of one core;
* database commits per second, counted twice: in each postpay process (a SQLAlchemy commit hook that
  ``bench/idle_counting/sitecustomize.py`` installs in the processes this benchmark starts, read by
  SIGUSR1), and as the ``xact_commit`` delta of the run's database in ``pg_stat_database`` (every
  transaction, read-only ones included, the driver's own reads subtracted). PostgreSQL's counter also
  counts what the server does for the run's connections on its own: a LISTENing connection runs a
  transaction whenever the server's one notification queue has moved on far enough, and other
  engineers' NOTIFYs in other databases move it too; so the first figure is postpay's own.

Then the probes: after an idle spell, commit one outbox row (the scheduler's outbox, the way an operator's
tool writes one) and time from its commit until it arrives on a queue bound to its routing key. No
service consumes the probe's event type, so it triggers no work.

A benchmark, not a test: it prints and records figures (bench/results/idle-<stamp>.json), asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from bench.close_run import bench_database
from bench.common import RESULTS, add_server_options, machine_facts, results_path
from bench.processes import PYTHON, Child, child_env, free_port, start, stop_all, wait_http
from bench.upstreams import start_simulators
from bench.world import PRICES, World
from postpay.bootstrap import SERVICES, service_builder
from shared import migrations
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming
from shared.db import Database
from shared.dependencies import Dependencies
from shared.periods import BillingPeriod

COUNTING = Path(__file__).resolve().parent / "idle_counting"
PARTS = ("signup", "provisioner", "usage-collector", "invoicer", "scheduler", "meter", "relay")
PROBE_TYPE = "bench.idle.probe"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="Length of the measured idle window.")
    parser.add_argument("--warmup", type=float, default=20.0, help="Idle seconds after start, not measured.")
    parser.add_argument("--probes", type=int, default=3, help="First-event delays measured after the window.")
    parser.add_argument("--probe-gap", type=float, default=40.0, help="Idle seconds before each later probe.")
    parser.add_argument("--parts", default=",".join(PARTS), help="The parts to start, comma-separated.")
    parser.add_argument("--code", default=None, help="Run postpay's processes from this source tree (before/after).")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="An extra POSTPAY_* variable for every process (repeatable).",
    )
    parser.add_argument("--name", default="idle", help="Results file prefix.")
    parser.add_argument("--label", default="", help="Recorded with the figures (e.g. before, after).")
    parser.add_argument("--logs", type=Path, default=None, help="Keep the processes' logs here.")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    add_server_options(parser, database="postgres")
    return parser.parse_args(argv)


def definitions() -> dict[str, Any]:
    return {name: service_builder(name)(Dependencies(whmcs=None, solusvm=None, mailer=None)) for name in SERVICES}


def settings(
    args: argparse.Namespace, database_url: str, namespace: str, sims_settings: dict[str, str]
) -> dict[str, str]:
    env = {
        **sims_settings,
        "POSTPAY_AMQP_URL": args.amqp,
        "POSTPAY_BROKER_USERS": RabbitBus(args.amqp).login_user,  # one login speaks for every producer
        "POSTPAY_DATABASE_URL": database_url,
        "POSTPAY_BUS_NAMESPACE": namespace,
        "POSTPAY_BILLING_TIMEZONE": "UTC",
        "POSTPAY_TOKEN_PRICES": json.dumps({code: str(price) for code, price in PRICES.items()}),
        "POSTPAY_SIGNUP_PORT": str(free_port()),
    }
    for item in args.setting:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def start_parts(parts: list[str], env: dict[str, str], log_dir: Path) -> list[Child]:
    children: list[Child] = []
    try:
        for part in parts:
            port = free_port()
            child = start(
                part,
                "postpay",
                [PYTHON, "-m", "postpay.cli", "run", part, "--no-migrate", "--health-port", str(port)],
                env=env,
                log_dir=log_dir,
                cwd=log_dir,
            )
            child.extra["ready_url"] = f"http://127.0.0.1:{port}/readyz"
            children.append(child)
        for child in children:
            wait_http(child, str(child.extra["ready_url"]), timeout=180)
    except Exception:
        stop_all(children)
        raise
    return children


def commits(db: Database, name: str) -> tuple[int, int]:
    """Transactions committed in the database so far, and autovacuum's and autoanalyze's runs on its
    tables (their transactions count too, and are PostgreSQL's, not postpay's)."""
    with db.engine.connect() as connection:
        connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        value = connection.execute(
            text("SELECT xact_commit FROM pg_stat_database WHERE datname = :name"), {"name": name}
        ).scalar_one()
        autovacuum = connection.execute(
            text("SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_all_tables")
        ).scalar_one()
        connection.commit()
    return int(value), int(autovacuum)


def idle_window(db: Database, name: str, seconds: float, step: float = 10.0) -> tuple[float, int, int, list[int]]:
    """Sleep ``seconds``, reading the commit count every ``step``: the elapsed time, postpay's commits
    (the driver's own reads subtracted), autovacuum runs, and the commits of each step."""
    first, vacuums = commits(db, name)
    started, previous, timeline, reads = time.monotonic(), first, [], 1
    while (remaining := seconds - (time.monotonic() - started)) > 0:
        time.sleep(min(step, remaining))
        current, last_vacuums = commits(db, name)
        reads += 1
        timeline.append(current - previous - 1)
        previous = current
    return time.monotonic() - started, previous - first - reads, last_vacuums - vacuums, timeline


def counted_commits(children: list[Child], directory: Path, timeout: float = 10.0) -> dict[str, int]:
    """Commits so far of each process, as its commit hook counted them."""
    for child in children:
        (directory / str(child.pid)).unlink(missing_ok=True)
        child.popen.send_signal(signal.SIGUSR1)
    deadline, counts = time.monotonic() + timeout, {}
    while len(counts) < len(children) and time.monotonic() < deadline:
        for child in children:
            path = directory / str(child.pid)
            if child.name not in counts and path.exists() and path.read_text():
                counts[child.name] = int(path.read_text())
        time.sleep(0.05)
    if len(counts) < len(children):
        raise RuntimeError(f"no commit count from {sorted({c.name for c in children} - set(counts))}")
    return counts


class Probe:
    """A queue bound to the probe's routing key; ``delay()`` commits one outbox row and times its arrival."""

    def __init__(self, bus: RabbitBus, db: Database, outbox: Any) -> None:
        self.db, self.outbox = db, outbox
        self.connection = bus.connection()
        self.channel = bus.open_channel(self.connection)
        self.queue = self.channel.queue_declare("", exclusive=True, auto_delete=True).queue
        self.channel.queue_bind(self.queue, bus.naming.exchange, PROBE_TYPE)
        self.arrived: list[float] = []
        self.channel.basic_consume(self.queue, callback=lambda message: self.arrived.append(time.time()), no_ack=True)

    def delay(self, timeout: float = 120.0) -> float:
        self.arrived.clear()
        table = self.outbox.table
        with self.db.transaction() as session:
            session.execute(
                insert(table).values(
                    event_id=uuid.uuid4(),
                    event_type=PROBE_TYPE,
                    body="{}",
                    headers="{}",
                    correlation_id=uuid.uuid4().hex,
                    producer=self.outbox.producer,
                    occurred_at=datetime.now(UTC),
                    attempts=0,
                )
            )
            # The same mark Outbox.add leaves (a NOTIFY on PostgreSQL), when the code has it.
            import shared.outbox as outbox_module

            written = getattr(outbox_module, "outbox_written", None)
            if written is not None:
                written(session, table)
        committed = time.time()
        deadline = time.monotonic() + timeout
        while not self.arrived and time.monotonic() < deadline:
            try:
                self.connection.drain_events(timeout=0.5)
            except TimeoutError:
                continue
        if not self.arrived:
            raise RuntimeError(f"the probe did not arrive within {timeout}s")
        return self.arrived[0] - committed

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception:
            pass


def measure(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    services = definitions()
    namespace = f"bench-idle-{uuid.uuid4().hex[:8]}"
    bus = RabbitBus(args.amqp, naming=Naming(namespace))
    subscriptions = [s for service in services.values() for s in service.subscriptions]
    world = World(1, 1, BillingPeriod.parse(datetime.now(UTC).strftime("%Y-%m")))
    sims = start_simulators(world, solusvm_latency_ms=0.0, whmcs_latency_ms=0.0, log_dir=log_dir)
    try:
        with bench_database(args.database) as database_url:
            db = Database(database_url, pool_size=2)
            database_name = db.engine.url.database
            children: list[Child] = []
            probe = None
            try:
                for service in services.values():
                    migrations.upgrade(db, service)
                bus.declare(subscriptions)
                env = child_env(settings(args, database_url, namespace, sims.postpay_settings()))
                if args.code:
                    env["PYTHONPATH"] = args.code
                counts_dir = log_dir / "commits"
                counts_dir.mkdir(exist_ok=True)
                env["PYTHONPATH"] += os.pathsep + str(COUNTING)
                env["POSTPAY_BENCH_COMMITS_DIR"] = str(counts_dir)
                children = start_parts(args.parts.split(","), env, log_dir)
                # No heartbeats: nothing drives this connection while the deployment idles.
                probe = Probe(
                    RabbitBus(args.amqp, naming=Naming(namespace), heartbeat=0), db, services["scheduler"].outbox
                )
                time.sleep(args.warmup)
                for child in children:
                    child.mark_cpu()
                counted_before = counted_commits(children, counts_dir)
                elapsed, committed, autovacuum, timeline = idle_window(db, database_name, args.seconds)
                cpu = {child.name: child.cpu_since_mark() for child in children}
                counted = {
                    name: count - counted_before[name] for name, count in counted_commits(children, counts_dir).items()
                }
                for child in children:
                    if not child.alive():
                        raise RuntimeError(f"{child.name} died:\n{child.tail()}")
                delays = []
                for index in range(args.probes):
                    if index:
                        time.sleep(args.probe_gap)
                    delays.append(probe.delay())
            finally:
                if probe is not None:
                    probe.close()
                stop_all(children)
                db.dispose()
    finally:
        sims.stop()
        bus.delete_topology(subscriptions)
    total = sum(cpu.values())
    return {
        "idle_seconds": elapsed,
        "cpu_seconds": {"postpay": total, **cpu},
        "core_percent": 100 * total / elapsed,
        "commits_counted": {"postpay": sum(counted.values()), **counted},
        "commits_counted_per_second": sum(counted.values()) / elapsed,
        "commits": committed,
        "commits_per_second": committed / elapsed,
        "commits_per_10_seconds": timeline,
        "autovacuum_and_autoanalyze_runs": autovacuum,
        "first_event_delay_seconds": delays,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log_dir = args.logs or Path(tempfile.mkdtemp(prefix="postpay-bench-idle-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    figures = measure(args, log_dir)
    print(
        f"idle {figures['idle_seconds']:.0f} s{' (' + args.label + ')' if args.label else ''}: "
        f"{figures['cpu_seconds']['postpay']:.2f} CPU-s = {figures['core_percent']:.2f} % of a core, "
        f"{figures['commits_counted_per_second']:.2f} commits/s counted in postpay's processes "
        f"({figures['commits_per_second']:.2f}/s by PostgreSQL's xact_commit)"
    )
    print(
        f"  commits per 10 s: {figures['commits_per_10_seconds']}; autovacuum/analyze runs meanwhile: "
        f"{figures['autovacuum_and_autoanalyze_runs']}"
    )
    for name, seconds in figures["cpu_seconds"].items():
        print(f"  {name:16} {seconds:7.2f} CPU-s {figures['commits_counted'][name]:6d} commits")
    print("first event after idle: " + ", ".join(f"{1000 * d:.1f} ms" for d in figures["first_event_delay_seconds"]))
    parameters = {k: v for k, v in vars(args).items() if k not in ("amqp", "database", "logs", "results_dir")}
    result = {
        "benchmark": "idle",
        "machine": machine_facts(),
        "parameters": parameters | {"logs": str(log_dir)},
        "figures": figures,
    }
    path = results_path(args.name, args.results_dir)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"recorded {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
