"""The pacing benchmark's figure: close time against the time C allows, and WHMCS's load over a close.

    python -m bench.pacing_plot bench/results/pacing-<stamp>.json --output docs/pacing.png

Left: each close's time over the time the upstream's capacity allows (1.0 is the best possible, the
dotted line the 1.2 target), paced and with fixed threads. Right: requests in flight at the WHMCS
simulator during the closes of one setting (the last one with a fixed run): paced and fixed, against C
and 2C (past which requests are shed); without fixed runs, the paced closes of the largest C.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.pacing import TARGETS


def _label(run: dict[str, Any]) -> str:
    return f"C={run['capacity']}\n{run['invoicers']} inv."


def plot(result: dict[str, Any], output: Path) -> None:
    runs = result["runs"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    settings = sorted({(r["capacity"], r["invoicers"]) for r in runs})
    for offset, paced, color in ((-0.2, True, "tab:blue"), (0.2, False, "tab:orange")):
        xs, ys, hatches = [], [], []
        for index, (capacity, invoicers) in enumerate(settings):
            match = [r for r in runs if (r["capacity"], r["invoicers"], r["paced"]) == (capacity, invoicers, paced)]
            if match:
                xs.append(index + offset)
                ys.append(match[0]["time_over_allowed"])
                hatches.append("" if match[0]["complete"] else "//")
        if not xs:
            continue  # no run of this mode: no bar, no legend entry
        bars = left.bar(xs, ys, width=0.38, color=color, label="paced (defaults)" if paced else "fixed threads")
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
    left.axhline(1.0, color="tab:gray", linewidth=0.8)
    left.axhline(TARGETS["time_over_allowed"], color="tab:red", linestyle=":", label="target (1.2×)")
    left.set_xticks(range(len(settings)), [f"C={c}\n{i} invoicer{'s' if i > 1 else ''}" for c, i in settings])
    left.set_ylabel("close time / time C allows (hatched: unfinished)")
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    left.grid(True, axis="y", alpha=0.3)
    fixed = [r for r in runs if not r["paced"]]
    if fixed:  # paced against fixed threads, one setting
        capacity, invoicers = fixed[-1]["capacity"], fixed[-1]["invoicers"]
        shown = [r for r in runs if (r["capacity"], r["invoicers"]) == (capacity, invoicers)]
        title = f"WHMCS requests in flight, C={capacity}, {invoicers} invoicers"
    else:  # no contrast run: the paced closes of the largest capacity, one line per invoicer count
        capacity = max(r["capacity"] for r in runs)
        shown = [r for r in runs if r["capacity"] == capacity]
        title = f"WHMCS requests in flight, C={capacity}, paced"
    colours = iter(("tab:blue", "tab:purple", "tab:cyan"))
    for run in shown:
        samples = run["in_flight_samples"]
        # The sampler starts before the processes do: time from the first call at either simulator.
        start = next((s[0] for s in samples if s[1] or s[2]), 0.0) - 0.5
        samples = [s for s in samples if s[0] >= start]
        paced_label = f"paced, {run['invoicers']} invoicer{'s' if run['invoicers'] > 1 else ''}"
        right.plot(
            [s[0] - start for s in samples],
            [s[2] for s in samples],
            linewidth=1,
            color=(next(colours, "tab:blue") if not fixed else "tab:blue") if run["paced"] else "tab:orange",
            label=(paced_label if not fixed else "paced (defaults)") if run["paced"] else "fixed threads",
        )
    if shown:
        right.axhline(capacity, color="tab:green", linestyle="--", label=f"C = {capacity}")
        right.axhline(2 * capacity, color="tab:red", linestyle=":", label="2C: shed beyond")
        right.set_title(title, fontsize=9)
        right.set_xlabel("s since the first upstream call of the close")
        right.set_ylabel("in flight at the simulator")
        right.legend(fontsize=8)
        right.grid(True, alpha=0.3)
    parameters = result["parameters"]
    figure.suptitle(
        f"Month close paced by the upstream: {parameters['clients']:,} customers, latency "
        f"{parameters['whmcs_latency_ms']:.0f} ms WHMCS / {parameters['solusvm_latency_ms']:.0f} ms "
        f"SolusVM 2",
        fontsize=10,
    )
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--output", type=Path, default=Path("docs/pacing.png"))
    args = parser.parse_args()
    plot(json.loads(args.results.read_text()), args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
