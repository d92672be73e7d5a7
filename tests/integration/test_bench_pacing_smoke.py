"""The pacing benchmark harness at a tiny N: a paced and a fixed close against simulators with a
capacity model, on the real broker and database, each checked invoice by invoice and recorded with the
upstream's own count of requests and shed ones. A harness check, not a timing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.pacing import main
from tests.support.bench_runs import server_arguments

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres, pytest.mark.slow]

CLIENTS, CAPACITY = 12, 4


def test_a_tiny_paced_and_fixed_close_are_run_checked_and_recorded(
    rabbit_url: str, postgres_url: str, tmp_path: Path
) -> None:
    code = main(
        [
            "--clients",
            str(CLIENTS),
            "--vms",
            "2",
            "--capacity",
            str(CAPACITY),
            "--invoicers",
            "1",
            "--baseline-sample",
            "2",
            "--solusvm-latency-ms",
            "5",
            "--whmcs-latency-ms",
            "10",
            "--concurrency",
            "4",
            *server_arguments(rabbit_url, postgres_url, tmp_path),
            "--name",
            "smoke",
        ]
    )

    assert code == 0
    (path,) = tmp_path.glob("smoke-*.json")
    result = json.loads(path.read_text())
    paced, fixed = result["runs"]
    assert (paced["paced"], fixed["paced"]) == (True, False)
    for run in (paced, fixed):
        assert run["complete"] and run["check"]["ok"] and run["invoices"] == CLIENTS and run["parked"] == 0
        whmcs = run["upstream_errors"]["whmcs"]
        # Every WHMCS call the close made went through the capacity model: two per customer at least.
        assert whmcs["requests"] >= 2 * CLIENTS and whmcs["peak_in_flight"] >= 1
        assert run["allowed_seconds"] == pytest.approx(CLIENTS * 2 * 0.010 / CAPACITY)
        assert run["in_flight_samples"]
    assert result["summary"]["baseline"]["sample_clients"] == 2
    assert [row["paced"] for row in result["summary"]["rows"]] == [True, False]
