"""Column types that keep money and time exact, settings, and log redaction."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import SecretStr
from sqlalchemy import Column, Integer, MetaData, Table, select

from shared.db import Amount, Database, UtcTimestamp
from shared.logging import configure_logging, get_logger, redact
from shared.settings import KernelSettings


@pytest.fixture
def ledger(database: Database) -> Table:
    table = Table(
        "kernel_types",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("amount", Amount),
        Column("at", UtcTimestamp),
    )
    table.metadata.create_all(database.engine)
    return table


def test_amount_keeps_every_decimal_digit_and_refuses_floats(database: Database, ledger: Table) -> None:
    value = Decimal("1234567.123456")
    with database.transaction() as session:
        session.execute(ledger.insert().values(id=1, amount=value))
    with database.transaction() as session:
        assert session.execute(select(ledger.c.amount)).scalar_one() == value
    with pytest.raises(Exception, match="float"):
        with database.transaction() as session:
            session.execute(ledger.insert().values(id=2, amount=0.1))


def test_timestamps_come_back_aware_in_utc_and_naive_ones_are_refused(database: Database, ledger: Table) -> None:
    moment = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    with database.transaction() as session:
        session.execute(ledger.insert().values(id=1, at=moment))
    with database.transaction() as session:
        stored = session.execute(select(ledger.c.at)).scalar_one()
    assert stored == moment and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    with pytest.raises(Exception, match="timezone-aware"):
        with database.transaction() as session:
            session.execute(ledger.insert().values(id=2, at=datetime(2026, 1, 1)))


def test_retry_delays_read_as_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTPAY_RETRY_DELAYS", "0.5, 5,30")
    monkeypatch.setenv("POSTPAY_AMQP_URL", "amqp://user:hunter2@rabbit:5672/")
    settings = KernelSettings()
    assert settings.retry_delays == [0.5, 5.0, 30.0]
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


def test_secret_looking_keys_are_redacted_at_any_depth() -> None:
    event = {
        "email": "a@b.example",
        "password": "p",
        "nested": {"api_token": "t", "items": [{"secret": "s"}]},
        "Authorization": "Bearer x",
        "value": SecretStr("hidden"),
    }
    cleaned = redact(event)
    assert cleaned["email"] == "a@b.example"
    assert cleaned["password"] == cleaned["nested"]["api_token"] == cleaned["nested"]["items"][0]["secret"]
    assert cleaned["Authorization"] == "[redacted]" and cleaned["value"] == "[redacted]"


def test_log_lines_are_json_and_never_carry_a_secret() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    try:
        get_logger("test").info("signing in", password="hunter2", user="jane", whmcs_secret=SecretStr("s3"))
    finally:
        configure_logging("WARNING")
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["user"] == "jane" and line["event"] == "signing in"
    assert "hunter2" not in stream.getvalue() and "s3" not in stream.getvalue()
    assert datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).tzinfo == UTC


def test_every_log_line_of_a_handled_message_names_its_event_and_correlation(database: Database) -> None:
    from shared.bus.memory import InMemoryBus
    from shared.events.base import new_envelope
    from shared.runtime import Runtime
    from tests.support.bus_helpers import publish, wait_until
    from tests.support.toy import ProbeHappened, count, effects, toy_service

    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    runtime = Runtime(InMemoryBus(retry_delays=[0.05]), database, [toy_service()], relay_poll_seconds=0.05)
    runtime.create_tables()
    runtime.start()
    try:
        envelope = new_envelope(ProbeHappened(key="logged", fail_times=1), producer="test")
        publish(runtime.bus, envelope)
        wait_until(lambda: count(database, effects, "logged") == 1, what="handled after one retry")
    finally:
        runtime.stop()
        configure_logging("WARNING")
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("event_id") == str(envelope.event_id)]
    assert {line["event"] for line in mine} >= {"handler failed; will retry", "event handled"}
    assert all(line["correlation_id"] == str(envelope.correlation_id) for line in mine)
    assert all(line["handler"] == "toy.apply_probe" and line["event_type"] == "ProbeHappened" for line in mine)
