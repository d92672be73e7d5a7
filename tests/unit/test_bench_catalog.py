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


def test_a_variant_the_benchmark_refuses_fails_alone_and_the_run_goes_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import bench.__main__ as catalog
    import bench.signup_flood as signup_flood

    calls: list[list[str]] = []

    def fake_main(arguments: list[str]) -> int:
        calls.append(arguments)
        if arguments:
            raise SystemExit(2)  # as argparse does for --web-cpus 0 on a machine with one CPU
        return 0

    monkeypatch.setattr(signup_flood, "main", fake_main)
    assert catalog.main(["--only", "signup_flood"]) == 1
    assert calls == [[], *catalog.VARIANTS["signup_flood"]]
    assert "failed: bench.signup_flood --repeat 1 --web-cpus 0 --pin-servers" in capsys.readouterr().err
