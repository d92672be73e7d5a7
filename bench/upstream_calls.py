"""Upstream calls: CPU per call of postpay's SolusVM 2 and WHMCS clients, by HTTP client, same run.

The three calls a month close makes per customer (period usage, the client's currency, the invoice),
through postpay's own clients against the simulators with their injected latency, once through
``httpx.Client`` over the ``http.client`` transport (what the clients used before issue 21's upstream
work; httpx's default httpcore transport before that one) and once through ``UpstreamHttp``, which
sends through the same transport without httpx's request and response layer (what they use now).
Rounds interleave the two, so a slow minute on this shared machine hits both; the figure that matters
is each round's ratio.

    python -m bench.upstream_calls --customers 300 --threads 1,16 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bench.baseline import bill_customer
from bench.common import RESULTS, machine_facts, results_path
from bench.simulator import SOLUSVM_TOKEN, WHMCS_IDENTIFIER, WHMCS_SECRET
from bench.upstreams import start_simulators
from bench.world import World
from shared.logging import configure_logging
from shared.periods import BillingPeriod
from shared.upstream.http import HttpClient, NoCookies, Timeouts, UpstreamHttp
from shared.upstream.solusvm import SolusVMClient
from shared.upstream.transport import StdlibTransport
from shared.upstream.whmcs import WhmcsClient

CALLS_PER_CUSTOMER = 3
TRANSPORTS: dict[str, Callable[[], HttpClient]] = {
    "httpx.Client over http.client": lambda: httpx.Client(
        timeout=Timeouts().as_httpx(), cookies=NoCookies(), transport=StdlibTransport(max_connections=64)
    ),
    "UpstreamHttp (postpay)": lambda: UpstreamHttp(Timeouts(), max_connections=64),
}


def measure(world: World, urls: tuple[str, str], transport: Callable[[], HttpClient], threads: int) -> dict[str, float]:
    solusvm_http, whmcs_http = transport(), transport()
    solusvm = SolusVMClient(urls[0], SecretStr(SOLUSVM_TOKEN), http=solusvm_http)
    whmcs = WhmcsClient(urls[1], SecretStr(WHMCS_IDENTIFIER), SecretStr(WHMCS_SECRET), http=whmcs_http)
    ids = list(range(1, world.clients + 1))
    invoices: list[int] = []
    errors: list[BaseException] = []

    def work(share: list[int]) -> None:
        try:
            invoices.extend(bill_customer(world, solusvm, whmcs, n) for n in share)
        except BaseException as exc:
            errors.append(exc)

    try:
        bill_customer(world, solusvm, whmcs, ids[0])  # connections open before the clock starts
        started, cpu_started = time.perf_counter(), time.process_time()
        workers = [threading.Thread(target=work, args=(ids[n::threads],)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        solusvm_http.close()
        whmcs_http.close()
    if errors:
        raise RuntimeError(f"{len(errors)} calling threads failed") from errors[0]
    calls = CALLS_PER_CUSTOMER * len(invoices)
    return {
        "seconds": seconds,
        "calls": calls,
        "invoices": len(set(invoices)),
        "cpu_ms_per_call": 1000 * cpu / calls,
        "calls_per_second": calls / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--threads", default="1,16", help="Calling threads; a comma list runs each.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--solusvm-latency-ms", type=float, default=20.0)
    parser.add_argument("--whmcs-latency-ms", type=float, default=30.0)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    # The clients log a line per call, as in production; here to a file, not the terminal.
    with (Path(tempfile.gettempdir()) / "postpay-upstream-calls.log").open("w") as log:
        configure_logging("INFO", stream=log)
        run(args)
    return 0


def run(args: argparse.Namespace) -> None:
    world = World(args.customers, 3, BillingPeriod.containing(datetime.now(UTC)).previous())
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="postpay-upstream-calls-") as sim_logs:
        sims = start_simulators(
            world,
            solusvm_latency_ms=args.solusvm_latency_ms,
            whmcs_latency_ms=args.whmcs_latency_ms,
            log_dir=Path(sim_logs),
        )
        try:
            for threads in [int(t) for t in args.threads.split(",")]:
                for n in range(args.repeat):
                    figures = {
                        name: measure(world, (sims.solusvm_url, sims.whmcs_url), make, threads)
                        for name, make in TRANSPORTS.items()
                    }
                    rounds.append({"threads": threads, "round": n + 1, "figures": figures})
                    print(
                        f"threads={threads} round {n + 1}: "
                        + ", ".join(f"{name} {f['cpu_ms_per_call']:.3f} CPU-ms/call" for name, f in figures.items()),
                        flush=True,
                    )
        finally:
            sims.stop()
    summary = summarise(rounds)
    print(f"{'threads':>7} {'httpx.Client CPU-ms/call':>26} {'UpstreamHttp CPU-ms/call':>24} {'ratio (median)':>15}")
    for row in summary:
        print(
            f"{row['threads']:>7} {row['baseline_median']:>26.3f} {row['postpay_median']:>24.3f} "
            f"{row['ratio_median']:>15.2f}"
        )
    path = results_path("upstream-calls", args.results_dir)
    parameters = vars(args) | {"results_dir": str(args.results_dir)}
    path.write_text(
        json.dumps(
            {
                "benchmark": "upstream_calls",
                "machine": machine_facts(),
                "parameters": parameters,
                "summary": summary,
                "rounds": rounds,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"recorded {path}")


def summarise(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    baseline, postpay = TRANSPORTS
    summary = []
    for threads in sorted({r["threads"] for r in rounds}):
        mine = [r["figures"] for r in rounds if r["threads"] == threads]
        summary.append(
            {
                "threads": threads,
                "baseline_median": statistics.median(f[baseline]["cpu_ms_per_call"] for f in mine),
                "postpay_median": statistics.median(f[postpay]["cpu_ms_per_call"] for f in mine),
                # Each round's own ratio: both transports ran in it, minutes apart at most.
                "ratio_median": statistics.median(
                    f[postpay]["cpu_ms_per_call"] / f[baseline]["cpu_ms_per_call"] for f in mine
                ),
            }
        )
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
