"""The meter's sweep on fakes (its handler-like task: the loop only calls it every interval): what the
servers list shows becomes VM runs started and ended, each sweep announced once, nothing repeated."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.meter.handlers import Meter
from services.meter.public import meter_of
from services.meter.settings import MeterSettings
from shared.upstream.errors import UpstreamUnavailable
from tests.fakes.service import ServiceUnderTest

PLAN = {"id": 1, "name": "S", "tokens_per_hour": 7, "tokens_per_month": 5000}
CREATED = datetime(2026, 9, 1, tzinfo=UTC)


def listed(server_id: int, user_id: int, status: str) -> dict[str, Any]:
    return {
        "id": server_id,
        "uuid": f"uuid-{server_id}",
        "name": f"vm-{server_id}",
        "status": status,
        "user": {"id": user_id},
        "plan": PLAN,
        "created_at": CREATED.isoformat(),
    }


@pytest.fixture
def meter() -> Iterator[tuple[ServiceUnderTest, Meter]]:
    with ServiceUnderTest("meter", settings=[MeterSettings()]) as service:
        service.solusvm.plans = [PLAN]
        yield service, meter_of(service.service)


def test_running_servers_start_runs_and_a_stop_ends_one(meter: tuple[ServiceUnderTest, Meter]) -> None:
    service, sweeper = meter
    service.solusvm.servers = [listed(11, 5, "started"), listed(12, 5, "stopped"), listed(13, 6, "running")]
    first = sweeper.sweep()
    assert first is not None and (first.sweep, first.servers, first.running) == (1, 3, 2)
    started = service.published("VmRunStarted")
    assert sorted((e.server_id, e.solusvm_user_id, e.run, e.plan.tokens_per_hour) for e in started) == [
        (11, 5, 1, 7),
        (13, 6, 1, 7),
    ]
    started_at = service.clock()

    service.clock.advance(minutes=30)
    assert sweeper.sweep() is not None
    assert len(service.published("VmRunStarted")) == 2  # nothing changed: nothing new

    service.clock.advance(minutes=30)
    service.solusvm.servers[0] = listed(11, 5, "stopped")
    assert sweeper.sweep() is not None
    (ended,) = service.published("VmRunEnded")
    assert (ended.server_id, ended.run, ended.reason) == (11, 1, "stopped")
    assert started_at < ended.ended_at <= service.clock()
    assert [s.sweep for s in service.published("MeterSwept")] == [1, 2, 3]


def test_a_sweep_that_cannot_list_the_servers_commits_nothing(meter: tuple[ServiceUnderTest, Meter]) -> None:
    service, sweeper = meter
    service.solusvm.servers = [listed(11, 5, "started")]
    service.solusvm.fail("server_page", UpstreamUnavailable("panel down", upstream="solusvm"))
    with pytest.raises(UpstreamUnavailable):
        sweeper.sweep()
    assert service.published() == []
    assert sweeper.sweep() is not None and [s.sweep for s in service.published("MeterSwept")] == [1]
