"""Reading ``GET /servers`` and ``GET /activity_logs`` leniently (§4.2, §4.2a): what the meter can use."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.events import MeteringProvenance, UsageCollected, new_envelope, parse_envelope
from shared.upstream.solusvm_inventory import (
    RUNNING,
    STOPPED,
    UNKNOWN,
    ServerRef,
    Unreadable,
    parse_activity,
    parse_server,
    power_of,
    server_refs,
)

SERVER: dict[str, Any] = {
    "id": 12,
    "uuid": "c3d4",
    "name": "web",
    "status": "started",
    "user": {"id": 4, "email": "a@example.com"},
    "plan": {"id": 3, "name": "S", "tokens_per_hour": "7", "tokens_per_month": 5000.0},
    "created_at": "2026-10-01 08:00:00",
}


def test_a_server_is_read_with_its_owner_plan_prices_and_power() -> None:
    server = parse_server(SERVER)
    assert (server.id, server.user_id, server.plan.tokens_per_hour, server.plan.tokens_per_month, server.power) == (
        12,
        4,
        7,
        5000,
        RUNNING,
    )
    assert server.created_at == datetime(2026, 10, 1, 8, tzinfo=UTC), "a naive Laravel time is UTC"


@pytest.mark.parametrize(
    "broken",
    [
        {"id": None},
        {"id": "x"},
        {"user": None, "user_id": None},
        {"plan": None},
        {"plan": {"id": 3, "name": "S", "tokens_per_hour": 7.5, "tokens_per_month": 5000}},
        {"plan": {"id": 3, "name": "S"}},
    ],
)
def test_a_server_that_cannot_be_billed_from_is_unreadable(broken: dict[str, Any]) -> None:
    with pytest.raises(Unreadable):
        parse_server({**SERVER, **broken})
    with pytest.raises(Unreadable):
        parse_server(["not", "an", "object"])


@pytest.mark.parametrize(
    ("status", "power"),
    [
        ("started", RUNNING),
        ("STARTED", RUNNING),
        ("stopped", STOPPED),
        ("paused", STOPPED),
        ("not exists", STOPPED),
        ("processing", UNKNOWN),
        ("unavailable", UNKNOWN),
        (None, UNKNOWN),
        (3, UNKNOWN),
    ],
)
def test_only_started_is_running_and_an_unclear_status_is_unknown(status: Any, power: str) -> None:
    assert power_of(status) == power


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"id": 12, "uuid": "c3d4", "name": "web", "user_id": 4, "plan_id": 3}, (ServerRef(12, "c3d4", "web", 4, 3),)),
        ({"server_id": "12"}, (ServerRef(12),)),
        ({"server": {"id": 12, "user": {"id": 4}, "plan": {"id": 3}}}, (ServerRef(12, user_id=4, plan_id=3),)),
        ({"virtual_server": {"uuid": "c3d4"}}, (ServerRef(uuid="c3d4"),)),
        ({"ids": [12, "13", "x"]}, (ServerRef(12), ServerRef(13))),
        ({"servers": [{"id": 12}, {"uuid": "u"}]}, (ServerRef(12), ServerRef(uuid="u"))),
        ({"uuids": ["a", "b"]}, (ServerRef(uuid="a"), ServerRef(uuid="b"))),
        ({"id": 12}, ()),  # a bare id alone could be anything's
        ({"message": "done"}, ()),
        (None, ()),
        ("text", ()),
        ([], ()),
    ],
)
def test_the_undocumented_data_is_read_in_every_shape_it_plausibly_takes(data: Any, expected: tuple) -> None:
    assert server_refs(data) == expected


def test_an_entry_needs_an_id_and_a_time() -> None:
    entry = parse_activity(
        {
            "id": 5,
            "event": "compute_resource_vm_created",
            "user_email": "a@example.com",
            "created_at": "2026-10-01T08:00:00Z",
            "data": {"server_id": 12},
        }
    )
    assert (entry.id, entry.created_at, entry.servers) == (5, datetime(2026, 10, 1, 8, tzinfo=UTC), (ServerRef(12),))
    for broken in ({"id": None, "created_at": "2026-10-01T08:00:00Z"}, {"id": 5, "created_at": "yesterday"}, 7):
        with pytest.raises(Unreadable):
            parse_activity(broken)


WINDOW = dict(period="2026-10", starts_at="2026-10-01T00:00:00Z", ends_at="2026-11-01T00:00:00Z", timezone="UTC")


def test_an_endpoint_usage_goes_on_the_wire_exactly_as_before_the_meter() -> None:
    usage = UsageCollected(whmcs_client_id=1, solusvm_user_id=2, vms=(), total_tokens=0, **WINDOW)
    payload = json.loads(new_envelope(usage, producer="usage_collector").to_json())["payload"]
    assert set(payload) == {
        "period",
        "starts_at",
        "ends_at",
        "timezone",
        "whmcs_client_id",
        "solusvm_user_id",
        "vms",
        "total_tokens",
        "trigger",
    }, "an invoicer not yet upgraded still reads it"


def test_a_metered_usage_carries_its_provenance_and_only_a_metered_one_does() -> None:
    provenance = MeteringProvenance(estimate="observed", gap_policy="bill", observed_until=datetime.now(UTC))
    metered = UsageCollected(
        whmcs_client_id=1, solusvm_user_id=2, vms=(), total_tokens=0, source="meter", metering=provenance, **WINDOW
    )
    assert parse_envelope(new_envelope(metered, producer="x", event_id=uuid.uuid4()).to_json()).payload == metered
    with pytest.raises(ValueError, match="provenance"):
        UsageCollected(whmcs_client_id=1, solusvm_user_id=2, vms=(), total_tokens=0, source="meter", **WINDOW)
    with pytest.raises(ValueError, match="provenance"):
        UsageCollected(whmcs_client_id=1, solusvm_user_id=2, vms=(), total_tokens=0, metering=provenance, **WINDOW)
