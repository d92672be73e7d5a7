"""Metering a month in a test: seeded month histories whose starts and stops fall off the poll grid,
and the meter's poll loop driven by the simulator's clock instead of wall time.

    histories = month_histories(random.Random(7), plans, PERIOD_START, interval=timedelta(minutes=30))
    run_meter(harness, upstreams, until=PERIOD_END + timedelta(hours=1))

Each state of a history lasts longer than one interval (a stop and a start, or a stop and a deletion,
inside one interval are invisible to any sampler: that is the premise of the meter's bound), and every
instant is a whole second off the interval grid.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.meter.public import meter_of
from simulators.common import SimClock
from tests.support.billing import BillingHarness, Plan, VmHistory

HOUR = timedelta(hours=1)


def drive_meter(harness: BillingHarness, clock: SimClock, *, until: datetime) -> int:
    """Run the meter's own loop (``Meter.run``) until the clock passes ``until``; its waits move the
    simulator clock to the next due sweep instead of sleeping. Returns the number of sweeps."""
    meter = meter_of(harness.context.services["meter"])
    stop = threading.Event()
    sweeps = {"n": 0}
    real_sweep = meter.sweep

    def counted() -> object:
        sweeps["n"] += 1
        return real_sweep()

    def accelerate(stop_event: threading.Event, moment: datetime) -> None:
        if moment > until:
            stop_event.set()
        else:
            clock.set(moment)

    meter.sweep = counted
    try:
        meter.run(stop, wait=accelerate)
    finally:
        del meter.sweep
    return sweeps["n"]


@dataclass
class Spec:
    """What kind of month a VM has (for messages and for the per-run bound)."""

    kind: str
    history: VmHistory


def _off_grid(rng: random.Random, low: datetime, high: datetime, interval: timedelta) -> datetime:
    """A whole-second instant in [low, high) that is not on the interval grid."""
    span = int((high - low).total_seconds())
    while True:
        moment = low + timedelta(seconds=rng.randrange(max(span, 1)))
        if int(moment.timestamp()) % int(interval.total_seconds()):
            return moment


def month_histories(
    rng: random.Random, plans: Sequence[Plan], start: datetime, end: datetime, interval: timedelta, count: int
) -> list[Spec]:
    """``count`` VMs of every kind a month holds, all off the poll grid."""
    hold = interval * 1.5  # every state lasts longer than one interval
    kinds = ["steady", "late", "cycling", "deleted", "stopped-then-deleted", "flash", "resized", "capped"]
    specs = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        plan = rng.choice(plans[:-1]) if kind != "capped" else plans[-1]
        before = start - timedelta(days=rng.randint(2, 20), seconds=rng.randint(1, 3000))
        name = f"{kind}-{index}"
        if kind in ("steady", "capped"):
            history = VmHistory(name, plan, [(before, None)])
        elif kind == "late":
            history = VmHistory(name, plan, [(_off_grid(rng, start, end - 2 * HOUR, interval), None)])
        elif kind == "cycling":
            runs: list[tuple[datetime, datetime | None]] = []
            moment = rng.choice([before, _off_grid(rng, start, start + 3 * 24 * HOUR, interval)])
            while moment < end - 4 * hold:
                stop_at = _off_grid(rng, moment + hold, min(moment + 6 * 24 * HOUR, end), interval)
                runs.append((moment, stop_at))
                moment = _off_grid(rng, stop_at + hold, min(stop_at + 3 * 24 * HOUR, end + 24 * HOUR), interval)
            if rng.random() < 0.5 and moment < end:
                runs.append((moment, None))
            history = VmHistory(name, plan, runs)
        elif kind == "deleted":
            created = rng.choice([before, _off_grid(rng, start, start + 10 * 24 * HOUR, interval)])
            deleted = _off_grid(rng, max(created, start) + hold, end - HOUR, interval)
            history = VmHistory(name, plan, [(created, deleted)], deleted_at=deleted)
        elif kind == "stopped-then-deleted":
            created = _off_grid(rng, start, start + 10 * 24 * HOUR, interval)
            stopped = _off_grid(rng, created + hold, created + 8 * 24 * HOUR, interval)
            deleted = _off_grid(rng, stopped + hold, stopped + 5 * 24 * HOUR, interval)
            history = VmHistory(name, plan, [(created, stopped)], deleted_at=deleted)
        elif kind == "flash":
            created = _off_grid(rng, start, end - HOUR, interval)
            deleted = created + timedelta(minutes=5)
            history = VmHistory(name, plan, [(created, deleted)], deleted_at=deleted)
        else:  # resized
            other = next(p for p in plans if p.id != plan.id)
            history = VmHistory(
                name, plan, [(before, None)], plan_changes=[(_off_grid(rng, start + HOUR, end - HOUR, interval), other)]
            )
        specs.append(Spec(kind, history))
    return specs


def runs_in(history: VmHistory, start: datetime, end: datetime) -> int:
    """How many of the VM's runs touch ``[start, end)``: each may lose up to two intervals."""
    return sum(1 for run_start, run_end in history.runs if run_start < end and (run_end is None or run_end > start))
