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

With ``--web-cpus`` (and ``--pin-servers``), the web and the prober get CPUs of their own and
everything else the rest, as a deployment would place them (bench.cpu_pinning).

The spawned helper processes (load generator, prober, SMTP sink) are in bench.flood_clients, the
table and the results JSON in bench.signup_flood_report.

    python -m bench.signup_flood --registrations 2000 --repeat 2
    python -m bench.signup_flood --repeat 1 --web-cpus 0 --pin-servers
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench.close_run import all_services, bench_database
from bench.common import RESULTS, add_server_options, results_path
from bench.cpu_pinning import cpu_list, cpus_argument, on_cpus, servers_pinned
from bench.flood_clients import flood, latency, percentile, probe, signup_upstreams
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
from bench.signup_flood_report import report, summary
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
STALL_SECONDS = 120.0


# -- one mode ---------------------------------------------------------------------------------------
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

    def cpus(self, part: str) -> frozenset[int] | None:
        """With --web-cpus: the web's CPUs for signup-web, every CPU for the combined process (it is
        both), the rest for the handlers."""
        web = self.args.web_cpus
        if web is None:
            return None
        rest = frozenset(os.sched_getaffinity(0)) - web  # the benchmark itself runs on the rest
        return {"signup-web": web, "signup": web | rest}.get(part, rest)

    def start(self, part: str, *, ready: bool = True) -> Child:
        self.starts += 1
        health = free_port()
        child = start(
            f"{self.mode}-{part}-{self.starts}",
            "postpay",
            on_cpus([PYTHON, "-m", "postpay.cli", "run", part, "--health-port", str(health)], self.cpus(part)),
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
    # The prober stands in for a customer's browser on another machine: with --web-cpus, on the web's CPUs.
    prober = spawn.Process(
        target=probe,
        args=(signup.landing, args.probe_interval, ready, stop, probes, signup.cpus("signup-web")),
        daemon=True,
    )
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
        "cpus": {child.name: cpu_list(os.sched_getaffinity(child.popen.pid)) for child in children},
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
    parser.add_argument(
        "--web-cpus",
        type=cpus_argument,
        default=None,
        help="CPUs (as taskset -c: 0, 0,2-3) for signup-web and the prober alone; the rest run everything else.",
    )
    parser.add_argument(
        "--pin-servers",
        action="store_true",
        help="With --web-cpus, also move PostgreSQL and RabbitMQ to the other CPUs for the run (as their owner or root).",
    )
    add_server_options(parser)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.pin_servers and args.web_cpus is None:
        parser.error("--pin-servers needs --web-cpus")
    everywhere = frozenset(os.sched_getaffinity(0))
    rest = None if args.web_cpus is None else everywhere - args.web_cpus
    if rest is not None:
        os.sched_setaffinity(0, rest)  # before any helper starts: they, the loader and the sink inherit it
    try:
        return flood_and_record(args, rest)
    finally:
        os.sched_setaffinity(0, everywhere)  # a caller (a test) gets its thread back as it was


def flood_and_record(args: argparse.Namespace, rest: frozenset[int] | None) -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="postpay-signup-flood-"))
    spawn = multiprocessing.get_context("spawn")
    rounds: list[dict[str, dict[str, Any]]] = []
    with servers_pinned(rest if args.pin_servers else None), signup_upstreams(spawn, log_dir) as helpers:
        for number in range(args.repeat):
            order = list(MODES) if number % 2 == 0 else list(reversed(MODES))  # neither always goes first
            rounds.append({mode: run_mode(mode, args, log_dir, spawn, helpers) for mode in order})
            print(f"round {number + 1}: " + summary(rounds[-1]), flush=True)
    result = report(rounds, args, list(MODES))
    path = results_path("signup-flood", args.results_dir)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"recorded {path} (process logs in {log_dir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
