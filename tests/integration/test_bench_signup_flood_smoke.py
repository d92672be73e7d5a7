"""The signup-flood benchmark at a tiny N: all three modes (one process; web and handlers apart; apart with
the handlers niced) accept and fully process every registration on the real broker and database, the
landing page is probed in every phase, and the figures are recorded. A harness check, not a timing.

On a machine with two CPUs or more it runs with ``--web-cpus``: each web on its CPU, every other postpay
process on the rest (the combined process, being both, on all), as recorded with the figures; and the
test's own thread has every CPU it had back afterwards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.signup_flood import main
from tests.support.bench_runs import server_arguments

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]

REGISTRATIONS = 40
CPUS = sorted(os.sched_getaffinity(0))


def test_both_modes_process_every_registration_and_record_their_figures(
    rabbit_url: str, postgres_url: str, tmp_path: Path
) -> None:
    code = main(
        [
            "--registrations",
            str(REGISTRATIONS),
            "--backlog",
            str(REGISTRATIONS),
            "--repeat",
            "1",
            "--clients",
            "4",
            "--idle-seconds",
            "1",
            *server_arguments(rabbit_url, postgres_url, tmp_path),
            *(["--web-cpus", str(CPUS[0])] if len(CPUS) > 1 else []),
        ]
    )

    assert code == 0
    assert sorted(os.sched_getaffinity(0)) == CPUS
    (path,) = tmp_path.glob("signup-flood-*.json")
    result = json.loads(path.read_text())
    (round_,) = result["rounds"]
    assert set(round_) == {"combined", "split", "split-niced"}
    assert round_["combined"]["parts"] == ["signup"] and round_["split"]["parts"] == ["signup-web", "signup-handlers"]
    assert round_["split-niced"]["parts"] == ["signup-web", "signup-handlers"]
    # Only the niced mode's handlers yield the CPU; its web, and every other process, keep niceness 0.
    assert round_["split-niced"]["niceness"] == {"split-niced-signup-web-1": 0, "split-niced-signup-handlers-2": 19}
    assert set(round_["split"]["niceness"].values()) == set(round_["combined"]["niceness"].values()) == {0}
    everywhere, web, rest = ",".join(map(str, CPUS)), str(CPUS[0]), ",".join(map(str, CPUS[1:]))
    if len(CPUS) > 1:
        assert result["parameters"]["web_cpus"] == web
        assert round_["split"]["cpus"] == {"split-signup-web-1": web, "split-signup-handlers-2": rest}
    else:
        assert result["parameters"]["web_cpus"] is None and set(round_["split"]["cpus"].values()) == {everywhere}
    assert round_["combined"]["cpus"] == {"combined-signup-1": everywhere}
    for figures in round_.values():
        assert figures["registrations"] == REGISTRATIONS
        assert 0 < figures["processed_per_second"] <= figures["accepted_per_second"]
        assert (
            figures["postpay_cpu_ms_per_registration"] > 0 and figures["registrations_per_second_per_postpay_core"] > 0
        )
        assert figures["landing"]["idle"]["samples"] > 0 and figures["landing"]["idle"]["failed"] == 0
        # The backlog was made with no handler running, then worked off while the landing page was probed.
        assert figures["backlog"]["registrations"] == REGISTRATIONS
        assert figures["backlog"]["landing"]["failed"] == 0
    # Apart, the handlers start after the prober: the whole backlog is worked off while the page is probed.
    assert round_["split"]["backlog"]["drained_while_probed"] == REGISTRATIONS
    assert round_["split"]["backlog"]["landing"]["samples"] > 0
    split_cpu = round_["split"]["cpu_ms_per_registration_by_process"]
    assert set(split_cpu) == {"split-signup-web-1", "split-signup-handlers-2"} and all(
        v > 0 for v in split_cpu.values()
    )
    assert result["ratios"]["split/combined processed per second"]["median"] > 0
    assert result["ratios"]["split-niced landing p95 backlog/idle"]["median"] > 0
    assert {"commit", "cpus", "python"} <= result["machine"].keys()
