"""What every benchmark records beside its figures: the machine, the versions, when."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def add_server_options(parser: argparse.ArgumentParser, database: str = "test") -> None:
    """``--amqp`` and ``--database``: the broker and PostgreSQL a benchmark runs on (defaults: this
    machine's, or ``POSTPAY_BENCH_AMQP_URL`` / ``POSTPAY_BENCH_DATABASE_URL``)."""
    parser.add_argument(
        "--amqp", default=os.environ.get("POSTPAY_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("POSTPAY_BENCH_DATABASE_URL", f"postgresql://postgres@127.0.0.1:5432/{database}"),
    )


def _version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def machine_facts() -> dict[str, object]:
    return {
        "recorded_at": datetime.now(UTC).isoformat(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "rabbitmq": _version(["rabbitmqctl", "--version"]),
        "postgresql": _version(["psql", "--version"]),
        "commit": _version(["git", "-C", str(RESULTS.parent.parent), "describe", "--always", "--dirty"]),
        "packages": {
            name: metadata.version(name)
            for name in ("kombu", "amqp", "pika", "SQLAlchemy", "psycopg", "httpx", "uvicorn")
        },
    }


def results_path(name: str, directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return directory / f"{name}-{stamp}.json"


# Settings of a close benchmark that are not parameters of the measurement (where, not what).
_NOT_PARAMETERS = ("amqp", "database", "logs", "results_dir")


def finish_closes(
    benchmark: str,
    args: argparse.Namespace,
    summary: dict[str, Any] | None,
    runs: list[dict[str, Any]],
    log_root: Path,
    failed: bool,
) -> int:
    """Record what the closes measured (even after a failure), keep the logs of a failed run, and say
    whether every invoice was exact."""
    if summary is not None:
        parameters = {k: v for k, v in vars(args).items() if k not in _NOT_PARAMETERS} | {"logs": str(log_root)}
        path = results_path(args.name, args.results_dir)
        path.write_text(
            json.dumps(
                {
                    "benchmark": benchmark,
                    "machine": machine_facts(),
                    "parameters": parameters,
                    "summary": summary,
                    "runs": runs,
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
        print(f"recorded {path}")
    if args.logs is None and not failed:
        shutil.rmtree(log_root, ignore_errors=True)
    elif failed:
        print(f"logs kept in {log_root}", file=sys.stderr)
    if failed:
        print("FAILED: an invoice is missing, wrong or duplicated, or work was parked", file=sys.stderr)
    return 1 if failed else 0


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min and max of a figure over runs, and the runs' values; a NaN (a phase that had no
    sample) is left out of the first three, and a figure with no value at all has None for them."""
    clean = [v for v in values if v == v]
    if not clean:
        return {"median": None, "min": None, "max": None, "values": values}
    return {"median": statistics.median(clean), "min": min(clean), "max": max(clean), "values": values}
