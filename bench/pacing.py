"""Pacing benchmark: a month close against upstreams of limited capacity, paced by postpay's AIMD.

    python -m bench.pacing                                   # 10,000 customers, C = 8 and 32, 1 and 3 invoicers
    python -m bench.pacing --clients 1000 --capacity 8 --invoicers 3 --no-fixed

Both simulators get the capacity model (simulators/capacity.py): up to C requests in flight answer at
the base latency (default the realistic 250 ms WHMCS, 100 ms SolusVM 2), beyond C each takes base × n/C
(the throughput stays C/base, only latency grows), past 2C they are shed with a 503. So the close can
go no faster than "the time C allows": WHMCS's two calls per customer (the client's currency, the
invoice) at 250 ms, C at a time, N × 2 × 0.25 / C seconds.

Each setting is closed on fresh simulators, database and bus namespace with postpay's default settings
(pacing on) and, for the capacities of ``--fixed-at``, again with the same handler threads and pacing
off (``POSTPAY_UPSTREAM_PACING=false``: the pressure is threads × processes, as before), for contrast.
A close that cannot finish (a shed CreateInvoice is an unknown outcome, settled only after the
invoicer's quiet time of 10 minutes) is stopped at a deadline (3× the time C allows + 60 s) and
reported as unfinished. Every finished close's invoices are checked against the oracle, as in
bench.month_close. The sequential baseline bills a sample at the same latencies on
simulators without a capacity limit. Results go to bench/results/pacing-*.json;
``python -m bench.pacing_plot`` draws them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.baseline import run_baseline
from bench.checking import check_invoices
from bench.close_run import CloseSettings, Infra, run_close
from bench.common import RESULTS, add_server_options, finish_closes
from bench.upstreams import Simulators, start_simulators
from bench.world import World
from shared.logging import configure_logging
from shared.periods import BillingPeriod
from shared.settings import KernelSettings

TARGETS = {"time_over_allowed": 1.2, "upstream_error_share": 0.001, "ratio_vs_baseline": 30.0}
WHMCS_CALLS_PER_CUSTOMER = 2  # GetClientsDetails (the currency) and CreateInvoice
SOLUSVM_CALLS_PER_CUSTOMER = 1  # the period's usage
DEFAULT_CONCURRENCY: int = KernelSettings.model_fields["concurrency"].default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000, help="Customers postpay bills (N).")
    parser.add_argument("--vms", type=int, default=3, help="Servers per customer.")
    parser.add_argument("--capacity", default="8,32", help="C of both simulators; a comma list sweeps.")
    parser.add_argument("--invoicers", default="1,3", help="invoicer processes; a comma list sweeps.")
    parser.add_argument("--solusvm-latency-ms", type=float, default=100.0)
    parser.add_argument("--whmcs-latency-ms", type=float, default=250.0)
    parser.add_argument("--overload", choices=["unavailable", "timeout"], default="unavailable")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="POSTPAY_CONCURRENCY (handler threads); unset: postpay's default."
    )
    parser.add_argument("--no-fixed", action="store_true", help="Skip the fixed-concurrency contrast runs.")
    parser.add_argument(
        "--fixed-at", default=None, help="Capacities (comma list) that get a fixed-concurrency run; unset: every one."
    )
    parser.add_argument(
        "--deadline-factor",
        type=float,
        default=3.0,
        help="A close is stopped (reported unfinished) after this many times the time C allows (+60 s).",
    )
    parser.add_argument(
        "--baseline-sample", type=int, default=30, help="Customers the sequential baseline bills (0: none)."
    )
    parser.add_argument("--period", default=BillingPeriod.containing(datetime.now(UTC)).previous().key)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--stall-seconds", type=float, default=900.0, help="Fail a close without progress this long.")
    parser.add_argument("--name", default="pacing", help="Results file prefix.")
    parser.add_argument("--logs", type=Path, default=None, help="Keep the processes' logs here.")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    add_server_options(parser)
    args = parser.parse_args(argv)
    args.capacities = [int(part) for part in str(args.capacity).split(",") if part.strip()]
    args.invoicer_counts = [int(part) for part in str(args.invoicers).split(",") if part.strip()]
    args.fixed_capacities = (
        []
        if args.no_fixed
        else args.capacities
        if args.fixed_at is None
        else [int(part) for part in str(args.fixed_at).split(",") if part.strip()]
    )
    return args


def allowed_seconds(args: argparse.Namespace, clients: int, capacity: int) -> float:
    """The shortest close C permits: the busier upstream's calls, C at a time, each at its base latency."""
    whmcs = clients * WHMCS_CALLS_PER_CUSTOMER * args.whmcs_latency_ms / 1000 / capacity
    solusvm = clients * SOLUSVM_CALLS_PER_CUSTOMER * args.solusvm_latency_ms / 1000 / capacity
    return max(whmcs, solusvm)


class InFlightSampler:
    """Requests in flight at each simulator, twice a second, during a close (the shape of the pacing)."""

    def __init__(self, sims: Simulators) -> None:
        self.sims = sims
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="in-flight-sampler", daemon=True)
        self._started = 0.0

    def __enter__(self) -> InFlightSampler:
        self._started = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(0.5):
                try:
                    solusvm = client.get(f"{self.sims.solusvm_url}/_sim/faults").json()["capacity"]["in_flight"]
                    whmcs = client.get(f"{self.sims.whmcs_url}/_sim/faults").json()["capacity"]["in_flight"]
                except (httpx.HTTPError, KeyError, ValueError):
                    continue
                self.samples.append((round(time.time() - self._started, 2), int(solusvm), int(whmcs)))


def _errors(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    admitted = after.get("admitted", 0) - before.get("admitted", 0)
    shed = after.get("shed", 0) - before.get("shed", 0)
    total = admitted + shed
    return {
        "requests": total,
        "shed": shed,
        "share": shed / total if total else 0.0,
        "peak_in_flight": after.get("peak_in_flight"),
        "slowed": after.get("slowed", 0) - before.get("slowed", 0),
    }


def one_close(
    args: argparse.Namespace, world: World, capacity: int, invoicers: int, paced: bool, log_dir: Path
) -> dict[str, Any]:
    log_dir.mkdir(parents=True, exist_ok=True)
    allowed = allowed_seconds(args, world.clients, capacity)
    env = [] if paced else [("POSTPAY_UPSTREAM_PACING", "false")]
    if args.concurrency is not None:
        env.append(("POSTPAY_CONCURRENCY", str(args.concurrency)))
    settings = CloseSettings(
        concurrency=args.concurrency or DEFAULT_CONCURRENCY,  # postpay's default unless given
        invoicers=invoicers,
        log_level=args.log_level,
        stall_seconds=args.stall_seconds,
        env=tuple(env),
        # A close that cannot finish (a shed CreateInvoice waits out the quiet time) is stopped, not failed.
        deadline_seconds=args.deadline_factor * allowed + 60,
    )
    sims = start_simulators(
        world,
        solusvm_latency_ms=args.solusvm_latency_ms,
        whmcs_latency_ms=args.whmcs_latency_ms,
        log_dir=log_dir,
        capacity=capacity,
        overload=args.overload,
    )
    try:
        before = {product: sims.capacity(product) for product in ("solusvm", "whmcs")}
        with InFlightSampler(sims) as sampler:
            figures = run_close(world, settings, Infra(args.amqp, args.database), sims, log_dir)
        after = {product: sims.capacity(product) for product in ("solusvm", "whmcs")}
        figures["upstream_errors"] = {product: _errors(before[product], after[product]) for product in before}
        figures["in_flight_samples"] = sampler.samples
        figures["create_invoice_calls"] = sims.whmcs_calls().get("CreateInvoice", 0)
        if figures["complete"]:
            figures["check"] = check_invoices(
                world, sims.whmcs_invoices(), range(1, world.clients + 1), datetime.now(UTC)
            ).as_dict()
    finally:
        sims.stop()
    requests = sum(e["requests"] for e in figures["upstream_errors"].values())
    shed = sum(e["shed"] for e in figures["upstream_errors"].values())
    figures.update(
        {
            "capacity": capacity,
            "invoicers": invoicers,
            "paced": paced,
            "allowed_seconds": allowed,
            "time_over_allowed": figures["wall_seconds_to_last_invoice"] / allowed,
            "upstream_error_share": shed / requests if requests else 0.0,
        }
    )
    _announce(figures)
    return figures


def _announce(figures: dict[str, Any]) -> None:
    check = figures.get("check")
    state = ("check ok" if check and check["ok"] else "check FAILED") if check else "UNFINISHED"
    print(
        f"  C={figures['capacity']} invoicers={figures['invoicers']} {'paced' if figures['paced'] else 'fixed'}: "
        f"{figures['invoices']} invoices in {figures['wall_seconds_to_last_invoice']:.1f}s "
        f"({figures['time_over_allowed']:.2f}× the {figures['allowed_seconds']:.1f}s C allows), "
        f"upstream errors {100 * figures['upstream_error_share']:.3f}% "
        f"(shed: SolusVM {figures['upstream_errors']['solusvm']['shed']}, "
        f"WHMCS {figures['upstream_errors']['whmcs']['shed']}; peak in flight "
        f"{figures['upstream_errors']['solusvm']['peak_in_flight']}/{figures['upstream_errors']['whmcs']['peak_in_flight']}), "
        f"{figures['cpu_ms_per_invoice']:.1f} CPU-ms/invoice; {state}",
        flush=True,
    )


def baseline(args: argparse.Namespace, world: World, log_dir: Path) -> dict[str, Any]:
    """The sequential loop at the same latencies, against simulators with no capacity limit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    sims = start_simulators(
        world, solusvm_latency_ms=args.solusvm_latency_ms, whmcs_latency_ms=args.whmcs_latency_ms, log_dir=log_dir
    )
    try:
        figures = run_baseline(world, sims.solusvm_url, sims.whmcs_url, world.baseline_ids)
    finally:
        sims.stop()
    print(
        f"  sequential baseline: {figures['invoices_per_second']:.2f} invoices/s "
        f"({1000 * figures['seconds_per_client_mean']:.0f} ms per customer over {figures['sample_clients']})",
        flush=True,
    )
    return figures


def summarise(runs: list[dict[str, Any]], base: dict[str, Any] | None) -> dict[str, Any]:
    rows = []
    for run in runs:
        ratio = run["invoices_per_second"] / base["invoices_per_second"] if base else None
        row = {
            key: run[key]
            for key in (
                "capacity",
                "invoicers",
                "paced",
                "complete",
                "invoices",
                "wall_seconds_to_last_invoice",
                "allowed_seconds",
                "time_over_allowed",
                "upstream_error_share",
                "invoices_per_second",
                "cpu_ms_per_invoice",
            )
        }
        row |= {
            "ratio_vs_baseline": ratio,
            "all_checked_ok": bool(run.get("check", {}).get("ok")),
            "peak_in_flight": {p: e["peak_in_flight"] for p, e in run["upstream_errors"].items()},
        }
        if run["paced"]:
            row["targets"] = {
                "time_over_allowed": row["time_over_allowed"] <= TARGETS["time_over_allowed"],
                "upstream_error_share": row["upstream_error_share"] <= TARGETS["upstream_error_share"],
                "ratio_vs_baseline": ratio is not None and ratio >= TARGETS["ratio_vs_baseline"],
            }
        rows.append(row)
    return {"rows": rows, "baseline": base, "targets": TARGETS}


def print_report(summary: dict[str, Any]) -> None:
    print(
        f"\n{'C':>3} {'inv':>3} {'mode':>6} {'done':>5} {'s':>7} {'allowed':>8} {'×':>5} {'errors':>8} "
        f"{'inv/s':>6} {'vs seq':>7} {'ok':>3}"
    )
    for row in summary["rows"]:
        ratio = f"{row['ratio_vs_baseline']:.1f}" if row["ratio_vs_baseline"] else "-"
        print(
            f"{row['capacity']:>3} {row['invoicers']:>3} {'paced' if row['paced'] else 'fixed':>6} "
            f"{'yes' if row['complete'] else 'NO':>5} {row['wall_seconds_to_last_invoice']:>7.1f} "
            f"{row['allowed_seconds']:>8.1f} {row['time_over_allowed']:>5.2f} "
            f"{100 * row['upstream_error_share']:>7.3f}% {row['invoices_per_second']:>6.1f} {ratio:>7} "
            f"{'yes' if row['all_checked_ok'] else 'no':>3}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("WARNING")
    period = BillingPeriod.parse(args.period)
    world = World(args.clients, args.vms, period, baseline_clients=args.baseline_sample)
    log_root = args.logs or Path(tempfile.mkdtemp(prefix="postpay-pacing-"))
    runs: list[dict[str, Any]] = []
    base: dict[str, Any] | None = None
    failed = False
    plan = [
        (capacity, invoicers, paced)
        for capacity in args.capacities
        for invoicers in args.invoicer_counts
        for paced in ((True, False) if capacity in args.fixed_capacities else (True,))
    ]
    try:
        if args.baseline_sample:
            base = baseline(args, world, log_root / "baseline")
        for index, (capacity, invoicers, paced) in enumerate(plan, start=1):
            print(
                f"run {index}/{len(plan)}: {world.clients} clients, C={capacity}, {invoicers} invoicer(s), "
                f"{'paced (defaults)' if paced else 'pacing off (fixed threads)'}",
                flush=True,
            )
            figures = one_close(args, world, capacity, invoicers, paced, log_root / f"run-{index}")
            runs.append(figures)
            # A finished close must be exact, paced or not; a fixed one may be left unfinished.
            failed = failed or (figures["complete"] and not figures["check"]["ok"]) or figures["parked"] > 0
    finally:
        summary = None
        if runs:
            summary = summarise(runs, base)
            print_report(summary)
    return finish_closes("pacing", args, summary, runs, log_root, failed)


if __name__ == "__main__":
    sys.exit(main())
