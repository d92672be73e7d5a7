"""Month-close benchmark: postpay's services as processes against a sequential baseline, same run.

    python -m bench.month_close --clients 10000 --vms 3                 # the default close, twice
    python -m bench.month_close --concurrency 4,8,16,32 --repeat 2      # invoices/s against concurrency
    python -m bench.month_close --scale 100000                          # and once more at N = 100,000

Each close runs on fresh simulators (SolusVM 2 and WHMCS, own processes, injected latency), a fresh
database and bus namespace; every invoice is checked against an independent oracle afterwards, and a
run with a wrong or missing invoice fails the benchmark. Results go to bench/results/month-close-*.json;
``python -m bench.plot`` draws the concurrency plot from them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.baseline import run_baseline
from bench.checking import check_invoices
from bench.close_run import CloseSettings, Infra, run_close
from bench.common import RESULTS, add_server_options, finish_closes
from bench.report import print_report, summarise
from bench.upstreams import start_simulators
from bench.world import World
from shared.logging import configure_logging
from shared.periods import BillingPeriod


def _previous_month() -> str:
    return BillingPeriod.containing(datetime.now(UTC)).previous().key


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000, help="Customers postpay bills (N).")
    parser.add_argument("--vms", type=int, default=3, help="Servers per customer (M).")
    parser.add_argument("--solusvm-latency-ms", type=float, default=20.0)
    parser.add_argument("--whmcs-latency-ms", type=float, default=30.0)
    parser.add_argument("--concurrency", default="16", help="Handler threads per process; a comma list sweeps.")
    parser.add_argument("--prefetch", type=int, default=64)
    parser.add_argument("--collectors", type=int, default=1, help="usage-collector processes.")
    parser.add_argument("--invoicers", type=int, default=1, help="invoicer processes.")
    parser.add_argument("--repeat", type=int, default=2, help="Closes per setting (the machine is shared: noisy).")
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=200,
        help="Customers the sequential baseline bills (0: no baseline); extrapolated to N.",
    )
    parser.add_argument("--scale", type=int, default=0, help="Also close once for this many customers (memory).")
    parser.add_argument(
        "--scale-concurrency",
        type=int,
        default=16,
        help="Concurrency of the --scale run (compared with the N run at the same setting).",
    )
    parser.add_argument("--period", default=_previous_month(), help="The month to close (default: last month).")
    parser.add_argument("--log-level", default="INFO", help="postpay's log level (INFO, as in production).")
    parser.add_argument("--profile", action="store_true", help="py-spy every postpay process (needs py-spy).")
    parser.add_argument(
        "--code",
        default=None,
        help="Run postpay's processes from this source tree instead (e.g. an older commit, "
        "extracted with git archive): before/after on the same machine, same hour.",
    )
    parser.add_argument("--stall-seconds", type=float, default=120.0)
    parser.add_argument("--name", default="month-close", help="Results file prefix.")
    parser.add_argument("--logs", type=Path, default=None, help="Keep the processes' logs here.")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="Where the results JSON goes.")
    add_server_options(parser)
    args = parser.parse_args(argv)
    args.concurrency_levels = [int(part) for part in str(args.concurrency).split(",") if part.strip()]
    return args


def one_close(
    args: argparse.Namespace, world: World, settings: CloseSettings, log_dir: Path, baseline: bool
) -> dict[str, Any]:
    """Fresh simulators, one postpay close, the baseline if asked, then every invoice checked."""
    log_dir.mkdir(parents=True, exist_ok=True)
    sims = start_simulators(
        world, solusvm_latency_ms=args.solusvm_latency_ms, whmcs_latency_ms=args.whmcs_latency_ms, log_dir=log_dir
    )
    try:
        figures = run_close(world, settings, Infra(args.amqp, args.database), sims, log_dir)
        billed = list(range(1, world.clients + 1))
        if baseline:
            sample = world.baseline_ids
            figures["baseline"] = run_baseline(world, sims.solusvm_url, sims.whmcs_url, sample)
            billed += list(sample)
        check = check_invoices(world, sims.whmcs_invoices(), billed, datetime.now(UTC))
        figures["check"] = check.as_dict()
        figures["create_invoice_calls"] = sims.whmcs_calls().get("CreateInvoice", 0)
        if figures["create_invoice_calls"] != len(billed):
            check.problem(f"{figures['create_invoice_calls']} CreateInvoice calls for {len(billed)} invoices")
            figures["check"] = check.as_dict()
    finally:
        sims.stop()
    _announce(figures)
    return figures


def _announce(figures: dict[str, Any]) -> None:
    check = figures["check"]
    print(
        f"  N={figures['clients']} concurrency={figures['settings']['concurrency']}: "
        f"{figures['invoices_per_second']:.0f} invoices/s, {figures['wall_seconds_to_last_invoice']:.1f}s, "
        f"{figures['cpu_ms_per_invoice']:.2f} CPU-ms/invoice, peak RSS "
        + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in figures["peak_rss_mib"].items())
        + f"; check {'ok' if check['ok'] else 'FAILED'} ({check['invoices_found']}/{check['expected_invoices']})",
        flush=True,
    )
    if "baseline" in figures:
        baseline = figures["baseline"]
        print(
            f"  sequential baseline: {baseline['invoices_per_second']:.1f} invoices/s over "
            f"{baseline['sample_clients']} clients",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The driver's own upstream calls (the baseline) would log a line each; postpay's processes log as set.
    configure_logging("WARNING")
    period = BillingPeriod.parse(args.period)
    world = World(args.clients, args.vms, period, baseline_clients=args.baseline_sample)
    log_root = args.logs or Path(tempfile.mkdtemp(prefix="postpay-bench-"))
    runs: list[dict[str, Any]] = []
    failed = False
    try:
        plan = [(world, level) for level in args.concurrency_levels for _ in range(args.repeat)]
        if args.scale:
            plan.append((World(args.scale, args.vms, period), args.scale_concurrency))
        for index, (run_world, level) in enumerate(plan, start=1):
            settings = CloseSettings(
                concurrency=level,
                prefetch=args.prefetch,
                collectors=args.collectors,
                invoicers=args.invoicers,
                log_level=args.log_level,
                stall_seconds=args.stall_seconds,
                profile=args.profile,
                code=args.code,
            )
            print(
                f"run {index}/{len(plan)}: {run_world.clients} clients × {run_world.vms} VMs, concurrency {level}",
                flush=True,
            )
            figures = one_close(
                args, run_world, settings, log_root / f"run-{index}", baseline=index == 1 and args.baseline_sample > 0
            )
            runs.append(figures)
            failed = failed or not figures["check"]["ok"] or figures["parked"] > 0
    finally:
        summary = None
        if runs:
            summary = summarise(runs, args)
            print_report(summary)
    return finish_closes("month_close", args, summary, runs, log_root, failed)


if __name__ == "__main__":
    sys.exit(main())
