"""Signup flood: a burst of registrations against the signup, once as one process (``postpay run signup``),
once as its two halves (``postpay run signup-web`` + ``postpay run signup-handlers``) and once as the two
halves with the handlers at CPU niceness 19 (``POSTPAY_CPU_NICENESS``, as deploy/ runs them;
``--handler-niceness``), in the same run.

Each mode gets a database and a bus namespace of its own on the real RabbitMQ and PostgreSQL, an SMTP
sink and the SolusVM 2 simulator (the landing page's plans), each in its own process. A load generator
(its own process, ``--clients`` keep-alive connections) posts ``--registrations`` registrations to the
JSON API as fast as they are answered; a prober (its own process) fetches the landing page every
``--probe-interval`` seconds from ``--idle-seconds`` before the flood until the last registration is
fully processed (its verification email sent and its inbox row committed). Reported per mode:

- accepted registrations/s (the flood's 202s) and fully processed registrations/s, end to end;
- CPU-ms per registration of postpay's processes (and of PostgreSQL and RabbitMQ, apart);
- registrations/s per core: registrations per CPU-second of postpay's processes, and per busy
  CPU-second of the whole machine (broker, database, load generator and sink included);
- the landing page's p50/p95 when idle, during the flood, and while the handlers work off the backlog
  the flood left behind.

    python -m bench.signup_flood --registrations 2000 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench.close_run import all_services, bench_database
from bench.common import RESULTS, add_server_options, machine_facts, results_path
from bench.processes import (
    PYTHON,
    ROOT,
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
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming
from shared.db import normalise_url

MODES = {
    "combined": ("signup",),
    "split": ("signup-web", "signup-handlers"),
    "split-niced": ("signup-web", "signup-handlers"),
}
# The handlers at a lower CPU priority (POSTPAY_CPU_NICENESS), as deploy/ runs them beside the web: what
# separate processes on one machine can do for the page once the cores are saturated.
NICED_PART = {"split-niced": "signup-handlers"}  # at --handler-niceness (19, as deploy/ runs them)
PASSWORD = "Tr0ub4dor&3-horse-staple"
STALL_SECONDS = 120.0


# -- helper processes (spawned: none shares the benchmark's interpreter or GIL) ---------------------
def smtp_sink(port: int, ready: Any, stop: Any) -> None:
    from simulators.smtp import SmtpCapture

    with SmtpCapture(port=port):
        ready.set()
        stop.wait()


def flood(url: str, prefix: str, count: int, clients: int, results: Any) -> None:
    """POST ``count`` registrations over ``clients`` connections; put [(sent, answered, status)]."""
    answers: list[tuple[float, float, int]] = []
    lock = threading.Lock()
    numbers = iter(range(count))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120.0) as session:
            while True:
                with lock:
                    number = next(numbers, None)
                if number is None:
                    return
                body = {
                    "name": "Flood Tester",
                    "company": "",
                    "email": f"{prefix}-{number}@example.com",
                    "password": PASSWORD,
                }
                sent = time.time()
                status = session.post("/api/v1/signups", json=body).status_code
                with lock:
                    answers.append((sent, time.time(), status))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(answers)


def probe(url: str, interval: float, ready: Any, stop: Any, results: Any) -> None:
    """GET the landing page every ``interval`` s (one at a time) until stopped; put [(at, seconds, status)]."""
    samples: list[tuple[float, float, int]] = []
    with httpx.Client(timeout=60.0) as session:
        session.get(url)  # connected: the first sample is not a connection set-up
        ready.set()
        while not stop.is_set():
            began = time.time()
            try:
                status = session.get(url).status_code
            except httpx.HTTPError:
                status = 0
            samples.append((began, time.time() - began, status))
            stop.wait(max(0.0, interval - (time.time() - began)))
    results.put(samples)


# -- one mode ---------------------------------------------------------------------------------------
def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def latency(samples: list[tuple[float, float, int]], since: float, until: float) -> dict[str, Any]:
    chosen = [seconds for at, seconds, status in samples if since <= at < until and status == 200]
    failed = sum(1 for at, _, status in samples if since <= at < until and status != 200)
    return {
        "samples": len(chosen),
        "failed": failed,
        "p50_ms": 1000 * percentile(chosen, 0.50),
        "p95_ms": 1000 * percentile(chosen, 0.95),
        "max_ms": 1000 * max(chosen, default=float("nan")),
    }


class Signup:
    """One mode's database, bus namespace and settings; starts and stops its postpay processes."""

    def __init__(
        self, mode: str, args: argparse.Namespace, log_dir: Path, helpers: dict[str, Any], database_url: str
    ) -> None:
        self.mode, self.args, self.log_dir = mode, args, log_dir
        self.namespace = f"bench-flood-{uuid.uuid4().hex[:8]}"
        self.web_port = free_port()
        self.landing = f"http://127.0.0.1:{self.web_port}/"
        self.settings = {
            "POSTPAY_AMQP_URL": args.amqp,
            "POSTPAY_BROKER_USERS": "guest",
            "POSTPAY_BUS_NAMESPACE": self.namespace,
            "POSTPAY_DATABASE_URL": database_url,
            "POSTPAY_LOG_LEVEL": args.log_level,
            "POSTPAY_SIGNUP_HOST": "127.0.0.1",
            "POSTPAY_SIGNUP_PORT": str(self.web_port),
            "POSTPAY_PUBLIC_URL": self.landing.rstrip("/"),
            "POSTPAY_SMTP_HOST": "127.0.0.1",
            "POSTPAY_SMTP_PORT": str(helpers["smtp_port"]),
            "POSTPAY_SOLUSVM_URL": helpers["solusvm_url"],
            # A flood from one address is what the per-IP limit stops in production; here it is the load.
            "POSTPAY_REGISTRATIONS_PER_IP": str(10 * (args.registrations + args.backlog)),
        }
        if args.concurrency:
            self.settings["POSTPAY_CONCURRENCY"] = str(args.concurrency)
        self.engine = create_engine(normalise_url(database_url))
        self.children: list[Child] = []
        self.starts = 0

    def niceness(self, part: str) -> str:
        return str(self.args.handler_niceness) if NICED_PART.get(self.mode) == part else "0"

    def start(self, part: str, *, ready: bool = True) -> Child:
        self.starts += 1
        health = free_port()
        child = start(
            f"{self.mode}-{part}-{self.starts}",
            "postpay",
            [PYTHON, "-m", "postpay.cli", "run", part, "--health-port", str(health)],
            env=child_env(self.settings | {"POSTPAY_CPU_NICENESS": self.niceness(part)}),
            log_dir=self.log_dir,
            cwd=ROOT,
        )
        self.children.append(child)
        if ready:
            wait_http(child, f"http://127.0.0.1:{health}/readyz")
        return child

    def serving(self, child: Child) -> None:
        wait_http(child, self.landing)
        for _ in range(20):  # warm: templates compiled, plans cached
            httpx.get(self.landing, timeout=30)

    def stop(self) -> None:
        stop_all(self.children)
        self.children = []

    def processed(self) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT count(*) FROM signup_inbox WHERE handler = 'signup.send_verification'")
                ).scalar_one()
            )

    def unrelayed(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM signup_outbox")).scalar_one())

    def close(self) -> None:
        self.stop()
        self.engine.dispose()
        bus = RabbitBus(self.args.amqp, naming=Naming(self.namespace))
        bus.delete_topology([s for service in all_services().values() for s in service.subscriptions])


def run_mode(mode: str, args: argparse.Namespace, log_dir: Path, spawn: Any, helpers: dict[str, Any]) -> dict[str, Any]:
    with bench_database(args.database) as database_url:
        signup = Signup(mode, args, log_dir, helpers, database_url)
        try:
            children = [signup.start(part) for part in MODES[mode]]  # the web first: it migrates
            signup.serving(children[0])
            result = measure(mode, args, spawn, signup, children)
            signup.stop()
            result["backlog"] = drain(mode, args, spawn, signup)
            return result
        finally:
            signup.close()


def watch_landing(spawn: Any, signup: Signup, args: argparse.Namespace) -> tuple[Any, Any, Any]:
    ready, stop, probes = spawn.Event(), spawn.Event(), spawn.Queue()
    # Daemonic, as is the loader: a run that fails half-way (a stall raises) must not leave a child
    # its interpreter waits for at exit forever (seen: a test run hung after the broker went away).
    prober = spawn.Process(target=probe, args=(signup.landing, args.probe_interval, ready, stop, probes), daemon=True)
    prober.start()
    if not ready.wait(60):
        raise RuntimeError("the landing-page prober did not start")
    return prober, stop, probes


def measure(mode: str, args: argparse.Namespace, spawn: Any, signup: Signup, children: list[Child]) -> dict[str, Any]:
    """The flood: ``--registrations`` posted as fast as they are answered, until the last is processed."""
    n = args.registrations
    answers = spawn.Queue()
    prober, stop, probes = watch_landing(spawn, signup, args)
    time.sleep(args.idle_seconds)
    broker, machine_before = BrokerProcess(args.amqp), system_cpu_seconds()
    postgres_before, broker_before = service_cpu_seconds(["postgres"]), broker.cpu_seconds()
    for child in children:
        child.mark_cpu()
    started = time.time()
    loader = spawn.Process(
        target=flood,
        args=(f"http://127.0.0.1:{signup.web_port}", f"flood-{uuid.uuid4().hex[:8]}", n, args.clients, answers),
        daemon=True,
    )
    loader.start()
    progress: list[tuple[float, int]] = []
    flooded: list[tuple[float, float, int]] | None = None
    while True:
        time.sleep(0.2)
        done = signup.processed()
        progress.append((time.time(), done))
        if flooded is None and not answers.empty():
            flooded = answers.get()
        if done >= n and flooded is not None:
            break
        if time.time() - min(at for at, count in progress if count == done) > STALL_SECONDS:
            raise RuntimeError(f"{mode}: stalled at {done} of {n} processed:\n" + "\n".join(c.tail() for c in children))
    finished = next(at for at, count in progress if count >= n)
    cpu = {child.name: child.cpu_since_mark() for child in children}
    machine = system_cpu_seconds() - machine_before
    postgres, rabbit = service_cpu_seconds(["postgres"]) - postgres_before, broker.cpu_seconds() - broker_before
    stop.set()
    samples = probes.get()
    loader.join(30)
    prober.join(30)
    rejected = sum(1 for _, _, status in flooded if status != 202)
    if rejected:
        raise RuntimeError(f"{mode}: {rejected} registrations were not accepted")
    accepted_at = max(answered for _, answered, _ in flooded)
    backlog_at_accept = n - max((count for at, count in progress if at <= accepted_at), default=0)
    postpay_cpu = sum(cpu.values())
    wall = finished - started
    return {
        "mode": mode,
        "parts": list(MODES[mode]),
        "registrations": n,
        "accepted_per_second": n / (accepted_at - started),
        "processed_per_second": n / wall,
        "seconds_to_last_accepted": accepted_at - started,
        "seconds_to_last_processed": wall,
        "backlog_at_last_accepted": backlog_at_accept,
        "postpay_cpu_ms_per_registration": 1000 * postpay_cpu / n,
        "cpu_ms_per_registration_by_process": {name: 1000 * seconds / n for name, seconds in cpu.items()},
        "postgres_cpu_ms_per_registration": 1000 * postgres / n,
        "rabbitmq_cpu_ms_per_registration": 1000 * rabbit / n,
        "machine_cpu_ms_per_registration": 1000 * machine / n,
        "postpay_cores_busy": postpay_cpu / wall,
        "machine_cores_busy": machine / wall,
        "registrations_per_second_per_postpay_core": n / postpay_cpu,
        # What the signup costs with its broker and database (both shared with other users of this machine).
        "registrations_per_second_per_core_with_broker_and_database": n / (postpay_cpu + postgres + rabbit),
        "registrations_per_second_per_machine_core": n / machine,
        "registration_answer_p95_ms": 1000 * percentile([done - sent for sent, done, _ in flooded], 0.95),
        "landing": {
            "idle": latency(samples, 0, started),
            "flood": latency(samples, started, accepted_at),
            "after_flood": latency(samples, accepted_at, finished),
        },
        "peak_rss_mib": {child.name: child.peak_rss_bytes() / 2**20 for child in children},
        "niceness": {child.name: os.getpriority(os.PRIO_PROCESS, child.popen.pid) for child in children},
    }


def drain(mode: str, args: argparse.Namespace, spawn: Any, signup: Signup) -> dict[str, Any]:
    """A backlog of ``--backlog`` registrations, accepted by a web alone (no handler anywhere) and
    relayed to the queue; then the mode's processes start again and the handlers work it off while
    the landing page is probed."""
    before = signup.processed()
    filler = signup.start("signup-web")
    signup.serving(filler)
    answers = spawn.Queue()
    flood(f"http://127.0.0.1:{signup.web_port}", f"backlog-{uuid.uuid4().hex[:8]}", args.backlog, args.clients, answers)
    assert all(status == 202 for _, _, status in answers.get()), "a registration of the backlog was refused"
    deadline = time.time() + STALL_SECONDS
    while signup.unrelayed() and time.time() < deadline:
        time.sleep(0.2)
    signup.stop()
    assert signup.processed() == before, "nothing consumed the backlog while it was made"
    first = signup.start(MODES[mode][0], ready=False)
    signup.serving(first)
    prober, stop, probes = watch_landing(spawn, signup, args)
    began = time.time()
    for part in MODES[mode][1:]:
        signup.start(part, ready=False)
    target, progress = before + args.backlog, [(began, signup.processed())]
    while progress[-1][1] < target:
        time.sleep(0.2)
        progress.append((time.time(), signup.processed()))
        if time.time() - min(at for at, count in progress if count == progress[-1][1]) > STALL_SECONDS:
            raise RuntimeError(f"{mode}: the backlog stalled at {progress[-1][1] - before} of {args.backlog}")
    finished = next(at for at, count in progress if count >= target)
    stop.set()
    samples = probes.get()
    prober.join(30)
    # Both modes are measured from the first poll that saw the handlers at work until the last event:
    # the combined process drains from its start (before its page answers), the split's handlers once
    # they have started. Neither window holds start-up time or an idle page.
    # (A small backlog may be gone before the first poll: nothing was then drained while probed.)
    index = next((i for i in range(1, len(progress)) if progress[i][1] > progress[i - 1][1]), 1)
    working, counted = progress[index - 1]
    drained = target - counted
    return {
        "registrations": args.backlog,
        "drained_while_probed": drained,
        "processed_per_second": drained / (finished - working) if finished > working else float("nan"),
        "seconds": finished - working,
        "landing": latency(samples, working, finished),
    }


# -- the benchmark ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=2000, help="Registrations of the flood.")
    parser.add_argument(
        "--backlog",
        type=int,
        default=2000,
        help="Registrations queued for the handlers before they start, worked off while probed.",
    )
    parser.add_argument("--clients", type=int, default=8, help="Concurrent connections of the load generator.")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="POSTPAY_CONCURRENCY of the postpay processes (0: postpay's default).",
    )
    parser.add_argument("--repeat", type=int, default=2, help="Rounds of both modes, alternated (report the spread).")
    parser.add_argument("--probe-interval", type=float, default=0.2, help="Seconds between landing-page fetches.")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="Landing-page probing before the flood.")
    parser.add_argument("--log-level", default="INFO", help="POSTPAY_LOG_LEVEL of the postpay processes.")
    parser.add_argument(
        "--handler-niceness", type=int, default=19, help="POSTPAY_CPU_NICENESS of the handlers in split-niced."
    )
    add_server_options(parser)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="postpay-signup-flood-"))
    spawn = multiprocessing.get_context("spawn")
    smtp_port, solusvm_port = free_port(), free_port()
    ready, stop_sink = spawn.Event(), spawn.Event()
    sink = spawn.Process(target=smtp_sink, args=(smtp_port, ready, stop_sink), daemon=True)
    sink.start()
    solusvm = start(
        "sim-solusvm",
        "simulator",
        [PYTHON, "-m", "postpay.cli", "sim", "solusvm", "--port", str(solusvm_port)],
        env=child_env({}),
        log_dir=log_dir,
        cwd=ROOT,
    )
    rounds: list[dict[str, dict[str, Any]]] = []
    try:
        assert ready.wait(60), "the SMTP sink did not start"
        wait_http(solusvm, f"http://127.0.0.1:{solusvm_port}/_sim/state")
        helpers = {"smtp_port": smtp_port, "solusvm_url": f"http://127.0.0.1:{solusvm_port}"}
        for number in range(args.repeat):
            order = list(MODES) if number % 2 == 0 else list(reversed(MODES))  # neither always goes first
            rounds.append({mode: run_mode(mode, args, log_dir, spawn, helpers) for mode in order})
            print(f"round {number + 1}: " + summary(rounds[-1]), flush=True)
    finally:
        stop_sink.set()
        sink.join(10)
        stop_all([solusvm])
    result = report(rounds, args)
    path = results_path("signup-flood", args.results_dir)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"recorded {path} (process logs in {log_dir})")
    return 0


def summary(round_: dict[str, dict[str, Any]]) -> str:
    return "; ".join(
        f"{mode}: accepted {r['accepted_per_second']:.0f}/s, processed {r['processed_per_second']:.0f}/s, "
        f"{r['postpay_cpu_ms_per_registration']:.1f} CPU-ms, landing p95 idle/flood/backlog "
        f"{r['landing']['idle']['p95_ms']:.0f}/{r['landing']['flood']['p95_ms']:.0f}/"
        f"{r['backlog']['landing']['p95_ms']:.0f} ms, backlog drained at "
        f"{r['backlog']['processed_per_second']:.0f}/s"
        for mode, r in round_.items()
    )


def landing_phases(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {**result["landing"], "backlog": result["backlog"]["landing"]}


def spread(values: list[float]) -> dict[str, Any]:
    clean = [v for v in values if v == v]  # NaN: a phase with no sample
    if not clean:
        return {"median": None, "min": None, "max": None, "values": values}
    return {"median": statistics.median(clean), "min": min(clean), "max": max(clean), "values": values}


FIGURES = (
    "accepted_per_second",
    "processed_per_second",
    "postpay_cpu_ms_per_registration",
    "registrations_per_second_per_postpay_core",
    "registrations_per_second_per_core_with_broker_and_database",
    "registrations_per_second_per_machine_core",
    "postgres_cpu_ms_per_registration",
    "rabbitmq_cpu_ms_per_registration",
    "machine_cores_busy",
    "backlog_at_last_accepted",
    "seconds_to_last_processed",
)


def report(rounds: list[dict[str, dict[str, Any]]], args: argparse.Namespace) -> dict[str, Any]:
    figures = {mode: {name: spread([r[mode][name] for r in rounds]) for name in FIGURES} for mode in MODES}
    for mode in MODES:
        figures[mode]["backlog_processed_per_second"] = spread(
            [r[mode]["backlog"]["processed_per_second"] for r in rounds]
        )
        for phase in ("idle", "flood", "backlog"):
            for quantile in ("p50_ms", "p95_ms"):
                figures[mode][f"landing_{phase}_{quantile}"] = spread(
                    [landing_phases(r[mode])[phase][quantile] for r in rounds]
                )

    def ratio(name: str, a: str = "split", b: str = "combined") -> dict[str, Any]:
        return spread([r[a][name] / r[b][name] for r in rounds])

    ratios = {
        "split/combined accepted per second": ratio("accepted_per_second"),
        "split/combined processed per second": ratio("processed_per_second"),
        "split/combined registrations per postpay core": ratio("registrations_per_second_per_postpay_core"),
        "split/combined CPU-ms per registration": ratio("postpay_cpu_ms_per_registration"),
        # Each round's own: how much the backlog raises the landing page's p95 over its idle p95.
        **{
            f"{mode} landing p95 backlog/idle": spread(
                [landing_phases(r[mode])["backlog"]["p95_ms"] / r[mode]["landing"]["idle"]["p95_ms"] for r in rounds]
            )
            for mode in MODES
        },
        **{
            f"{mode}/combined landing p95 during backlog": spread(
                [
                    r[mode]["backlog"]["landing"]["p95_ms"] / r["combined"]["backlog"]["landing"]["p95_ms"]
                    for r in rounds
                ]
            )
            for mode in MODES
            if mode != "combined"
        },
        "split/combined backlog drained per second": spread(
            [
                r["split"]["backlog"]["processed_per_second"] / r["combined"]["backlog"]["processed_per_second"]
                for r in rounds
            ]
        ),
    }
    print(f"{'':44} " + " ".join(f"{mode:>22}" for mode in MODES))
    for name in figures["combined"]:
        cells = [figures[mode][name] for mode in MODES]
        print(
            f"{name:44} "
            + " ".join(
                f"{c['median']:>10.1f} ({c['min']:.1f}-{c['max']:.1f})" if c["median"] is not None else f"{'-':>22}"
                for c in cells
            )
        )
    for name, value in ratios.items():
        print(f"{name:44} {value['median'] if value['median'] is not None else float('nan'):>10.2f}")
    parameters = vars(args) | {"amqp": "(local)", "database": "(local)", "results_dir": str(args.results_dir)}
    return {
        "benchmark": "signup_flood",
        "machine": machine_facts(),
        "parameters": parameters,
        "figures": figures,
        "ratios": ratios,
        "rounds": rounds,
    }


if __name__ == "__main__":
    raise SystemExit(main())
