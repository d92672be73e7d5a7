"""Invoices/s against consumer concurrency, from a month-close results file.

    python -m bench.plot bench/results/month-close-<stamp>.json --output docs/month-close-concurrency.png

Every run is a dot, the median of each setting a line; the sequential baseline and the target are
dashed lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.report import TARGETS


def plot(result: dict, output: Path) -> None:
    clients = result["parameters"]["clients"]
    settings = [s for s in result["summary"]["settings"] if s["clients"] == clients]
    runs = [r for r in result["runs"] if r["clients"] == clients]
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    axes.scatter(
        [r["settings"]["concurrency"] for r in runs],
        [r["invoices_per_second"] for r in runs],
        color="tab:blue",
        alpha=0.5,
        label="postpay, each run",
    )
    axes.plot(
        [s["concurrency"] for s in settings],
        [s["invoices_per_second"]["median"] for s in settings],
        color="tab:blue",
        marker="o",
        label="postpay, median",
    )
    baseline = result["summary"].get("baseline")
    if baseline:
        axes.axhline(
            baseline["invoices_per_second"],
            color="tab:gray",
            linestyle="--",
            label=f"sequential baseline ({baseline['invoices_per_second']:.1f}/s)",
        )
    axes.axhline(TARGETS["invoices_per_second"], color="tab:red", linestyle=":", label="target (300/s)")
    axes.set_xscale("log", base=2)
    axes.set_xticks([s["concurrency"] for s in settings], [str(s["concurrency"]) for s in settings])
    axes.set_xlabel("handler threads per process (POSTPAY_CONCURRENCY)")
    axes.set_ylabel("invoices/s, close to last invoice")
    parameters = result["parameters"]
    axes.set_title(
        f"Month close, {clients:,} customers × {parameters['vms']} VMs, "
        f"latency {parameters['solusvm_latency_ms']:.0f}/{parameters['whmcs_latency_ms']:.0f} ms "
        f"(SolusVM/WHMCS)",
        fontsize=9,
    )
    axes.set_ylim(bottom=0, top=max(TARGETS["invoices_per_second"], *(r["invoices_per_second"] for r in runs)) * 1.1)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="center right")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--output", type=Path, default=Path("docs/month-close-concurrency.png"))
    args = parser.parse_args()
    plot(json.loads(args.results.read_text()), args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
