"""The month-close figures summarised: medians and spread per setting, the baseline ratio, the targets."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from bench.common import spread

TARGETS = {
    "invoices_per_second": 300.0,  # at least, end to end, default latencies
    "ratio_vs_baseline": 25.0,  # at least
    "cpu_ms_per_invoice": 3.0,  # at most, postpay's own processes
    "rss_change_percent": 20.0,  # at most, either way, 10k → 100k clients
}


def summarise(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["clients"], run["settings"]["concurrency"]), []).append(run)
    settings = []
    for (clients, concurrency), group in sorted(groups.items()):
        processes = sorted({name for run in group for name in run["peak_rss_mib"]})
        settings.append(
            {
                "clients": clients,
                "concurrency": concurrency,
                "runs": len(group),
                "invoices_per_second": spread([r["invoices_per_second"] for r in group]),
                "wall_seconds_to_last_invoice": spread([r["wall_seconds_to_last_invoice"] for r in group]),
                "cpu_ms_per_invoice": spread([r["cpu_ms_per_invoice"] for r in group]),
                "peak_rss_mib": {name: max(r["peak_rss_mib"].get(name, 0.0) for r in group) for name in processes},
                "core_utilisation": {
                    name: statistics.median(r["core_utilisation"][name] for r in group)
                    for name in group[0]["core_utilisation"]
                },
                "all_checked_ok": all(r["check"]["ok"] and r["parked"] == 0 for r in group),
            }
        )
    baseline = next((run["baseline"] for run in runs if "baseline" in run), None)
    default = [s for s in settings if s["clients"] == args.clients]
    best = max(default, key=lambda s: s["invoices_per_second"]["median"]) if default else None
    return {
        "settings": settings,
        "baseline": baseline,
        "best": best,
        "targets": _targets(settings, baseline, best, args),
    }


def _targets(
    settings: list[dict[str, Any]],
    baseline: dict[str, Any] | None,
    best: dict[str, Any] | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    if best is None:
        return {}
    rate = best["invoices_per_second"]["median"]
    targets: dict[str, Any] = {
        "invoices_per_second": {
            "target": f">= {TARGETS['invoices_per_second']:.0f}",
            "figure": rate,
            "met": rate >= TARGETS["invoices_per_second"],
        },
        "cpu_ms_per_invoice": {
            "target": f"<= {TARGETS['cpu_ms_per_invoice']}",
            "figure": best["cpu_ms_per_invoice"]["median"],
            "met": best["cpu_ms_per_invoice"]["median"] <= TARGETS["cpu_ms_per_invoice"],
        },
    }
    if baseline is not None:
        ratio = rate / baseline["invoices_per_second"]
        targets["ratio_vs_baseline"] = {
            "target": f">= {TARGETS['ratio_vs_baseline']:.0f}",
            "figure": ratio,
            "met": ratio >= TARGETS["ratio_vs_baseline"],
        }
    scaled = [s for s in settings if args.scale and s["clients"] == args.scale]
    level = scaled[0]["concurrency"] if scaled else None
    small = [s for s in settings if s["clients"] == args.clients and s["concurrency"] == level]
    if scaled and small:
        change = {
            name: 100 * (scaled[0]["peak_rss_mib"][name] - mib) / mib
            for name, mib in small[0]["peak_rss_mib"].items()
            if name in scaled[0]["peak_rss_mib"]
        }
        targets["rss_change_percent"] = {
            "target": f"within ±{TARGETS['rss_change_percent']:.0f}",
            "figure": change,
            "from_clients": args.clients,
            "to_clients": args.scale,
            "met": all(abs(v) <= TARGETS["rss_change_percent"] for v in change.values()),
        }
    return targets


def print_report(summary: dict[str, Any]) -> None:
    print()
    print(
        f"{'clients':>8} {'conc':>5} {'runs':>4} {'invoices/s (min-max)':>24} {'CPU-ms/inv':>11} "
        f"{'peak RSS MiB':>24} {'sim cores (sol/whm)':>20} {'ok':>3}"
    )
    for s in summary["settings"]:
        rate, cpu = s["invoices_per_second"], s["cpu_ms_per_invoice"]
        rss = "/".join(f"{mib:.0f}" for mib in s["peak_rss_mib"].values())
        utilisation = s["core_utilisation"]
        sims = f"{utilisation.get('sim-solusvm', 0):.2f}/{utilisation.get('sim-whmcs', 0):.2f}"
        print(
            f"{s['clients']:>8} {s['concurrency']:>5} {s['runs']:>4} "
            f"{rate['median']:>8.0f} ({rate['min']:.0f}-{rate['max']:.0f}){'':>5} {cpu['median']:>11.2f} "
            f"{rss:>24} {sims:>20} {'yes' if s['all_checked_ok'] else 'NO':>3}"
        )
    baseline = summary["baseline"]
    if baseline:
        print(
            f"sequential baseline: {baseline['invoices_per_second']:.1f} invoices/s "
            f"({1000 * baseline['seconds_per_client_mean']:.0f} ms per client over {baseline['sample_clients']}; "
            f"{baseline['extrapolated_seconds_for_n']:.0f}s extrapolated to N)"
        )
    for name, target in summary["targets"].items():
        figure = target["figure"]
        shown = ", ".join(f"{k} {v:+.1f}%" for k, v in figure.items()) if isinstance(figure, dict) else f"{figure:.2f}"
        print(f"target {name}: {target['target']}: {shown} -> {'met' if target['met'] else 'NOT met'}")


def markdown(result: dict[str, Any]) -> str:
    """The figures of a results file as the Markdown table docs/benchmarks.md shows."""
    rows = [
        "| customers | concurrency | runs | invoices/s median (min–max) | s to last invoice | "
        "CPU-ms/invoice, postpay | PostgreSQL | RabbitMQ | simulators | peak RSS MiB (collector / invoicer) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result["summary"]["settings"]:
        runs = [
            r
            for r in result["runs"]
            if r["clients"] == s["clients"] and r["settings"]["concurrency"] == s["concurrency"]
        ]
        role = {
            name: statistics.median(r["cpu_ms_per_invoice_by_role"][name] for r in runs)
            for name in ("postgresql", "rabbitmq", "simulators")
        }
        rate, cpu, wall = s["invoices_per_second"], s["cpu_ms_per_invoice"], s["wall_seconds_to_last_invoice"]
        rss = " / ".join(f"{s['peak_rss_mib'].get(name, 0):.0f}" for name in ("usage-collector-1", "invoicer-1"))
        rows.append(
            f"| {s['clients']:,} | {s['concurrency']} | {s['runs']} | {rate['median']:.0f} "
            f"({rate['min']:.0f}–{rate['max']:.0f}) | {wall['median']:.0f} | {cpu['median']:.1f} "
            f"({cpu['min']:.1f}–{cpu['max']:.1f}) | {role['postgresql']:.1f} | {role['rabbitmq']:.1f} | "
            f"{role['simulators']:.1f} | {rss} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    import json
    import sys

    print(markdown(json.loads(open(sys.argv[1]).read())))
