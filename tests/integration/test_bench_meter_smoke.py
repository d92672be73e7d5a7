"""The meter benchmarks at a tiny N: the sweep benchmark sweeps a simulator in its own process into a
database of its own and records its figures; the accuracy benchmark meters random histories and
records how far each estimate is from the exact hours. Harness checks, not timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import meter_accuracy, meter_sweep

pytestmark = pytest.mark.usefixtures("suite_logging_restored")


@pytest.mark.postgres
def test_the_sweep_benchmark_sweeps_three_times_and_records_what_each_cost(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(meter_sweep, "ADMIN_URL", postgres_url)
    code = meter_sweep.main(
        [
            "--servers",
            "90",
            "--changes",
            "0.1",
            "--latency-ms",
            "0",
            "--page-size",
            "20",
            "--results-dir",
            str(tmp_path),
        ]
    )

    assert code == 0
    (path,) = tmp_path.glob("meter-sweep-*.json")
    result = json.loads(path.read_text())
    first, quiet, busy = result["sweeps"]
    assert [s["sweep"] for s in result["sweeps"]] == ["first", "quiet", "busy"]
    assert first["servers_listed"] == 90 and first["requests"] == 5 + 1  # 90 / 20 per page, then the log
    # 70 % run, and so do the 9 to be deleted later: 63 - 7 + 9 (n = 9..17, of which 7 ran anyway).
    assert first["events"] == first["running"] == 65, "one run started per running server, nothing else"
    assert quiet["events"] == 0, "nothing changed, nothing published"
    # 9 to stop (7 of them running), 9 deleted while running, 9 new: 7 + 9 ends, 9 deletions, 9 starts.
    assert busy["events"] == 7 + 9 + 9 + 9 and busy["servers_listed"] == 90
    assert result["outbox_rows"] == first["events"] + busy["events"] + 3, "every event and sweep, once"
    assert all(s["meter_cpu_seconds"] > 0 and s["peak_rss_mib"] > 0 for s in result["sweeps"])
    assert "machine" in result and result["parameters"]["servers"] == 90


def test_the_accuracy_benchmark_never_bills_above_the_exact_hours_when_its_premise_holds(tmp_path: Path) -> None:
    code = meter_accuracy.main(["--vms", "60", "--intervals", "60,900", "--results-dir", str(tmp_path)])

    assert code == 0
    (path,) = tmp_path.glob("meter-accuracy-*.json")
    rows = json.loads(path.read_text())["rows"]
    assert {(r["family"], r["interval_seconds"], r["estimate"]) for r in rows} == {
        (f, i, e) for f in ("premise", "toggles") for i in (60, 900) for e in ("observed", "midpoint")
    }
    for row in rows:
        assert row["vms"] > 40 and row["exact"] + row["under"] + row["over"] == row["vms"]
        if row["family"] == "premise":
            assert row["beyond_bound"] == 0, row
        if row["family"] == "premise" and row["estimate"] == "observed":
            assert row["over"] == 0, row
