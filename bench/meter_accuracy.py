"""How close the meter's hours come to the exact ones: sampled histories against the truth.

Random month histories whose starts, stops, creations, deletions and resizes fall off the poll grid
(whole seconds, never on a multiple of the interval) are metered by postpay's own code: the sweep logic
(``services.meter.observations``) sees each VM at every poll as ``GET /servers`` would show it and
reads the creation and deletion the activity log would give, and the period's usage is computed from
the resulting runs (``services.usage_collector.metered``) exactly as the collector computes it. Each VM's
billed hours are compared with ``ceil(exact seconds / 3600)`` and its tokens with the exact ones.

Two families of histories: ``premise`` (every state lasts longer than one interval, the premise of the
documented bound) and ``toggles`` (stops and starts, or a stop and the deletion, inside one interval:
what no sampler can see). Sweeps take no time here; a real sweep's duration adds to each edge.

    python -m bench.meter_accuracy --vms 2000 --intervals 60,300,900
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import RESULTS, machine_facts, results_path
from services.meter.observations import LoggedCreation, Sighting, SweepWindow, VmState, observe
from services.usage_collector.meter_store import PlanRow, RunRow, VmRow
from services.usage_collector.metered import metered_usage
from shared.events.metering import VmPlanChanged, VmRunEnded, VmRunStarted
from shared.periods import BillingPeriod
from shared.upstream.solusvm_inventory import RUNNING, STOPPED, PlanPrices, ServerSighting

PERIOD = BillingPeriod.parse("2026-10")
START, END = PERIOD.starts_at, PERIOD.ends_at
METER_FROM = START - timedelta(days=1)
HOUR = timedelta(hours=1)
PLANS = (PlanPrices(1, "S", 7, 5000), PlanPrices(2, "M", 14, 10000), PlanPrices(3, "Capped", 40, 3000))
EPOCH = uuid.UUID(int=1)


@dataclass
class History:
    server_id: int
    kind: str
    created: datetime
    runs: list[tuple[datetime, datetime | None]]
    deleted: datetime | None = None
    plans: list[tuple[datetime, PlanPrices]] = field(default_factory=list)  # (from, plan), first at creation

    def running_at(self, moment: datetime) -> bool:
        return any(a <= moment and (b is None or moment < b) for a, b in self.runs)

    def exists_at(self, moment: datetime) -> bool:
        return self.created <= moment and (self.deleted is None or moment < self.deleted)

    def plan_at(self, moment: datetime) -> PlanPrices:
        return [plan for at, plan in self.plans if at <= moment][-1]

    def instants(self) -> list[datetime]:
        moments = [self.created, *(m for run in self.runs for m in run if m is not None)]
        return sorted({*moments, *(at for at, _ in self.plans[1:]), *([self.deleted] if self.deleted else [])})


def off_grid(rng: random.Random, low: datetime, high: datetime, interval: int) -> datetime:
    while True:
        moment = low + timedelta(seconds=rng.randrange(max(1, int((high - low).total_seconds()))))
        if int(moment.timestamp()) % interval:
            return moment


def history(rng: random.Random, server_id: int, interval: int, family: str) -> History:
    """One VM's month: it may predate the month, stop and start, change plan, be deleted, live minutes."""

    def step(moment: datetime) -> datetime:
        if family == "toggles" and rng.random() < 0.35:
            return moment + timedelta(seconds=rng.uniform(1, interval))  # inside one interval
        return moment + timedelta(seconds=rng.uniform(interval * 1.5, 4 * 24 * 3600))

    kind = rng.choice(["steady", "cycling", "cycling", "deleted", "flash", "resized"])
    created = rng.choice([START - timedelta(days=rng.uniform(1, 40)), off_grid(rng, START, END, interval)])
    if created < METER_FROM:
        created = off_grid(rng, START - timedelta(days=60), METER_FROM, interval)
    plan = rng.choice(PLANS)
    if kind == "flash":
        minutes = rng.uniform(1, 30)
        end = created + timedelta(minutes=minutes)
        return History(server_id, kind, created, [(created, end)], end, [(created, plan)])
    runs: list[tuple[datetime, datetime | None]] = []
    moment = created
    while moment < END:
        stop = step(moment) if kind == "cycling" else None
        if stop is None or stop >= END + 2 * HOUR:
            runs.append((moment, None))
            break
        runs.append((moment, stop))
        moment = step(stop)
    deleted = None
    if kind == "deleted" or (family == "toggles" and rng.random() < 0.3):
        last_start, last_end = runs[-1]
        deleted = step(last_start) if last_end is None else step(last_end) if rng.random() < 0.5 else last_end
        deleted = max(deleted, created + timedelta(seconds=1))
        runs = [(a, b if b is not None and b <= deleted else deleted) for a, b in runs if a < deleted]
    plans = [(created, plan)]
    if kind == "resized":
        plans.append((off_grid(rng, max(created, START), END, interval), rng.choice([p for p in PLANS if p != plan])))
    return History(server_id, kind, created, [r for r in runs if r[1] is None or r[1] > r[0]], deleted, plans)


def sweep_vm(vm: History, interval: int) -> tuple[list[RunRow], list[PlanRow]]:
    """The meter's view of one VM: only polls where its sampled state changes, or a log entry lands,
    can produce a transition (every other sweep leaves it as it was), so only those are run."""
    step = timedelta(seconds=interval)
    first = METER_FROM
    polls = {first}
    for moment in vm.instants():
        if moment >= first:
            polls.add(first + step * -(-(moment - first) // step))
    known: dict[int, VmState] = {}
    pending: dict[int, LoggedCreation] = {}
    events: list[Any] = []
    for poll in sorted(polls):
        if poll > END + 2 * step:
            break
        previous = poll - step if poll > first else None
        window = SweepWindow(EPOCH, 1, poll, poll, previous, previous)
        sightings = {}
        if vm.exists_at(poll):
            server = ServerSighting(
                vm.server_id, "", vm.kind, RUNNING if vm.running_at(poll) else STOPPED, 9, vm.plan_at(poll), vm.created
            )
            sightings[vm.server_id] = Sighting(server, poll, poll)
        if previous is not None and previous < vm.created <= poll:
            pending[vm.server_id] = LoggedCreation(vm.created, None, vm.kind, 9, vm.plan_at(vm.created).id)
        deletions = {vm.server_id: vm.deleted} if vm.deleted and previous and previous < vm.deleted <= poll else {}
        outcome = observe(known, sightings, pending, deletions, window, {p.id: p for p in PLANS})
        for server_id, state in outcome.changed.items():
            known[server_id] = state
        if outcome.consumed_creations:
            pending.clear()
        events.extend(outcome.events)
    return _rows(events)


def _rows(events: list[Any]) -> tuple[list[RunRow], list[PlanRow]]:
    starts = {e.run: e for e in events if isinstance(e, VmRunStarted)}
    ends = {e.run: e for e in events if isinstance(e, VmRunEnded)}
    runs = [
        RunRow(
            EPOCH,
            s.server_id,
            n,
            s.started_at,
            s.not_running_at,
            ends[n].ended_at if n in ends else None,
            ends[n].not_running_at if n in ends else None,
        )
        for n, s in starts.items()
    ]
    plans = [PlanRow(e.server_id, e.started_at, e.plan) for e in events if isinstance(e, VmRunStarted)]
    plans += [PlanRow(e.server_id, e.seen_at, e.plan) for e in events if isinstance(e, VmPlanChanged)]
    return runs, sorted(plans, key=lambda row: row.effective_at)


def exact(vm: History) -> tuple[int, int]:
    seconds = sum(max(timedelta(), min(b or END, END) - max(a, START)).total_seconds() for a, b in vm.runs)
    hours = int(-(-seconds // 3600))
    plan = vm.plan_at(min(END - timedelta(microseconds=1), vm.deleted or END))
    return hours, min(hours * plan.tokens_per_hour, plan.tokens_per_month)


def measure(vms: list[History], interval: int, estimate: str) -> dict[str, Any]:
    under, over, bound_misses, compared = [], [], 0, 0
    for vm in vms:
        hours, tokens = exact(vm)
        runs, plans = sweep_vm(vm, interval)
        (billed,) = metered_usage(
            runs,
            plans,
            {vm.server_id: VmRow(vm.server_id, "", vm.kind, None, None)},
            [],
            starts_at=START,
            ends_at=END,
            estimate=estimate,
            gap_policy="bill",  # type: ignore[arg-type]
            epoch_ends={EPOCH: END + HOUR},
        ) or (None,)
        got_hours, got_tokens = (billed.hours, billed.tokens) if billed else (0, 0)
        if hours == 0 and got_hours == 0:
            continue
        compared += 1
        touching = sum(1 for a, b in vm.runs if a < END and (b is None or b > START))
        bound = -(-touching * 2 * interval // 3600)
        if hours - got_hours > bound:
            bound_misses += 1
        (under if got_hours < hours else over if got_hours > hours else []).append(
            (abs(hours - got_hours), abs(tokens - got_tokens))
        )
    return {
        "vms": compared,
        "exact": compared - len(under) - len(over),
        "under": len(under),
        "under_hours_mean": round(statistics.fmean(u[0] for u in under), 3) if under else 0,
        "under_hours_max": max((u[0] for u in under), default=0),
        "over": len(over),
        "over_hours_max": max((o[0] for o in over), default=0),
        "over_tokens_max": max((o[1] for o in over), default=0),
        "beyond_bound": bound_misses,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=2000)
    parser.add_argument("--intervals", default="60,300,900", help="Poll intervals in seconds, comma-separated.")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = []
    print(
        f"{'family':>8} {'interval':>8} {'estimate':>9} {'VMs':>6} {'exact':>6} {'under':>6} {'mean':>6} "
        f"{'max':>4} {'over':>5} {'max':>4} {'beyond bound':>12}"
    )
    for interval in (int(i) for i in args.intervals.split(",")):
        for family in ("premise", "toggles"):
            rng = random.Random(f"{args.seed}-{interval}-{family}")
            vms = [history(rng, n + 1, interval, family) for n in range(args.vms)]
            for estimate in ("observed", "midpoint"):
                figures = {
                    "family": family,
                    "interval_seconds": interval,
                    "estimate": estimate,
                    **measure(vms, interval, estimate),
                }
                rows.append(figures)
                print(
                    f"{family:>8} {interval:>8} {estimate:>9} {figures['vms']:>6} {figures['exact']:>6} "
                    f"{figures['under']:>6} {figures['under_hours_mean']:>6} {figures['under_hours_max']:>4} "
                    f"{figures['over']:>5} {figures['over_hours_max']:>4} {figures['beyond_bound']:>12}",
                    flush=True,
                )
    path = results_path("meter-accuracy", args.results_dir)
    parameters = vars(args) | {"results_dir": str(args.results_dir)}
    path.write_text(
        json.dumps(
            {"benchmark": "meter_accuracy", "machine": machine_facts(), "parameters": parameters, "rows": rows},
            indent=2,
        )
        + "\n"
    )
    print(f"recorded {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
