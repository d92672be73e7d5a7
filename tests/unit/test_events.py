"""Events: strict envelopes, money as decimal strings, UTC times, and a JSON Schema per event."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postpay.commands.events import event_schemas
from shared.events import (
    EVENT_TYPES,
    EnvelopeError,
    InvoiceCreated,
    UsageCollected,
    VmUsage,
    deterministic_event_id,
    format_utc,
    new_envelope,
    parse_envelope,
)
from tests.support.event_strategies import _AWARE, valid_events


def invoice_created(**changes: object) -> InvoiceCreated:
    fields = dict(
        whmcs_client_id=7,
        period="2026-10",
        invoice_id=42,
        currency="EUR",
        total=Decimal("12.35"),
        line_count=2,
        due_date="2026-11-15",
        run_key="postpay:7:2026-10",
    )
    fields.update(changes)
    return InvoiceCreated(**fields)  # type: ignore[arg-type]


def test_envelope_round_trips_with_money_as_a_string_and_time_in_utc() -> None:
    moment = datetime(2026, 11, 1, 1, 30, tzinfo=timezone(timedelta(hours=1)))
    envelope = new_envelope(invoice_created(), producer="invoicer", occurred_at=moment)
    document = json.loads(envelope.to_json())
    assert document["payload"]["total"] == "12.35"
    assert document["occurred_at"] == "2026-11-01T00:30:00Z"
    assert document["correlation_id"] == document["event_id"]
    parsed = parse_envelope(envelope.to_json())
    assert parsed.payload == envelope.payload
    assert parsed.payload.total == Decimal("12.35")
    assert parsed.occurred_at.tzinfo is not None


@pytest.mark.parametrize("bad_total", [12.35, 12, "12,35", "NaN", "Infinity", None])
def test_money_must_be_a_finite_decimal_string(bad_total: object) -> None:
    with pytest.raises(ValueError):
        invoice_created(total=bad_total)


def test_unknown_fields_are_rejected_in_the_envelope_and_in_the_payload() -> None:
    document = json.loads(new_envelope(invoice_created(), producer="invoicer").to_json())
    with pytest.raises(EnvelopeError) as exc:
        parse_envelope(json.dumps({**document, "extra": 1}))
    assert exc.value.reason == "invalid"
    document["payload"]["discount"] = "1.00"
    with pytest.raises(EnvelopeError, match="discount"):
        parse_envelope(json.dumps(document))


def test_naive_times_are_rejected() -> None:
    document = json.loads(new_envelope(invoice_created(), producer="invoicer").to_json())
    document["occurred_at"] = "2026-11-01T00:30:00"
    with pytest.raises(EnvelopeError):
        parse_envelope(json.dumps(document))


def test_unknown_type_and_unsupported_version_have_their_own_reasons() -> None:
    document = json.loads(new_envelope(invoice_created(), producer="invoicer").to_json())
    with pytest.raises(EnvelopeError) as unknown:
        parse_envelope(json.dumps({**document, "event_type": "InvoiceEaten"}))
    assert unknown.value.reason == "unknown-type"
    with pytest.raises(EnvelopeError) as version:
        parse_envelope(json.dumps({**document, "schema_version": 9}))
    assert version.value.reason == "unsupported-version"


def test_usage_total_must_equal_the_sum_of_its_vms() -> None:
    window = dict(period="2026-10", starts_at="2026-10-01T00:00:00Z", ends_at="2026-11-01T00:00:00Z", timezone="UTC")
    vm = VmUsage(
        server_id=1, name="vps", plan_id=1, plan_name="S", hours=2, tokens_per_hour=7, tokens_per_month=5000, tokens=14
    )
    UsageCollected(whmcs_client_id=1, solusvm_user_id=2, vms=(vm,), total_tokens=14, **window)
    with pytest.raises(ValueError, match="sum"):
        UsageCollected(whmcs_client_id=1, solusvm_user_id=2, vms=(vm,), total_tokens=15, **window)


def test_deterministic_ids_are_stable_and_distinct() -> None:
    assert deterministic_event_id("close", "2026-10") == deterministic_event_id("close", "2026-10")
    assert deterministic_event_id("close", "2026-10") != deterministic_event_id("close", "2026-11")
    assert isinstance(deterministic_event_id("x"), uuid.UUID)


def test_format_utc_uses_z_and_drops_zero_microseconds() -> None:
    assert format_utc(datetime(2026, 10, 1, tzinfo=UTC)) == "2026-10-01T00:00:00Z"
    assert format_utc(datetime(2026, 10, 1, 0, 0, 0, 5, tzinfo=UTC)) == "2026-10-01T00:00:00.000005Z"


def test_every_event_has_a_schema_that_rejects_unknown_fields() -> None:
    schemas = event_schemas()
    assert set(schemas) == {cls.event_type for cls in EVENT_TYPES.all()}
    for event_type, schema in schemas.items():
        assert schema["additionalProperties"] is False, event_type
        assert schema["properties"]["event_type"]["const"] == event_type
        assert {"event_id", "occurred_at", "payload", "producer"} <= set(schema["required"])


# Test modules register toy events of their own; the catalog is what postpay itself defines.
CATALOG = [cls for cls in EVENT_TYPES.all() if cls.__module__.startswith("shared.events")]


@pytest.mark.parametrize("event_class", CATALOG, ids=lambda cls: cls.event_type)
def test_every_event_round_trips_through_its_envelope_exactly(event_class: type) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(valid_events(event_class), st.uuids(), _AWARE)
    def check(event: object, correlation_id: uuid.UUID, occurred_at: datetime) -> None:
        envelope = new_envelope(event, producer="test", correlation_id=correlation_id, occurred_at=occurred_at)
        text = envelope.to_json()
        parsed = parse_envelope(text)
        assert parsed.payload == event
        assert parsed.occurred_at == occurred_at
        assert parsed.to_json() == text

    check()


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_arbitrary_bytes_are_refused_with_an_envelope_error_never_a_crash(body: bytes) -> None:
    with pytest.raises(EnvelopeError):
        parse_envelope(body)
