"""`python -m bench` (the README's one-line benchmark command) runs every benchmark there is."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS, main

BENCH = Path(__file__).resolve().parents[2] / "bench"
# Not benchmarks of their own: compare and bus_compare pair two trees an operator names; plot and
# report read saved results; simulator is a process the benchmarks start.
NOT_RUN_BY_ITSELF = {"compare", "bus_compare", "plot", "pacing_plot", "report", "simulator", "__main__"}


def test_every_runnable_bench_module_is_in_the_catalog() -> None:
    runnable = {path.stem for path in BENCH.glob("*.py") if 'if __name__ == "__main__"' in path.read_text()}
    assert runnable - NOT_RUN_BY_ITSELF == set(BENCHMARKS)


def test_an_unknown_name_is_refused_with_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--only", "month_clos"])
    assert "unknown benchmark(s): month_clos" in capsys.readouterr().err
