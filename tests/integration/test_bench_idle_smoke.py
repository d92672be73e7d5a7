"""The idle benchmark at a tiny N: it starts every part of the deployment, measures a short idle window
and times a probe event from its commit to the broker. A harness check, not a timing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import idle
from tests.support.bench_runs import server_arguments

pytestmark = pytest.mark.usefixtures("suite_logging_restored")


@pytest.mark.postgres
def test_the_idle_benchmark_measures_every_part_and_times_the_probes(
    postgres_url: str, rabbit_url: str, tmp_path: Path
) -> None:
    code = idle.main(
        [
            "--seconds",
            "3",
            "--warmup",
            "1",
            "--probes",
            "2",
            "--probe-gap",
            "1",
            *server_arguments(rabbit_url, postgres_url, tmp_path),
            "--logs",
            str(tmp_path / "logs"),
        ]
    )

    assert code == 0
    (path,) = tmp_path.glob("idle-*.json")
    result = json.loads(path.read_text())
    figures = result["figures"]
    assert set(figures["cpu_seconds"]) == {"postpay", *idle.PARTS}
    # Idle for 3 s, the whole deployment may use less than one clock tick (10 ms) of CPU: 0.0 is a
    # measurement, as CI showed on a fast machine; a negative figure or a missing part is the bug.
    assert all(seconds >= 0 for seconds in figures["cpu_seconds"].values()) and figures["commits"] >= 0
    assert figures["cpu_seconds"]["postpay"] == pytest.approx(sum(figures["cpu_seconds"][p] for p in idle.PARTS))
    # Every process reported its own count (by SIGUSR1, through the benchmark's sitecustomize).
    assert set(figures["commits_counted"]) == {"postpay", *idle.PARTS}
    assert figures["commits_counted"]["postpay"] == sum(figures["commits_counted"][part] for part in idle.PARTS)
    assert len(figures["first_event_delay_seconds"]) == 2
    assert all(0 < delay < 60 for delay in figures["first_event_delay_seconds"])
    assert "machine" in result and result["parameters"]["seconds"] == 3
