"""The simulators' capacity model (simulators/capacity.py): base latency up to C in flight, stretched
beyond, shed past 2C; off by default. Requests are held in flight by the test, so nothing is timed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.responses import Response

from simulators import faults as faults_module
from simulators.capacity import Capacity, CapacityConfig
from simulators.faults import FaultConfig, FaultInjector, FaultKind, FaultRule, Flavor, with_faults


def test_off_by_default_nothing_is_counted_or_shed() -> None:
    capacity = Capacity()
    admissions = [capacity.admit() for _ in range(1000)]
    assert all(a.slowdown == 1.0 and not a.shed and not a.counted for a in admissions)
    assert FaultConfig().capacity.limit is None


def test_up_to_c_at_base_latency_then_slower_with_the_excess_then_shed_past_2c() -> None:
    capacity = Capacity(CapacityConfig(limit=4))
    admissions = [capacity.admit() for _ in range(9)]
    assert [a.slowdown for a in admissions[:8]] == [1, 1, 1, 1, 1.25, 1.5, 1.75, 2.0]
    assert admissions[8].shed and not admissions[8].counted
    capacity.leave()
    assert capacity.admit().slowdown == 2.0  # room again for the eighth
    assert capacity.stats()["shed"] == 1 and capacity.stats()["peak_in_flight"] == 8


async def _hold(injector: FaultInjector, release: asyncio.Event, flavor: Flavor) -> Response:
    async def work() -> Response:
        await release.wait()
        return Response("done")

    return await with_faults(injector, "CreateInvoice", flavor, work)


@pytest.mark.parametrize("flavor", [Flavor.WHMCS, Flavor.SOLUSVM])
def test_a_simulator_route_is_stretched_then_shed(flavor: Flavor, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def record(seconds: float, *args: Any) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(faults_module.asyncio, "sleep", record)
    injector = FaultInjector(
        rules=[FaultRule(kind=FaultKind.LATENCY, latency_ms=100)], capacity=CapacityConfig(limit=2)
    )

    async def scenario() -> list[Response]:
        release = asyncio.Event()
        held = [asyncio.create_task(_hold(injector, release, flavor)) for _ in range(4)]
        for _ in range(10):
            await real_sleep(0)
        shed = await _hold(injector, release, flavor)  # the fifth, past 2C: answered at once
        release.set()
        return [shed, *await asyncio.gather(*held)]

    shed, *answered = asyncio.run(scenario())
    assert shed.status_code == 503
    assert [r.status_code for r in answered] == [200] * 4
    assert sorted(slept) == pytest.approx([0.1, 0.1, 0.15, 0.2])
    assert injector.capacity.stats()["in_flight"] == 0


def test_overload_can_time_out_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    injector = FaultInjector(capacity=CapacityConfig(limit=1, overload="timeout", hang_seconds=0.0))

    async def scenario() -> Response:
        release = asyncio.Event()
        held = [asyncio.create_task(_hold(injector, release, Flavor.WHMCS)) for _ in range(2)]
        for _ in range(10):
            await asyncio.sleep(0)
        shed = await _hold(injector, release, Flavor.WHMCS)
        release.set()
        await asyncio.gather(*held)
        return shed

    assert asyncio.run(scenario()).status_code == 504


def test_the_capacity_is_part_of_the_fault_configuration() -> None:
    config = FaultConfig.model_validate({"rules": [], "capacity": {"limit": 8, "overload": "timeout"}})
    injector = FaultInjector()
    injector.configure(config)
    assert injector.capacity.stats()["limit"] == 8
    injector.configure(FaultConfig())
    assert injector.capacity.stats()["limit"] is None
