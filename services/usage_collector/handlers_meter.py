"""The usage collector's meter source: recording what the meter saw, and a period's usage from it.

A customer's period is billed from the meter only once the collector holds every transition up to a
sweep that began at or after the period's end. Until then the work item waits
(``usage_collector_meter_waiting``): the meter may not have swept that far yet, or that sweep's
transitions may still be on their way. Whatever completes the story (the sweep that gets past the end,
or the last transition of a sweep that announced more) requests it again. A period is never billed
short, and a meter that is down makes customers wait, visibly, instead of parking them.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shared.bus.processing import HandlerContext
from shared.events.billing import CustomerUsageRequested, UsageCollected, VmUsage, window_fields
from shared.events.metering import MeteringProvenance, MeterSwept, VmDeleted, VmPlanChanged, VmRunEnded, VmRunStarted
from shared.periods import BillingPeriod

from services.usage_collector import meter_progress, meter_store, store
from services.usage_collector.metered import coverage_gaps, metered_usage
from services.usage_collector.settings import UsageCollectorSettings


class MeterNotThere(ValueError):
    """The meter has not been observed past the period's end: its usage cannot be computed yet."""


def metered_period(session: Session, solusvm_user_id: int, period: BillingPeriod,
                   settings: UsageCollectorSettings, covered: meter_progress.Coverage | None = None,
                   ) -> tuple[tuple[VmUsage, ...], MeteringProvenance]:
    """A customer's usage of ``period`` from the meter's records, with how it was computed (reads only)."""
    covered = covered or meter_progress.coverage(session)
    if not covered.covers(period.ends_at) or covered.observed_until is None:
        raise MeterNotThere(f"the meter has not been observed past {period.ends_at.isoformat()} "
                            f"(it has up to {covered.observed_until})")
    runs = meter_store.runs_of(session, solusvm_user_id, period.starts_at, period.ends_at)
    server_ids = sorted({run.server_id for run in runs})
    gaps = meter_progress.gaps_between(session, period.starts_at, period.ends_at)
    vms = metered_usage(
        runs, meter_store.plans_of(session, server_ids), meter_store.vms_of(session, server_ids), gaps,
        starts_at=period.starts_at, ends_at=period.ends_at, estimate=settings.meter_estimate,
        gap_policy=settings.meter_gap_policy, epoch_ends=covered.epoch_ends,
    )
    provenance = MeteringProvenance(
        estimate=settings.meter_estimate, gap_policy=settings.meter_gap_policy,
        observed_until=covered.observed_until,
        gaps=coverage_gaps(gaps, starts_at=period.starts_at, ends_at=period.ends_at,
                           metered_since=covered.metered_since, gap_policy=settings.meter_gap_policy),
    )
    return vms, provenance


def record_meter_event(event: VmRunStarted | VmRunEnded | VmPlanChanged | VmDeleted, ctx: HandlerContext) -> None:
    if meter_store.record_event(ctx.session, event):
        _advance_and_release(event.meter_epoch, ctx)


def record_sweep(event: MeterSwept, ctx: HandlerContext) -> None:
    """Note the sweep, move the complete-and-contiguous mark, and request again the work items that
    were waiting for the meter to get past their period's end."""
    meter_store.record_sweep(ctx.session, event)
    _advance_and_release(event.meter_epoch, ctx)


def _advance_and_release(epoch: uuid.UUID, ctx: HandlerContext) -> None:
    meter_progress.advance_epoch(ctx.session, epoch)
    covered = meter_progress.coverage(ctx.session)
    if covered.observed_until is None:
        return
    released = meter_progress.release_waiting(ctx.session, covered.observed_until)
    ctx.emit_all([
        (CustomerUsageRequested(period=item.period, starts_at=item.starts_at, ends_at=item.ends_at,
                                timezone=item.timezone, whmcs_client_id=item.whmcs_client_id,
                                solusvm_user_id=item.solusvm_user_id, trigger=item.trigger),  # type: ignore[arg-type]
         f"{item.period}/{item.whmcs_client_id}")
        for item in released
    ])
    if released:
        ctx.log.info("work waiting for the meter requested again", count=len(released),
                     observed_until=covered.observed_until.isoformat())


def collect_metered(event: CustomerUsageRequested, period: BillingPeriod, ctx: HandlerContext,
                    settings: UsageCollectorSettings) -> None:
    with ctx.separate_transaction() as progress:
        meter_progress.advance(progress)
        covered = meter_progress.coverage(progress)
    if not covered.covers(period.ends_at):
        meter_progress.wait_for_meter(ctx.session, meter_progress.Waiting(
            period=period.key, whmcs_client_id=event.whmcs_client_id, solusvm_user_id=event.solusvm_user_id,
            starts_at=period.starts_at, ends_at=period.ends_at, timezone=period.timezone, trigger=event.trigger,
        ), ctx.now())
        ctx.log.info("waiting for the meter to observe past the period's end", period=period.key,
                     client_id=event.whmcs_client_id, ends_at=period.ends_at.isoformat(),
                     observed_until=covered.observed_until.isoformat() if covered.observed_until else None)
        return
    vms, provenance = metered_period(ctx.session, event.solusvm_user_id, period, settings, covered)
    total = sum(vm.tokens for vm in vms)
    collected = UsageCollected(
        **window_fields(period), whmcs_client_id=event.whmcs_client_id, solusvm_user_id=event.solusvm_user_id,
        vms=vms, total_tokens=total, trigger=event.trigger, source="meter", metering=provenance,
    )
    store.record_collection(ctx.session, period=period.key, client_id=event.whmcs_client_id,
                            solusvm_user_id=event.solusvm_user_id, vm_count=len(vms), total_tokens=total,
                            now=ctx.now())
    ctx.emit(collected, key="usage")
