"""One meter sweep over a large SolusVM 2 panel: wall time, API requests, CPU and memory.

The SolusVM 2 simulator runs in its own process with N servers (70 % running), answering after an
injected latency; the meter (postpay's own ``Meter``, as ``postpay run meter`` runs it) sweeps it from
this process into a fresh PostgreSQL database of its own. Three sweeps, the simulator's clock moved an
interval between them:

1. the first sweep of a fresh meter: every server is new (one ``VmRunStarted`` per running one);
2. a quiet sweep: nothing changed (the steady state, every minute);
3. a busy sweep: ``--changes`` of the servers stopped, as many deleted (read from the activity log)
   and as many new ones created.

    python -m bench.meter_sweep --servers 100000 --latency-ms 20
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from pydantic import SecretStr
from sqlalchemy import func, select

from bench.close_run import bench_database
from bench.common import RESULTS, machine_facts, results_path
from bench.processes import PYTHON, ROOT, child_env, free_port, start, stop_all, wait_http
from services.meter.public import meter_of
from shared.db import Database
from shared.dependencies import Dependencies
from shared.logging import configure_logging
from shared.upstream.http import Timeouts
from shared.upstream.solusvm import SolusVMClient

TOKEN = "bench-meter-token"
T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=60)
ADMIN_URL = os.environ.get("POSTPAY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def build_state(servers: int, changes: float) -> Any:
    """N servers of N/3 users; the changed ones stop, are deleted, or appear between sweeps 2 and 3."""
    from simulators.solusvm.activity import VM_CREATED, VM_DELETE_REQUESTED
    from simulators.solusvm.model import Server, User
    from simulators.solusvm.state import SimState

    state = SimState.with_defaults(LONG_AGO)
    users = max(1, math.ceil(servers / 3))
    for n in range(users):
        user_id = state.allocate_id("user")
        state.index_user(User(id=user_id, email=f"user-{n}@example.com", created_at=LONG_AGO, updated_at=LONG_AGO))
    changed = int(servers * changes)
    moment = T0 + STEP + STEP / 2  # between sweeps 2 and 3
    for n in range(servers):
        server_id = state.allocate_id("server")
        running = n % 10 < 7
        stops = running and n < changed
        intervals: list[list[datetime | None]] = [[LONG_AGO, moment if stops else None if running else LONG_AGO + STEP]]
        server = Server(
            id=server_id,
            uuid=state.new_uuid(),
            name=f"vps-{server_id}",
            user_id=2 + n % users,
            plan_id=1 + n % 3,
            location_id=1,
            created_at=LONG_AGO,
            intervals=intervals,
            os_id=1,
        )
        state.add_server(server)
        if changed <= n < 2 * changed:  # deleted, as the activity log tells
            server.intervals = [[LONG_AGO, moment]]
            server.deleted_at = moment
            state.log_server_event(VM_DELETE_REQUESTED, server, moment)
    for n in range(changed):  # created, running
        server_id = state.allocate_id("server")
        server = Server(
            id=server_id,
            uuid=state.new_uuid(),
            name=f"new-{server_id}",
            user_id=2 + n % users,
            plan_id=1,
            location_id=1,
            created_at=moment,
            intervals=[[moment, None]],
            os_id=1,
        )
        state.add_server(server)
        state.log_server_event(VM_CREATED, server, moment)
    state.changed()
    return state


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from simulators.common import SimClock
    from simulators.faults import FaultInjector, FaultKind, FaultRule
    from simulators.solusvm.app import create_app

    started = time.perf_counter()
    state = build_state(args.servers, args.changes)
    rules = [FaultRule(kind=FaultKind.LATENCY, route="*", latency_ms=args.latency_ms)] if args.latency_ms else []
    app = create_app(state, api_token=TOKEN, clock=SimClock(T0), faults=FaultInjector(rules=rules))
    print(f"simulator: {len(state.servers)} servers built in {time.perf_counter() - started:.1f}s", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, lifespan="off", access_log=False, log_level="warning")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from postpay.bootstrap import service_builder
    from services.meter import store
    from services.meter.settings import MeterSettings

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="postpay-meter-sweep-") as logs, bench_database(ADMIN_URL) as db_url:
        sim = start(
            "sim-solusvm",
            "simulator",
            [
                PYTHON,
                "-m",
                "bench.meter_sweep",
                "serve",
                "--servers",
                str(args.servers),
                "--changes",
                str(args.changes),
                "--latency-ms",
                str(args.latency_ms),
                "--port",
                str(port),
            ],
            env=child_env({}),
            log_dir=Path(logs),
            cwd=ROOT,
        )
        db = Database(db_url)
        client = SolusVMClient(url, SecretStr(TOKEN), timeouts=Timeouts(connect=5, read=120))
        try:
            wait_http(sim, f"{url}/_sim/clock", timeout=900)
            settings = MeterSettings(meter_interval_seconds=60, meter_page_size=args.page_size)
            deps = Dependencies(whmcs=None, solusvm=client, mailer=None, overrides={MeterSettings: settings})
            deps.db = db
            service = service_builder("meter")(deps)
            service.metadata.create_all(db.engine)
            meter = meter_of(service)
            me = psutil.Process()
            sweeps = []
            for index, label in enumerate(("first", "quiet", "busy")):
                httpx.post(f"{url}/_sim/clock", json={"now": (T0 + index * STEP).isoformat()}, timeout=30)
                rss_before = me.memory_info().rss
                sim_cpu = sum(sim_times(sim.pid))
                began, cpu = time.perf_counter(), time.process_time()
                report = meter.sweep()
                wall, cpu = time.perf_counter() - began, time.process_time() - cpu
                assert report is not None
                figures = {
                    "sweep": label,
                    "servers_listed": report.servers,
                    "running": report.running,
                    "events": report.events,
                    "requests": report.requests,
                    "wall_seconds": round(wall, 3),
                    "meter_cpu_seconds": round(cpu, 3),
                    "simulator_cpu_seconds": round(sum(sim_times(sim.pid)) - sim_cpu, 3),
                    "rss_mib": round(me.memory_info().rss / 2**20, 1),
                    "rss_growth_mib": round((me.memory_info().rss - rss_before) / 2**20, 1),
                    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                }
                sweeps.append(figures)
                print(
                    f"{label:>5}: {report.servers} servers, {report.requests} requests, {report.events} events, "
                    f"{wall:.1f} s wall, {cpu:.1f} s meter CPU, {figures['simulator_cpu_seconds']:.1f} s simulator "
                    f"CPU, RSS {figures['rss_mib']} MiB (peak {figures['peak_rss_mib']})",
                    flush=True,
                )
            with db.transaction() as session:
                outbox_rows = session.execute(select(func.count()).select_from(store.tables.outbox.table)).scalar_one()
            return {"sweeps": sweeps, "outbox_rows": outbox_rows}
        finally:
            client.close()
            db.dispose()
            stop_all([sim])


def sim_times(pid: int) -> tuple[float, float]:
    times = psutil.Process(pid).cpu_times()
    return times.user, times.system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="measure", choices=["measure", "serve"])
    parser.add_argument("--servers", type=int, default=100_000)
    parser.add_argument("--changes", type=float, default=0.01, help="Share of servers stopped (and deleted, and new).")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.mode == "serve":
        serve(args)
        return 0
    with (Path(tempfile.gettempdir()) / "postpay-meter-sweep.log").open("w") as log:
        configure_logging("INFO", stream=log)
        figures = measure(args)
    path = results_path("meter-sweep", args.results_dir)
    parameters = {k: v for k, v in vars(args).items() if k not in ("mode", "port")} | {
        "results_dir": str(args.results_dir)
    }
    path.write_text(
        json.dumps(
            {"benchmark": "meter_sweep", "machine": machine_facts(), "parameters": parameters, **figures}, indent=2
        )
        + "\n"
    )
    print(f"recorded {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
