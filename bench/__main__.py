"""Every benchmark, one after the other: ``python -m bench`` (the README's one-line command).

Each runs with its own defaults and writes its results JSON into bench/results; ``--only a,b`` picks
some, ``--list`` names them. Benchmarks print figures and ratios measured in the same run; none of them
is a pass/fail test (the machine they run on may be shared and noisy).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

# In the order a reader of docs/benchmarks.md meets them. bench.compare is left out: it pairs two runs
# the operator names.
BENCHMARKS = [
    "month_close",
    "pacing",
    "bus_throughput",
    "upstream_calls",
    "meter_sweep",
    "meter_accuracy",
    "signup_flood",
    "landing_control",
    "idle",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="Comma-separated benchmark names (default: all).")
    parser.add_argument("--list", action="store_true", help="Name the benchmarks and stop.")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    chosen = [name for name in args.only.split(",") if name] or BENCHMARKS
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    failed = []
    for name in chosen:
        print(f"\n=== bench.{name} ===", flush=True)
        started = time.monotonic()
        status = importlib.import_module(f"bench.{name}").main([])
        print(f"=== bench.{name}: exit {status or 0} after {time.monotonic() - started:.0f} s ===", flush=True)
        if status:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
