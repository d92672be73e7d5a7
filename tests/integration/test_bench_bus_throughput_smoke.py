"""The bus-throughput benchmark at a tiny N: every path delivers every event on the real broker and
database and cleans up after itself, and the figures are recorded. A harness check, not a timing.

The benchmark keeps its tables (``bench_*``, ``pika_inbox_*``) in the first schema of its connections'
search path, dropping ``bench_*`` before it starts: this test gives it a schema of its own, so that a
benchmark run on the same server (or another test) and this one neither drop nor count each other's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from bench.bus_throughput import main
from shared.db import normalise_url
from tests.support.infra import fresh_schema

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres, pytest.mark.usefixtures("suite_logging_restored")]

EVENTS = 150


@pytest.fixture
def schema(postgres_url: str) -> Iterator[str]:
    with fresh_schema(postgres_url) as name:
        yield name


def test_every_path_delivers_every_event_and_leaves_nothing_behind(
    rabbit_url: str, postgres_url: str, schema: str, tmp_path: Path
) -> None:
    # libpq's options, which both the benchmark's SQLAlchemy engine and its raw psycopg connections pass on.
    in_schema = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
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
            in_schema.render_as_string(hide_password=False),
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
        leftovers = inspect(engine).get_table_names(schema=schema)
    finally:
        engine.dispose()
    assert leftovers == []
