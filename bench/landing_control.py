"""Landing-page control: the signup's landing page with no postpay work beside it, idle and next to CPU
hogs that have nothing to do with postpay.

Why it exists: bench.signup_flood reports the landing page's p95 rising while the signup handlers work
off a backlog, even with the handlers at niceness 19. That rise mixes two causes: competing CPU as such
(anything runnable on the machine's cores, however niced) and the signup handlers' own work (their
database and broker traffic, the sink, the relay). This control runs only ``postpay run signup-web`` —
no handlers, no registrations — and puts plain CPU load beside it, so the flood's landing-page figures
can be read against what CPU competition alone costs the page on the same machine in the same hour.

On a fresh bench database and bus namespace, with the SolusVM 2 simulator and the SMTP sink the web
expects, the landing page is probed every ``--probe-interval`` s for ``--seconds`` in each phase, for
``--rounds`` rounds:

- ``idle``: nothing else of ours runs;
- ``niced_spinners``: two processes spinning on the CPU at niceness 19;
- ``niced_spinners_and_duty``: the same plus one process at niceness 0 busy 40 % of every 10 ms.

Printed and recorded per phase: p50/p95/max, and the ratio of its p95 to the same round's idle p95.

    python -m bench.landing_control --seconds 20 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.close_run import bench_database
from bench.common import RESULTS, add_server_options, machine_facts, results_path, spread
from bench.flood_clients import latency, signup_upstreams
from bench.processes import PYTHON, ROOT, Child, child_env, start, stop_all
from bench.signup_flood import Signup, watch_landing

SPIN = "while True: pass"
DUTY_SHARE, DUTY_PERIOD = 0.4, 0.010
# Busy until DUTY_SHARE of the period has gone, then asleep until the period's end (not for a fixed time,
# so a late wake-up does not stretch the period and lower the share).
DUTY = (
    "import time\n"
    "while True:\n"
    "    began = time.perf_counter()\n"
    f"    while time.perf_counter() - began < {DUTY_SHARE * DUTY_PERIOD}:\n"
    "        pass\n"
    f"    time.sleep(max(0.0, began + {DUTY_PERIOD} - time.perf_counter()))\n"
)
# Each phase: (niceness, program) of the processes beside the web. ``nice -n`` adds to the benchmark's own
# niceness (0 unless it was started niced): the hogs' actual niceness is recorded with each phase.
PHASES: dict[str, list[tuple[int, str]]] = {
    "idle": [],
    "niced_spinners": [(19, SPIN), (19, SPIN)],
    "niced_spinners_and_duty": [(19, SPIN), (19, SPIN), (0, DUTY)],
}


def signup_options(args: argparse.Namespace) -> argparse.Namespace:
    """What bench.signup_flood's Signup reads of a flood's options. No registration is posted here, so
    the per-IP limit it derives from them only has to be a valid one; no handler runs to be niced."""
    return argparse.Namespace(
        amqp=args.amqp,
        log_level=args.log_level,
        concurrency=args.concurrency,
        registrations=1,
        backlog=0,
        handler_niceness=0,
        web_cpus=None,  # the web shares the machine with the hogs: that is what is measured
    )


def start_hogs(phase: str, log_dir: Path, round_: int) -> list[Child]:
    hogs: list[Child] = []
    try:
        for number, (niceness, program) in enumerate(PHASES[phase], 1):
            hogs.append(
                start(
                    f"hog-{round_}-{phase}-{number}",
                    "hog",
                    ["nice", "-n", str(niceness), PYTHON, "-c", program],
                    env=child_env({}),
                    log_dir=log_dir,
                    cwd=ROOT,
                )
            )
    except BaseException:
        stop_all(hogs)
        raise
    return hogs


def measure_phase(
    phase: str, round_: int, args: argparse.Namespace, spawn: Any, signup: Signup, log_dir: Path
) -> dict[str, Any]:
    hogs = start_hogs(phase, log_dir, round_)
    try:
        # The prober's start-up (a spawned interpreter, a first fetch) lets the hogs get going first.
        prober, stop, probes = watch_landing(spawn, signup, args)
        try:
            began = time.time()
            time.sleep(args.seconds)
            ended = time.time()
            stop.set()
            samples = probes.get(timeout=60)
        finally:
            stop.set()
            prober.join(30)
            if prober.is_alive():
                prober.kill()
        niceness = [os.getpriority(os.PRIO_PROCESS, hog.pid) for hog in hogs if hog.alive()]
        if len(niceness) != len(hogs):
            raise RuntimeError(f"a hog of {phase} exited:\n" + "\n".join(hog.tail() for hog in hogs))
    finally:
        stop_all(hogs)
    return latency(samples, began, ended) | {"hog_niceness": niceness}


def summary(number: int, round_: dict[str, dict[str, Any]]) -> str:
    return f"round {number}: " + "; ".join(
        f"{phase} p50/p95/max {r['p50_ms']:.1f}/{r['p95_ms']:.1f}/{r['max_ms']:.1f} ms"
        f" (p95 x{r['p95_over_idle']:.2f} idle, {r['samples']} samples, {r['failed']} failed)"
        for phase, r in round_.items()
    )


def report(
    rounds: list[dict[str, dict[str, Any]]], args: argparse.Namespace, machine: dict[str, Any]
) -> dict[str, Any]:
    figures = {
        phase: {
            name: spread([r[phase][name] for r in rounds]) for name in ("p50_ms", "p95_ms", "max_ms", "p95_over_idle")
        }
        for phase in PHASES
    }
    print(f"{'':26} " + " ".join(f"{name:>20}" for name in ("p50 ms", "p95 ms", "max ms", "p95 / idle p95")))
    for phase, cells in figures.items():
        print(
            f"{phase:26} "
            + " ".join(
                f"{c['median']:>9.2f} ({c['min']:.1f}-{c['max']:.1f})" if c["median"] is not None else f"{'-':>20}"
                for c in cells.values()
            )
        )
    parameters = vars(args) | {"amqp": "(local)", "database": "(local)", "results_dir": str(args.results_dir)}
    return {
        "benchmark": "landing_control",
        "machine": machine_facts() | machine,
        "parameters": parameters | {"duty_share": DUTY_SHARE, "duty_period_seconds": DUTY_PERIOD},
        "phases": {phase: [{"niceness": n, "program": p} for n, p in hogs] for phase, hogs in PHASES.items()},
        "figures": figures,
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="Landing-page probing per phase.")
    parser.add_argument("--rounds", type=int, default=2, help="Rounds of every phase (report the spread).")
    parser.add_argument("--probe-interval", type=float, default=0.2, help="Seconds between landing-page fetches.")
    parser.add_argument(
        "--concurrency", type=int, default=0, help="POSTPAY_CONCURRENCY of signup-web (0: postpay's default)."
    )
    parser.add_argument("--log-level", default="INFO", help="POSTPAY_LOG_LEVEL of signup-web.")
    add_server_options(parser)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_average = os.getloadavg()  # the machine is shared: what else ran as the control began
    log_dir = Path(tempfile.mkdtemp(prefix="postpay-landing-control-"))
    spawn = multiprocessing.get_context("spawn")
    rounds: list[dict[str, dict[str, Any]]] = []
    with signup_upstreams(spawn, log_dir) as helpers, bench_database(args.database) as database_url:
        signup = Signup("control", signup_options(args), log_dir, helpers, database_url)
        try:
            web = signup.start("signup-web")
            signup.serving(web)
            web_niceness = os.getpriority(os.PRIO_PROCESS, web.pid)
            for number in range(1, args.rounds + 1):
                round_ = {phase: measure_phase(phase, number, args, spawn, signup, log_dir) for phase in PHASES}
                for figures in round_.values():
                    figures["p95_over_idle"] = figures["p95_ms"] / round_["idle"]["p95_ms"]
                rounds.append(round_)
                print(summary(number, round_), flush=True)
        finally:
            signup.close()
    result = report(rounds, args, {"load_average_at_start": list(load_average), "web_niceness": web_niceness})
    path = results_path("landing-control", args.results_dir)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"recorded {path} (process logs in {log_dir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
