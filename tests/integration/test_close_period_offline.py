"""``postpay close-period`` while RabbitMQ is down: the close is recorded and waits in the scheduler's
outbox, and the operator reads one sentence about it instead of a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from postpay.cli import app
from services.scheduler import store
from shared.db import Database


def test_a_close_made_while_the_broker_is_down_waits_in_the_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'offline.sqlite'}"
    monkeypatch.setenv("POSTPAY_DATABASE_URL", url)
    monkeypatch.setenv("POSTPAY_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/")  # nothing listens on port 1
    cli = CliRunner()
    assert cli.invoke(app, ["db", "upgrade", "--service", "scheduler"]).exit_code == 0

    result = cli.invoke(app, ["close-period", "2025-10"])

    assert result.exit_code == 0, result.output
    assert "RabbitMQ is unreachable" in result.output and "Traceback" not in result.output
    db = Database(url)
    try:
        with db.transaction() as session:
            waiting = session.execute(select(store.tables.outbox.table)).all()
    finally:
        db.dispose()
    assert [row.event_type for row in waiting] == ["BillingPeriodClosed"]
