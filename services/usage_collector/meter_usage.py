"""A customer's period usage from what the meter saw (reads only): for a close, and for ``postpay replay
--dry-run``.

A customer's period is billed from the meter only once the collector holds every transition up to a
sweep that began at or after the period's end. Until then the work item waits
(``usage_collector_meter_waiting``): the meter may not have swept that far yet, or that sweep's
transitions may still be on their way. Whatever completes the story (the sweep that gets past the end,
or the last transition of a sweep that announced more) requests it again. A period is never billed
short, and a meter that is down makes customers wait, visibly, instead of parking them.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.usage_collector import meter_progress, meter_store
from services.usage_collector.metered import coverage_gaps, metered_usage
from services.usage_collector.settings import UsageCollectorSettings
from shared.events.billing import VmUsage
from shared.events.metering import MeteringProvenance
from shared.periods import BillingPeriod


class MeterNotThere(ValueError):
    """The meter has not been observed past the period's end: its usage cannot be computed yet."""


def metered_period(
    session: Session,
    solusvm_user_id: int,
    period: BillingPeriod,
    settings: UsageCollectorSettings,
    covered: meter_progress.Coverage | None = None,
) -> tuple[tuple[VmUsage, ...], MeteringProvenance]:
    """A customer's usage of ``period`` from the meter's records, with how it was computed (reads only)."""
    covered = covered or meter_progress.coverage(session)
    if not covered.covers(period.ends_at) or covered.observed_until is None:
        raise MeterNotThere(
            f"the meter has not been observed past {period.ends_at.isoformat()} (it has up to {covered.observed_until})"
        )
    runs = meter_store.runs_of(session, solusvm_user_id, period.starts_at, period.ends_at)
    server_ids = sorted({run.server_id for run in runs})
    gaps = meter_progress.gaps_between(session, period.starts_at, period.ends_at)
    vms = metered_usage(
        runs,
        meter_store.plans_of(session, server_ids),
        meter_store.vms_of(session, server_ids),
        gaps,
        starts_at=period.starts_at,
        ends_at=period.ends_at,
        estimate=settings.meter_estimate,
        gap_policy=settings.meter_gap_policy,
        epoch_ends=covered.epoch_ends,
    )
    provenance = MeteringProvenance(
        estimate=settings.meter_estimate,
        gap_policy=settings.meter_gap_policy,
        observed_until=covered.observed_until,
        gaps=coverage_gaps(
            gaps,
            starts_at=period.starts_at,
            ends_at=period.ends_at,
            metered_since=covered.metered_since,
            gap_policy=settings.meter_gap_policy,
        ),
    )
    return vms, provenance
