"""The processes around a signup under test, and what their samples say.

An SMTP sink (the verification emails go somewhere), a load generator (``flood``: registrations posted
over keep-alive connections as fast as they are answered) and a landing-page prober (``probe``), each
meant to run in a ``multiprocessing`` spawn child so none shares the benchmark's interpreter or GIL:
they stay at module level, where a spawned child can import them. ``latency`` turns the prober's samples
in a time window into the landing page's p50/p95/max. ``signup_upstreams`` starts the SMTP sink and the
SolusVM 2 simulator (the landing page's plans) that a signup under test talks to.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.processes import PYTHON, ROOT, child_env, free_port, start, stop_all, wait_http

PASSWORD = "Tr0ub4dor&3-horse-staple"


def smtp_sink(port: int, ready: Any, stop: Any) -> None:
    from simulators.smtp import SmtpCapture

    with SmtpCapture(port=port):
        ready.set()
        stop.wait()


@contextmanager
def signup_upstreams(spawn: Any, log_dir: Path) -> Iterator[dict[str, Any]]:
    """The SMTP sink (a spawn child) and the SolusVM 2 simulator, both stopped on leaving; yields the
    ``smtp_port`` and ``solusvm_url`` a signup's settings point at."""
    smtp_port, solusvm_port = free_port(), free_port()
    ready, stop_sink = spawn.Event(), spawn.Event()
    # Daemonic: a benchmark that fails half-way must not leave its interpreter waiting for the sink at exit.
    sink = spawn.Process(target=smtp_sink, args=(smtp_port, ready, stop_sink), daemon=True)
    sink.start()
    try:
        solusvm = start(
            "sim-solusvm",
            "simulator",
            [PYTHON, "-m", "postpay.cli", "sim", "solusvm", "--port", str(solusvm_port)],
            env=child_env({}),
            log_dir=log_dir,
            cwd=ROOT,
        )
        try:
            assert ready.wait(60), "the SMTP sink did not start"
            wait_http(solusvm, f"http://127.0.0.1:{solusvm_port}/_sim/state")
            yield {"smtp_port": smtp_port, "solusvm_url": f"http://127.0.0.1:{solusvm_port}"}
        finally:
            stop_all([solusvm])
    finally:
        stop_sink.set()
        sink.join(10)


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


def probe(url: str, interval: float, ready: Any, stop: Any, results: Any, cpus: frozenset[int] | None = None) -> None:
    """GET the landing page every ``interval`` s (one at a time) until stopped; put [(at, seconds, status)].
    ``cpus``: where to run (the web's own, with bench.signup_flood's --web-cpus)."""
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
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
