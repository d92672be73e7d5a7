"""``postpay events schema``: what an outside producer validates its events against."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from postpay.cli import app
from shared.events import BillingPeriodClosed, new_envelope
from shared.periods import BillingPeriod


def closed_october() -> dict:
    period = BillingPeriod.parse("2026-10", "Europe/Berlin")
    event = BillingPeriodClosed(
        period=period.key,
        starts_at=period.starts_at,
        ends_at=period.ends_at,
        timezone=period.timezone,
        trigger="manual",
    )
    return json.loads(new_envelope(event, producer="billing-tool").to_json())


@pytest.fixture(scope="module")
def schema_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("schemas")
    result = CliRunner().invoke(app, ["events", "schema", "--output", str(directory)])
    assert result.exit_code == 0, result.output
    return directory


def test_one_schema_file_per_event_and_a_real_envelope_validates(schema_dir: Path) -> None:
    written = {path.name for path in schema_dir.glob("*.schema.json")}
    assert {"UserRegistered.schema.json", "BillingPeriodClosed.schema.json", "UsageCollected.schema.json"} <= written
    schema = json.loads((schema_dir / "BillingPeriodClosed.schema.json").read_text())
    jsonschema.validate(closed_october(), schema)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda doc: doc.update(surprise=1), "an unknown envelope field"),
        (lambda doc: doc["payload"].update(surprise=1), "an unknown payload field"),
        (lambda doc: doc.update(event_type="UsageCollected"), "another event's type"),
        (lambda doc: doc["payload"].pop("ends_at"), "a missing field"),
        (lambda doc: doc.update(occurred_at="yesterday"), "a time that is not RFC 3339"),
    ],
)
def test_the_schema_refuses_what_postpay_would_park(schema_dir: Path, change, where: str) -> None:
    schema = json.loads((schema_dir / "BillingPeriodClosed.schema.json").read_text())
    document = closed_october()
    change(document)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema, format_checker=jsonschema.FormatChecker())


def test_without_a_directory_every_schema_goes_to_stdout() -> None:
    result = CliRunner().invoke(app, ["events", "schema"])
    assert result.exit_code == 0
    schemas = json.loads(result.output)
    assert schemas["UsageCollected"]["properties"]["event_type"]["const"] == "UsageCollected"
