"""A customer's period usage from the meter's runs, by §8's rules (pure, no I/O).

- Running time: the union of the VM's runs (so nothing is ever counted twice), clipped to ``[from, to)``.
  A run's edges are the observed ones, or with ``estimate="midpoint"`` the middle of each edge's
  bracket. A run still open counts to the period's end when its epoch has been watched past it, else
  to that epoch's last sweep (a meter whose database was reset: nothing proves the VM ran on).
- Gaps: with ``gap_policy="skip"`` a run that spans a whole gap loses the gap's time; with ``"bill"``
  (the default) a VM seen running on both sides counts as running through it.
- Hours: ``ceil(seconds / 3600)`` per VM per period; tokens ``min(hours × tph, tpm)``; a VM that did not
  run is left out; deleted VMs are in like any other.
- Plan: all of a period's hours are priced at the plan the VM was on at the period's end (or when it
  was deleted): the last plan the meter saw before ``to``. It is the rule of the usage endpoint (§8.3
  rule 5), so an invoice does not depend on which source was configured, and it applies one plan's
  monthly cap once, as D2 defines the cap per server per month. Splitting the hours by plan would need
  a cap rule no document gives and would round each part up, billing a resized VM up to an hour more.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from services.usage_collector.meter_progress import Gap
from services.usage_collector.meter_store import PlanRow, RunRow, VmRow
from services.usage_collector.usage import MAX_NAME
from shared.events.billing import VmUsage
from shared.events.metering import CoverageGap, Estimate, GapPolicy, MeteredPlan

HOUR = timedelta(hours=1)
Interval = tuple[datetime, datetime]


def _middle(a: datetime, b: datetime) -> datetime:
    return a + (b - a) / 2


def run_interval(
    run: RunRow, *, estimate: Estimate, period_end: datetime, epoch_ends: Mapping[uuid.UUID, datetime]
) -> Interval | None:
    start = run.started_at
    if estimate == "midpoint" and run.start_bound is not None:
        start = _middle(run.start_bound, run.started_at)
    if run.ended_at is not None:
        end = run.ended_at
        if estimate == "midpoint" and run.end_bound is not None:
            end = _middle(run.ended_at, run.end_bound)
    else:
        watched_until = epoch_ends.get(run.meter_epoch)
        if watched_until is None:
            return None
        end = period_end if watched_until >= period_end else watched_until
    return (start, end) if end > start else None


def without_gaps(interval: Interval, gaps: Sequence[Gap]) -> list[Interval]:
    """The interval minus every gap it spans entirely (a VM seen running before and after)."""
    pieces = [interval]
    for gap in gaps:
        if not (interval[0] <= gap.starts_at and gap.ends_at <= interval[1]):
            continue
        cut: list[Interval] = []
        for start, end in pieces:
            if gap.ends_at <= start or gap.starts_at >= end:
                cut.append((start, end))
                continue
            if start < gap.starts_at:
                cut.append((start, gap.starts_at))
            if gap.ends_at < end:
                cut.append((gap.ends_at, end))
        pieces = cut
    return pieces


def running_seconds(intervals: Sequence[Interval], starts_at: datetime, ends_at: datetime) -> timedelta:
    clipped = sorted((max(start, starts_at), min(end, ends_at)) for start, end in intervals)
    total, covered_until = timedelta(), starts_at
    for start, end in clipped:
        start = max(start, covered_until)
        if end > start:
            total += end - start
            covered_until = end
    return total


def ran_between(intervals: Sequence[Interval], starts_at: datetime, ends_at: datetime) -> Interval | None:
    """The first and the last instant of running time inside ``[starts_at, ends_at)``, for the invoice line."""
    inside = [(max(start, starts_at), min(end, ends_at)) for start, end in intervals]
    inside = [(start, end) for start, end in inside if end > start]
    return (min(start for start, _ in inside), max(end for _, end in inside)) if inside else None


def billable_hours(running: timedelta) -> int:
    return -((-running) // HOUR)


def plan_at_end(plans: Sequence[PlanRow], ends_at: datetime) -> MeteredPlan | None:
    """The last plan seen before ``ends_at`` (plans are given oldest first); else the first one seen."""
    before = [row.plan for row in plans if row.effective_at < ends_at]
    if before:
        return before[-1]
    return plans[0].plan if plans else None


def metered_usage(
    runs: Sequence[RunRow],
    plans: Sequence[PlanRow],
    vms: Mapping[int, VmRow],
    gaps: Sequence[Gap],
    *,
    starts_at: datetime,
    ends_at: datetime,
    estimate: Estimate,
    gap_policy: GapPolicy,
    epoch_ends: Mapping[uuid.UUID, datetime],
) -> tuple[VmUsage, ...]:
    by_server: dict[int, list[Interval]] = {}
    for run in runs:
        interval = run_interval(run, estimate=estimate, period_end=ends_at, epoch_ends=epoch_ends)
        if interval is None:
            continue
        pieces = without_gaps(interval, gaps) if gap_policy == "skip" else [interval]
        by_server.setdefault(run.server_id, []).extend(pieces)
    plans_by_server: dict[int, list[PlanRow]] = {}
    for row in plans:
        plans_by_server.setdefault(row.server_id, []).append(row)
    usages = []
    for server_id in sorted(by_server):
        hours = billable_hours(running_seconds(by_server[server_id], starts_at, ends_at))
        plan = plan_at_end(plans_by_server.get(server_id, []), ends_at)
        if hours == 0 or plan is None:
            continue
        vm = vms.get(server_id)
        ran = ran_between(by_server[server_id], starts_at, ends_at)
        usages.append(
            VmUsage(
                server_id=server_id,
                uuid=(vm.uuid if vm else "")[:64],
                name=(vm.name if vm else "")[:MAX_NAME],
                plan_id=plan.id,
                plan_name=plan.name[:MAX_NAME],
                hours=hours,
                tokens_per_hour=plan.tokens_per_hour,
                tokens_per_month=plan.tokens_per_month,
                tokens=min(hours * plan.tokens_per_hour, plan.tokens_per_month),
                created_at=vm.created_at if vm else None,
                deleted_at=vm.deleted_at if vm else None,
                ran_from=ran[0] if ran else None,
                ran_until=ran[1] if ran else None,
            )
        )
    return tuple(usages)


def coverage_gaps(
    gaps: Sequence[Gap],
    *,
    starts_at: datetime,
    ends_at: datetime,
    metered_since: datetime | None,
    gap_policy: GapPolicy,
) -> tuple[CoverageGap, ...]:
    """Every stretch of the period the meter did not watch, for the invoice's provenance."""
    found = []
    if metered_since is None or metered_since > starts_at:
        until = ends_at if metered_since is None else min(metered_since, ends_at)
        found.append(CoverageGap(starts_at=starts_at, ends_at=until, billed=False))
    for gap in gaps:
        if gap.ends_at > starts_at and gap.starts_at < ends_at:
            found.append(
                CoverageGap(
                    starts_at=max(gap.starts_at, starts_at),
                    ends_at=min(gap.ends_at, ends_at),
                    billed=gap_policy == "bill",
                )
            )
    return tuple(found)
