"""The signup flood's report: each round's one-line summary, and over the rounds the spread (median,
min, max) of every figure per mode and the ratios between modes, printed as a table and returned as
the results JSON. Kept apart from bench.signup_flood, which measures; this only reads its rounds."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from bench.common import machine_facts, spread
from bench.cpu_pinning import cpu_list


def summary(round_: dict[str, dict[str, Any]]) -> str:
    return "; ".join(
        f"{mode}: accepted {r['accepted_per_second']:.0f}/s, processed {r['processed_per_second']:.0f}/s, "
        f"{r['postpay_cpu_ms_per_registration']:.1f} CPU-ms, landing p95 idle/flood/backlog "
        f"{r['landing']['idle']['p95_ms']:.0f}/{r['landing']['flood']['p95_ms']:.0f}/"
        f"{r['backlog']['landing']['p95_ms']:.0f} ms, backlog drained at "
        f"{r['backlog']['processed_per_second']:.0f}/s"
        for mode, r in round_.items()
    )


def landing_phases(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {**result["landing"], "backlog": result["backlog"]["landing"]}


FIGURES = (
    "accepted_per_second",
    "processed_per_second",
    "postpay_cpu_ms_per_registration",
    "registrations_per_second_per_postpay_core",
    "registrations_per_second_per_core_with_broker_and_database",
    "registrations_per_second_per_machine_core",
    "postgres_cpu_ms_per_registration",
    "rabbitmq_cpu_ms_per_registration",
    "machine_cores_busy",
    "backlog_at_last_accepted",
    "seconds_to_last_processed",
)


def report(rounds: list[dict[str, dict[str, Any]]], args: argparse.Namespace, modes: Sequence[str]) -> dict[str, Any]:
    figures = {mode: {name: spread([r[mode][name] for r in rounds]) for name in FIGURES} for mode in modes}
    for mode in modes:
        figures[mode]["backlog_processed_per_second"] = spread(
            [r[mode]["backlog"]["processed_per_second"] for r in rounds]
        )
        for phase in ("idle", "flood", "backlog"):
            for quantile in ("p50_ms", "p95_ms"):
                figures[mode][f"landing_{phase}_{quantile}"] = spread(
                    [landing_phases(r[mode])[phase][quantile] for r in rounds]
                )

    def ratio(name: str, a: str = "split", b: str = "combined") -> dict[str, Any]:
        return spread([r[a][name] / r[b][name] for r in rounds])

    ratios = {
        "split/combined accepted per second": ratio("accepted_per_second"),
        "split/combined processed per second": ratio("processed_per_second"),
        "split/combined registrations per postpay core": ratio("registrations_per_second_per_postpay_core"),
        "split/combined CPU-ms per registration": ratio("postpay_cpu_ms_per_registration"),
        # Each round's own: how much the backlog raises the landing page's p95 over its idle p95.
        **{
            f"{mode} landing p95 backlog/idle": spread(
                [landing_phases(r[mode])["backlog"]["p95_ms"] / r[mode]["landing"]["idle"]["p95_ms"] for r in rounds]
            )
            for mode in modes
        },
        **{
            f"{mode}/combined landing p95 during backlog": spread(
                [
                    r[mode]["backlog"]["landing"]["p95_ms"] / r["combined"]["backlog"]["landing"]["p95_ms"]
                    for r in rounds
                ]
            )
            for mode in modes
            if mode != "combined"
        },
        "split/combined backlog drained per second": spread(
            [
                r["split"]["backlog"]["processed_per_second"] / r["combined"]["backlog"]["processed_per_second"]
                for r in rounds
            ]
        ),
    }
    print(f"{'':44} " + " ".join(f"{mode:>22}" for mode in modes))
    for name in figures["combined"]:
        cells = [figures[mode][name] for mode in modes]
        print(
            f"{name:44} "
            + " ".join(
                f"{c['median']:>10.1f} ({c['min']:.1f}-{c['max']:.1f})" if c["median"] is not None else f"{'-':>22}"
                for c in cells
            )
        )
    for name, value in ratios.items():
        print(f"{name:44} {value['median'] if value['median'] is not None else float('nan'):>10.2f}")
    parameters = vars(args) | {
        "amqp": "(local)",
        "database": "(local)",
        "results_dir": str(args.results_dir),
        "web_cpus": cpu_list(args.web_cpus) if args.web_cpus else None,
    }
    return {
        "benchmark": "signup_flood",
        "machine": machine_facts(),
        "parameters": parameters,
        "figures": figures,
        "ratios": ratios,
        "rounds": rounds,
    }
