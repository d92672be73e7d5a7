"""Before/after from interleaved month-close runs: paired figures, medians, and one record of them.

On a shared 2-core machine one close against another says little (runs of the same code differ by
±25 %). Alternate the two versions, one close each, many times, and compare the medians and the
pairs instead:

    for i in 1 2 3 4 5 6; do
      python -m bench.month_close --clients 2000 --repeat 1 --baseline-sample 0 --code /tmp/before \\
          --results-dir /tmp/ab/before
      python -m bench.month_close --clients 2000 --repeat 1 --baseline-sample 0 --results-dir /tmp/ab/after
    done
    python -m bench.compare /tmp/ab/before /tmp/ab/after --what "the change being measured"

Runs are paired in the order they were recorded (their file names are timestamps).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench.common import RESULTS, machine_facts, results_path


def load_runs(directory: Path) -> list[dict[str, Any]]:
    runs = []
    for path in sorted(directory.glob("month-close-*.json")):
        record = json.loads(path.read_text())
        if record.get("benchmark") != "month_close":
            continue  # e.g. an earlier comparison's own record, in the same directory
        for run in record["runs"]:
            # "commit" is the benchmark's own tree; "code" is the tree postpay ran from, when not that one.
            runs.append(
                {
                    "file": path.name,
                    "commit": record["machine"]["commit"],
                    "code": record["parameters"].get("code"),
                    "clients": run["clients"],
                    "invoices_per_second": run["invoices_per_second"],
                    "cpu_ms_per_invoice": run["cpu_ms_per_invoice"],
                    "cpu_ms_per_invoice_by_role": run["cpu_ms_per_invoice_by_role"],
                    "check_ok": run["check"]["ok"],
                }
            )
    return runs


def compare(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    if not before or len(before) != len(after):
        raise SystemExit(f"need the same number of runs on each side, got {len(before)} and {len(after)}")
    if not all(run["check_ok"] for run in before + after):
        raise SystemExit("a run failed its invoice check: its speed means nothing")
    pairs = list(zip(before, after, strict=True))
    summary: dict[str, Any] = {"pairs": len(pairs)}
    for figure, higher_is_better in (("invoices_per_second", True), ("cpu_ms_per_invoice", False)):
        gains = [(a[figure] - b[figure]) * (1 if higher_is_better else -1) for b, a in pairs]
        summary[figure] = {
            "before_median": statistics.median(b[figure] for b, _ in pairs),
            "after_median": statistics.median(a[figure] for _, a in pairs),
            "ratio_median": statistics.median(a[figure] / b[figure] for b, a in pairs),
            "pairs_after_better": sum(gain > 0 for gain in gains),
        }
    return {"summary": summary, "before": before, "after": after}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--what", required=True, help="What changed between the two, for the record.")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = compare(load_runs(args.before), load_runs(args.after))
    print(
        f"{'figure':22} {'before (median)':>16} {'after (median)':>15} {'ratio (median of pairs)':>24} "
        f"{'pairs better':>13}"
    )
    for figure in ("invoices_per_second", "cpu_ms_per_invoice"):
        row = result["summary"][figure]
        print(
            f"{figure:22} {row['before_median']:>16.2f} {row['after_median']:>15.2f} {row['ratio_median']:>24.2f} "
            f"{row['pairs_after_better']:>6} of {result['summary']['pairs']}"
        )
    path = results_path("month-close-compare", args.results_dir)
    path.write_text(
        json.dumps(
            {"benchmark": "month_close_compare", "what": args.what, "machine": machine_facts(), **result}, indent=2
        )
        + "\n"
    )
    print(f"recorded {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
