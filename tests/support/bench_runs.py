"""What every benchmark smoke test passes its benchmark: the test's broker and database, and where to
write the results JSON."""

from __future__ import annotations

from pathlib import Path


def server_arguments(rabbit_url: str, postgres_url: str, results_dir: Path) -> list[str]:
    return ["--amqp", rabbit_url, "--database", postgres_url, "--results-dir", str(results_dir)]
