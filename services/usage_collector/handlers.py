"""The usage collector's handlers: the customer projection, the fan-out, the fetch; what
the meter saw (recorded whichever source bills); and the month so far for the client-area panel."""

from __future__ import annotations

import uuid

from services.usage_collector import meter_progress, meter_store, store, to_date
from services.usage_collector.meter_usage import metered_period
from services.usage_collector.public import customer
from services.usage_collector.settings import UsageCollectorSettings
from services.usage_collector.usage import vm_usages
from shared.bus.handler_context import DatabaseContext, HandlerContext, database_first
from shared.errors import PermanentError
from shared.events.billing import (
    BillingPeriodClosed,
    CustomerUsageRequested,
    UsageCollected,
    period_of,
    window_fields,
)
from shared.events.enrollment import UserProvisioned
from shared.events.metering import MeterSwept, VmDeleted, VmPlanChanged, VmRunEnded, VmRunStarted
from shared.events.usage import UsageToDateReported, UsageToDateRequested
from shared.periods import BillingPeriod
from shared.ports import SolusVM
from shared.upstream.errors import UpstreamNotFound


def record_customer(event: UserProvisioned, ctx: DatabaseContext) -> None:
    """Remember who to bill: the WHMCS client, its SolusVM 2 user, and since when."""
    owner = store.customer_by_user(ctx.session, event.solusvm_user_id)
    if owner is not None and owner.whmcs_client_id != event.whmcs_client_id:
        # Two clients billed for one SolusVM user would both pay for the same VMs.
        raise PermanentError(
            f"SolusVM 2 user {event.solusvm_user_id} is already enrolled for WHMCS client "
            f"{owner.whmcs_client_id}, not {event.whmcs_client_id}"
        )
    customer = store.Customer(event.whmcs_client_id, event.solusvm_user_id, event.enrolled_at)
    store.save_customer(ctx.session, customer, ctx.now())


def fan_out(event: BillingPeriodClosed, ctx: HandlerContext, chunk_size: int) -> None:
    """One CustomerUsageRequested per customer enrolled before the period ended, chunk by chunk.

    Each chunk's events and the resume point commit together; a redelivery after a crash starts
    after the last committed chunk, and the events' ids are derived from this close event and the
    client id, so even a repeated chunk is deduplicated downstream.
    """
    period = period_of(event)
    window = window_fields(period)
    with ctx.checkpoint() as session:
        progress = store.start_fanout(session, ctx.event_id, period.key, event.trigger, ctx.now())
    after, finished = progress.last_client_id, progress.finished
    while not finished:
        with ctx.checkpoint() as session:
            page = store.customers_page(
                session, enrolled_before=period.ends_at, after=after, limit=chunk_size, only=event.only_client_ids
            )
            requests = [
                (
                    CustomerUsageRequested(
                        **window,
                        whmcs_client_id=customer.whmcs_client_id,
                        solusvm_user_id=customer.solusvm_user_id,
                        trigger=event.trigger,
                    ),
                    str(customer.whmcs_client_id),
                )
                for customer in page
            ]
            ctx.emit_all(requests, session=session)
            finished = len(page) < chunk_size
            after = page[-1].whmcs_client_id if page else after
            store.advance_fanout(
                session, ctx.event_id, last_client_id=after, added=len(page), finished=finished, now=ctx.now()
            )
    ctx.log.info("period fanned out", period=period.key, trigger=event.trigger)


# Its one upstream call only reads SolusVM 2's usage: a redelivery of a handled event repeats that read
# and is then found handled by its claim in ctx.session, before anything is written or emitted.
@database_first
def collect_usage(
    event: CustomerUsageRequested, ctx: HandlerContext, solusvm: SolusVM, settings: UsageCollectorSettings | None = None
) -> None:
    """The customer's usage for the whole period as one window (the monthly cap is per window): from
    SolusVM 2's usage endpoint, or computed from what the meter observed (``POSTPAY_USAGE_SOURCE``)."""
    period = period_of(event)
    if settings is not None and settings.usage_source == "meter":
        collect_metered(event, period, ctx, settings)
        return
    try:
        usage = solusvm.period_usage(event.solusvm_user_id, period.starts_at, period.ends_at)
    except UpstreamNotFound as exc:
        raise PermanentError(
            f"SolusVM 2 has no user {event.solusvm_user_id} (WHMCS client {event.whmcs_client_id})"
        ) from exc
    vms = vm_usages(usage)
    collected = UsageCollected(
        **window_fields(period),
        whmcs_client_id=event.whmcs_client_id,
        solusvm_user_id=event.solusvm_user_id,
        vms=vms,
        total_tokens=usage.total_tokens,
        trigger=event.trigger,
    )
    # ctx.writer: the row and the emitted event on the transaction's connection, with no Session made
    # for them, and (PostgreSQL) in one statement.
    store.record_collection(
        ctx.writer,
        period=period.key,
        client_id=event.whmcs_client_id,
        solusvm_user_id=event.solusvm_user_id,
        vm_count=len(vms),
        total_tokens=usage.total_tokens,
        now=ctx.now(),
        outbox=ctx.outbox,
        collected=ctx.emitted(collected, key="usage"),
    )


# What the meter saw, recorded whichever source bills (switching to the meter later finds it all); and
# a period billed from it once the meter has been observed past its end (see meter_usage.py).


def record_meter_event(event: VmRunStarted | VmRunEnded | VmPlanChanged | VmDeleted, ctx: DatabaseContext) -> None:
    if meter_store.record_event(ctx.session, event):
        _advance_and_release(event.meter_epoch, ctx)


def record_sweep(event: MeterSwept, ctx: DatabaseContext) -> None:
    """Note the sweep, move the complete-and-contiguous mark, and request again the work items that
    were waiting for the meter to get past their period's end."""
    meter_store.record_sweep(ctx.session, event)
    _advance_and_release(event.meter_epoch, ctx)


def _advance_and_release(epoch: uuid.UUID, ctx: DatabaseContext) -> None:
    meter_progress.advance_epoch(ctx.session, epoch)
    covered = meter_progress.coverage(ctx.session)
    if covered.observed_until is None:
        return
    released = meter_progress.release_waiting(ctx.session, covered.observed_until)
    ctx.emit_all(
        [
            (
                CustomerUsageRequested(
                    period=item.period,
                    starts_at=item.starts_at,
                    ends_at=item.ends_at,
                    timezone=item.timezone,
                    whmcs_client_id=item.whmcs_client_id,
                    solusvm_user_id=item.solusvm_user_id,
                    trigger=item.trigger,
                ),
                f"{item.period}/{item.whmcs_client_id}",
            )
            for item in released
        ]
    )
    if released:
        ctx.log.info(
            "work waiting for the meter requested again",
            count=len(released),
            observed_until=covered.observed_until.isoformat(),
        )


def collect_metered(
    event: CustomerUsageRequested, period: BillingPeriod, ctx: HandlerContext, settings: UsageCollectorSettings
) -> None:
    with ctx.read_first() as progress:
        meter_progress.advance(progress)
        covered = meter_progress.coverage(progress)
    if not covered.covers(period.ends_at):
        meter_progress.wait_for_meter(
            ctx.session,
            meter_progress.Waiting(
                period=period.key,
                whmcs_client_id=event.whmcs_client_id,
                solusvm_user_id=event.solusvm_user_id,
                starts_at=period.starts_at,
                ends_at=period.ends_at,
                timezone=period.timezone,
                trigger=event.trigger,
            ),
            ctx.now(),
        )
        ctx.log.info(
            "waiting for the meter to observe past the period's end",
            period=period.key,
            client_id=event.whmcs_client_id,
            ends_at=period.ends_at.isoformat(),
            observed_until=covered.observed_until.isoformat() if covered.observed_until else None,
        )
        return
    vms, provenance = metered_period(ctx.session, event.solusvm_user_id, period, settings, covered)
    total = sum(vm.tokens for vm in vms)
    collected = UsageCollected(
        **window_fields(period),
        whmcs_client_id=event.whmcs_client_id,
        solusvm_user_id=event.solusvm_user_id,
        vms=vms,
        total_tokens=total,
        trigger=event.trigger,
        source="meter",
        metering=provenance,
    )
    store.record_collection(
        ctx.session,
        period=period.key,
        client_id=event.whmcs_client_id,
        solusvm_user_id=event.solusvm_user_id,
        vm_count=len(vms),
        total_tokens=total,
        now=ctx.now(),
    )
    ctx.emit(collected, key="usage")


# The month so far, for the client-area panel (the signup keeps the answers; see to_date.py).


def report_usage_to_date(
    event: UsageToDateRequested, ctx: HandlerContext, *, solusvm: SolusVM, settings: UsageCollectorSettings
) -> None:
    billed = customer(ctx.session, event.whmcs_client_id)
    if billed is None:
        ctx.log.info("usage to date asked for a client not billed here: ignored", client_id=event.whmcs_client_id)
        return
    now = ctx.now().replace(microsecond=0)  # §8 answers in whole seconds, and the client checks the echo
    if not event.starts_at < now <= event.starts_at + to_date.LONGEST_MONTH:
        ctx.log.info("usage to date asked for a window that is not this month's: ignored", period=event.period)
        return
    if settings.usage_source == "meter":
        found = to_date.from_meter(ctx, billed.solusvm_user_id, event.starts_at, now, settings)
    else:
        found = to_date.from_endpoint(ctx, solusvm, billed.solusvm_user_id, event.starts_at, now)
    if found is None:
        return
    as_of, vms = found
    report = UsageToDateReported(
        whmcs_client_id=event.whmcs_client_id,
        solusvm_user_id=billed.solusvm_user_id,
        period=event.period,
        starts_at=event.starts_at,
        as_of=as_of,
        source=settings.usage_source,
        vms=vms[: to_date.MAX_VMS],
        total_tokens=sum(vm.tokens for vm in vms[: to_date.MAX_VMS]),
    )
    ctx.emit(report, key="usage-to-date")
