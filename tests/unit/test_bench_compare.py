"""bench.compare: interleaved before/after closes paired in recording order, medians of both sides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.compare import main


def _record(directory: Path, stamp: str, invoices_per_second: float, cpu_ms: float, ok: bool = True) -> None:
    directory.mkdir(exist_ok=True)
    run = {
        "clients": 2000,
        "invoices_per_second": invoices_per_second,
        "cpu_ms_per_invoice": cpu_ms,
        "cpu_ms_per_invoice_by_role": {"postpay": cpu_ms},
        "check": {"ok": ok},
    }
    record = {"benchmark": "month_close", "machine": {"commit": "abc1234"}, "parameters": {"code": None}, "runs": [run]}
    (directory / f"month-close-{stamp}.json").write_text(json.dumps(record))


def test_pairs_follow_recording_order_and_medians_are_taken_per_side(tmp_path: Path) -> None:
    before, after, out = tmp_path / "before", tmp_path / "after", tmp_path / "out"
    for stamp, speed, cpu in (("1", 80, 12.0), ("3", 100, 10.0), ("5", 60, 16.0)):
        _record(before, f"2026T{stamp}", speed, cpu)
    for stamp, speed, cpu in (("2", 88, 11.0), ("4", 90, 11.0), ("6", 90, 12.0)):
        _record(after, f"2026T{stamp}", speed, cpu)

    (after / "month-close-compare-2026T7.json").write_text(json.dumps({"benchmark": "month_close_compare"}))

    assert main([str(before), str(after), "--what", "a change", "--results-dir", str(out)]) == 0

    (path,) = out.glob("month-close-compare-*.json")
    result = json.loads(path.read_text())
    speed, cpu = result["summary"]["invoices_per_second"], result["summary"]["cpu_ms_per_invoice"]
    assert (speed["before_median"], speed["after_median"]) == (80, 90)
    assert speed["ratio_median"] == pytest.approx(1.1)  # pairs 80→88, 100→90, 60→90
    assert speed["pairs_after_better"] == 2
    assert (cpu["before_median"], cpu["after_median"], cpu["pairs_after_better"]) == (12.0, 11.0, 2)
    assert result["what"] == "a change"


def test_a_run_that_failed_its_invoice_check_or_a_missing_pair_is_refused(tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    _record(before, "1", 80, 12.0)
    _record(after, "2", 90, 11.0, ok=False)
    with pytest.raises(SystemExit, match="invoice check"):
        main([str(before), str(after), "--what", "x", "--results-dir", str(tmp_path)])
    _record(before, "3", 80, 12.0)
    with pytest.raises(SystemExit, match="same number of runs"):
        main([str(before), str(after), "--what", "x", "--results-dir", str(tmp_path)])
