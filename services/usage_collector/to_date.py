"""Month-to-date usage for the client area: what answers the signup's ``UsageToDateRequested`` (the
handler, ``report_usage_to_date``, is in handlers.py).

The collector owns where usage comes from, so it computes the figure customers see during the month
with the rules it bills by, from the configured source:

- ``endpoint``: SolusVM 2's period-usage endpoint for ``[month start, now)`` (§8 takes any window inside
  a month; rounding and the cap apply to the window, as they will to the whole month);
- ``meter``: the runs the meter reported, up to the start of its last complete sweep (``as_of`` says
  how far that is), with the same gap policy and estimate as a close.

A figure that cannot be had now (SolusVM 2 not answering, the meter not started) is not retried: the
page shows the older figure with its time, and the next view asks again. A request for a client this
collector does not bill is ignored.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.usage_collector import meter_progress, meter_store
from services.usage_collector.metered import metered_usage
from services.usage_collector.settings import UsageCollectorSettings
from services.usage_collector.usage import vm_usages
from shared.bus.handler_context import HandlerContext
from shared.events.billing import VmUsage
from shared.ports import SolusVM
from shared.upstream.errors import UpstreamError

# A month is at most 31 days: a request older than that is for a month whose figures the invoice has.
LONGEST_MONTH = timedelta(days=31)
MAX_VMS = 500


def from_endpoint(
    ctx: HandlerContext, solusvm: SolusVM, user_id: int, starts_at: datetime, now: datetime
) -> tuple[datetime, tuple[VmUsage, ...]] | None:
    try:
        usage = solusvm.period_usage(user_id, starts_at, now)
    except UpstreamError as exc:
        ctx.log.warning("usage to date not available from SolusVM 2 now", error=type(exc).__name__)
        return None
    return now, vm_usages(usage)


def from_meter(
    ctx: HandlerContext, user_id: int, starts_at: datetime, now: datetime, settings: UsageCollectorSettings
) -> tuple[datetime, tuple[VmUsage, ...]] | None:
    covered = meter_progress.coverage(ctx.session)
    if covered.observed_until is None or covered.observed_until <= starts_at:
        ctx.log.info("usage to date: the meter has not observed this month yet")
        return None
    as_of = min(now, covered.observed_until)
    runs = meter_store.runs_of(ctx.session, user_id, starts_at, as_of)
    server_ids = sorted({run.server_id for run in runs})
    vms = metered_usage(
        runs,
        meter_store.plans_of(ctx.session, server_ids),
        meter_store.vms_of(ctx.session, server_ids),
        meter_progress.gaps_between(ctx.session, starts_at, as_of),
        starts_at=starts_at,
        ends_at=as_of,
        estimate=settings.meter_estimate,
        gap_policy=settings.meter_gap_policy,
        epoch_ends=covered.epoch_ends,
    )
    return as_of, vms
