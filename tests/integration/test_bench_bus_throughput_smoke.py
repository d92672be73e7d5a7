"""The bus-throughput benchmark at a tiny N: every path delivers every event on the real broker and
database and cleans up after itself, and the figures are recorded. A harness check, not a timing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from bench.bus_throughput import main
from shared.db import normalise_url

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres, pytest.mark.usefixtures("suite_logging_restored")]

EVENTS = 150


def test_every_path_delivers_every_event_and_leaves_nothing_behind(
    rabbit_url: str, postgres_url: str, tmp_path: Path
) -> None:
    code = main(
        [
            "--events",
            str(EVENTS),
            "--repeat",
            "1",
            "--concurrency",
            "2",
            "--prefetch",
            "32",
            "--amqp",
            rabbit_url,
            "--database",
            postgres_url,
            "--results-dir",
            str(tmp_path),
        ]
    )

    assert code == 0
    (path,) = tmp_path.glob("bus-throughput-*.json")
    result = json.loads(path.read_text())
    (round_,) = result["rounds"]
    assert set(round_) == {"pika", "pika+inbox", "pika+inbox batched", "postpay", "postpay batched"}
    for figures in round_.values():
        assert figures["events"] == EVENTS
        assert figures["events_per_second"] > 0 and figures["cpu_ms_per_event"] > 0
    assert result["ratios"]["postpay/pika+inbox"]["median"] > 0
    assert result["ratios"]["batched/pika+inbox"]["median"] > 0
    assert result["ratios"]["batched/pika+inbox batched"]["median"] > 0
    engine = create_engine(normalise_url(postgres_url))
    try:
        leftovers = [t for t in inspect(engine).get_table_names() if t.startswith(("bench_", "pika_inbox_"))]
    finally:
        engine.dispose()
    assert leftovers == []
