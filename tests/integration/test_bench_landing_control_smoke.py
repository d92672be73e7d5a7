"""The landing-page control at a tiny N: signup-web alone on the real broker and database, its landing
page probed idle, beside two niceness-19 spinners, and beside those plus a niceness-0 process busy 40 %
of the time, and the figures recorded. A harness check, not a timing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.landing_control import PHASES, main
from tests.support.bench_runs import server_arguments

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]


def test_every_phase_probes_the_landing_page_and_records_its_figures(
    rabbit_url: str, postgres_url: str, tmp_path: Path
) -> None:
    code = main(
        [
            "--seconds",
            "1",
            "--rounds",
            "1",
            *server_arguments(rabbit_url, postgres_url, tmp_path),
        ]
    )

    assert code == 0
    (path,) = tmp_path.glob("landing-control-*.json")
    result = json.loads(path.read_text())
    (round_,) = result["rounds"]
    assert list(round_) == list(PHASES) == ["idle", "niced_spinners", "niced_spinners_and_duty"]
    for phase, figures in round_.items():
        assert figures["samples"] > 0 and figures["failed"] == 0, phase
        assert figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
    # The hogs ran at the niceness each phase names (``nice -n`` adds to the test's own, 0 unless niced).
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert round_["idle"]["hog_niceness"] == []
    assert round_["niced_spinners"]["hog_niceness"] == [19, 19]
    assert round_["niced_spinners_and_duty"]["hog_niceness"] == [19, 19, own]
    assert round_["idle"]["p95_over_idle"] == 1.0
    assert set(result["figures"]) == set(PHASES)
    assert result["machine"]["web_niceness"] >= own
    assert {"commit", "cpus", "python", "load_average_at_start"} <= result["machine"].keys()
