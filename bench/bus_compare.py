"""Before/after on postpay's own bus paths: ``bus_throughput.postpay_run`` from two source trees, alternated.

The whole ``bus_throughput`` run takes minutes and its raw paths do not change with postpay's code; a
change to the bus is measured on postpay's paths alone, the two trees run in ABBA order (one run each,
in its own process, so neither inherits the other's imports or warm caches), and compared by the
medians and by the pairs:

    python -m bench.bus_compare /tmp/before . --pairs 6 --what "the change being measured"

Each tree must hold ``bench/bus_throughput.py``; both run with this interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, add_server_options, machine_facts, results_path

RUN_ONE = """
import json, sys, tempfile
from pathlib import Path
from bench.bus_throughput import postpay_run
from shared.db import Database, normalise_url
from shared.logging import configure_logging
amqp, database, events, batch, prefetch, concurrency, linger = sys.argv[1:8]
with (Path(tempfile.gettempdir()) / f"postpay-bus-compare-{Path.cwd().name}.log").open("w") as log:
    configure_logging("INFO", stream=log)
    db = Database(normalise_url(database), pool_size=int(concurrency) + 4)
    result = postpay_run(amqp, db, int(events), int(prefetch), int(concurrency), float(linger), batch=int(batch))
print(json.dumps(result))
"""


def run_one(tree: Path, args: argparse.Namespace, events: int, batch: int) -> dict[str, float]:
    """One run; one more if it failed (on this shared machine the broker sometimes misses a connect
    timeout under load), so a pair is not lost to it. A second failure is the code's."""
    try:
        return _run_one(tree, args, events, batch)
    except RuntimeError as exc:
        failed = args.results_dir / f"bus-compare-failed-{tree.name}-{time.time():.0f}.txt"
        failed.parent.mkdir(parents=True, exist_ok=True)
        failed.write_text(str(exc))
        print(f"retrying once ({failed}): {str(exc).splitlines()[-1]}", flush=True)
        return _run_one(tree, args, events, batch)


def _run_one(tree: Path, args: argparse.Namespace, events: int, batch: int) -> dict[str, float]:
    environment = dict(os.environ, PYTHONPATH=str(tree.resolve()))
    command = [sys.executable, "-c", RUN_ONE, args.amqp, args.database, str(events), str(batch)]
    command += [str(args.prefetch), str(args.concurrency), str(args.linger)]
    completed = subprocess.run(command, cwd=tree, env=environment, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"run in {tree} failed:\n{completed.stderr[-3000:]}")
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def summarise(pairs: list[tuple[dict[str, float], dict[str, float]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for figure, higher_is_better in (("events_per_second", True), ("cpu_ms_per_event", False)):
        before = [b[figure] for b, _ in pairs]
        after = [a[figure] for _, a in pairs]
        ratios = [a / b for b, a in zip(before, after, strict=True)]
        better = sum(1 for r in ratios if (r > 1) == higher_is_better and r != 1)
        summary[figure] = {
            "before_median": statistics.median(before),
            "after_median": statistics.median(after),
            "ratio_median": statistics.median(ratios),
            "pairs_after_better": better,
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--what", required=True, help="What the two trees differ by (recorded).")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=64, help="Subscription.batch; 1 measures one by one.")
    parser.add_argument("--prefetch", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--linger", type=float, default=0.02)
    add_server_options(parser)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    pairs: list[tuple[dict[str, float], dict[str, float]]] = []
    for index in range(args.pairs):
        # ABBA: neither side always runs first after the other's cleanup.
        order = ("before", "after") if index % 2 == 0 else ("after", "before")
        results = {side: run_one(getattr(args, side), args, args.events, args.batch) for side in order}
        pairs.append((results["before"], results["after"]))
        print(
            f"pair {index + 1}: "
            + ", ".join(
                f"{side} {results[side]['events_per_second']:.0f}/s {results[side]['cpu_ms_per_event']:.3f} CPU-ms"
                for side in ("before", "after")
            ),
            flush=True,
        )
    summary = summarise(pairs)
    for figure, line in summary.items():
        print(
            f"{figure}: {line['before_median']:.3f} -> {line['after_median']:.3f}, "
            f"after/before {line['ratio_median']:.2f}, after better in {line['pairs_after_better']} of {len(pairs)}"
        )
    parameters = vars(args) | {
        "before": str(args.before),
        "after": str(args.after),
        "amqp": "(local)",
        "database": "(local)",
        "results_dir": str(args.results_dir),
    }
    record = {
        "benchmark": "bus_compare",
        "machine": machine_facts(),
        "what": args.what,
        "parameters": parameters,
        "summary": summary,
        "pairs": [{"before": b, "after": a} for b, a in pairs],
    }
    path = results_path("bus-compare", args.results_dir)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
