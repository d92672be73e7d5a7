"""What every benchmark records beside its figures: the machine, the versions, when."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


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
        "packages": {name: metadata.version(name) for name in ("kombu", "amqp", "pika", "SQLAlchemy", "psycopg",
                                                               "httpx", "uvicorn")},
    }


def results_path(name: str, directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return directory / f"{name}-{stamp}.json"
