"""``get_logger`` keeps its bound logger between calls (structlog's proxy built one per call) but never
across a ``configure_logging``: a logger made at import writes where and at the level the latest
configuration says, ``capture_logs`` still sees it, and secrets are still redacted."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from shared.logging import configure_logging, get_logger

log = get_logger("test.rebinds")


@pytest.mark.usefixtures("suite_logging_restored")
def test_a_logger_follows_each_configuration() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", stream=first)
    log.info("one", api_key="s3cret", n=1)
    log.debug("hidden")
    configure_logging("DEBUG", stream=second)
    log.debug("two")
    with structlog.testing.capture_logs() as captured:
        log.info("three")
    assert [json.loads(line)["event"] for line in first.getvalue().splitlines()] == ["one"]
    assert json.loads(first.getvalue())["api_key"] == "[redacted]"
    assert [json.loads(line)["event"] for line in second.getvalue().splitlines()] == ["two"]
    assert [entry["event"] for entry in captured] == ["three"]
