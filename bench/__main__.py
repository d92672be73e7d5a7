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
# Runs beside a benchmark's defaults that a verdict in docs/benchmarks.md rests on: the signup flood with
# the web on a core of its own and PostgreSQL and RabbitMQ off it (moving them needs their owner or root).
VARIANTS: dict[str, list[list[str]]] = {
    "signup_flood": [["--repeat", "1", "--web-cpus", "0", "--pin-servers"]],
}


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
        for arguments in [[], *VARIANTS.get(name, [])]:
            label = " ".join([f"bench.{name}", *arguments])
            print(f"\n=== {label} ===", flush=True)
            started = time.monotonic()
            status = run(name, arguments)
            print(f"=== {label}: exit {status} after {time.monotonic() - started:.0f} s ===", flush=True)
            if status:
                failed.append(label)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def run(name: str, arguments: list[str]) -> int:
    """One benchmark's exit status; arguments it refuses (argparse exits) fail it, not the whole run."""
    try:
        return int(importlib.import_module(f"bench.{name}").main(arguments) or 0)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1


if __name__ == "__main__":
    sys.exit(main())
