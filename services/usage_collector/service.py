"""The usage collector: enrolled customers in, one usage report per customer per closed period out; and
the month so far, when the signup asks for a customer's client-area panel."""

from __future__ import annotations

from services.usage_collector import handlers, store
from services.usage_collector.settings import UsageCollectorSettings
from shared.bus.topology import DATABASE_ONLY_BATCH, Events, Subscription, bind
from shared.dependencies import Dependencies
from shared.events.billing import BillingPeriodClosed, CustomerUsageRequested
from shared.events.enrollment import UserProvisioned
from shared.events.metering import MeterSwept, VmDeleted, VmPlanChanged, VmRunEnded, VmRunStarted
from shared.events.usage import UsageToDateRequested
from shared.service import ServiceDefinition

NAME = "usage_collector"
METER_EVENTS: Events[VmRunStarted | VmRunEnded | VmPlanChanged | VmDeleted] = (
    VmRunStarted,
    VmRunEnded,
    VmPlanChanged,
    VmDeleted,
)


def build(deps: Dependencies) -> ServiceDefinition:
    settings = deps.settings(UsageCollectorSettings)
    fan_out = bind(handlers.fan_out, chunk_size=settings.usage_fanout_chunk_size)
    collect_usage = bind(handlers.collect_usage, solusvm=deps.solusvm, settings=settings)
    return ServiceDefinition(
        name=NAME,
        tables=store.tables,
        subscriptions=[
            Subscription(
                NAME, "record_customer", (UserProvisioned,), handlers.record_customer, batch=DATABASE_ONLY_BATCH
            ),
            Subscription(NAME, "fan_out", (BillingPeriodClosed,), fan_out),
            Subscription(NAME, "collect_usage", (CustomerUsageRequested,), collect_usage),
            # No subscription to the invoicer's outcomes (InvoiceCreated, NothingToBill): period status reads
            # them from the invoicer's ledger, one delivery per invoice fewer (docs/benchmarks.md).
            # What the meter saw, recorded whichever source bills: switching to the meter later finds it all.
            Subscription(
                NAME, "record_meter_event", METER_EVENTS, handlers.record_meter_event, batch=DATABASE_ONLY_BATCH
            ),
            Subscription(NAME, "record_sweep", (MeterSwept,), handlers.record_sweep, batch=DATABASE_ONLY_BATCH),
            # The month so far, for the client-area panel (the signup keeps the answers).
            Subscription(
                NAME,
                "report_usage_to_date",
                (UsageToDateRequested,),
                bind(handlers.report_usage_to_date, solusvm=deps.solusvm, settings=settings),
            ),
        ],
    )
