"""The usage collector's handlers on fakes: the customer projection, the period's fan-out (one work
item per customer enrolled before the period ended, chunk by chunk), the usage fetch,
and the month so far for the client area."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from services.usage_collector import store
from services.usage_collector.settings import UsageCollectorSettings
from shared.events.billing import (
    BillingPeriodClosed,
    CustomerUsageRequested,
    window_fields,
)
from shared.events.enrollment import UserProvisioned
from shared.events.metering import MeteredPlan, MeterSwept, VmRunStarted
from shared.events.usage import UsageToDateRequested
from shared.periods import BillingPeriod
from shared.upstream.errors import UpstreamUnavailable
from shared.upstream.solusvm_models import ServerUsage, UsagePlan
from tests.fakes.service import ServiceUnderTest

PERIOD = BillingPeriod.parse("2026-10", "UTC")
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)
PLAN = UsagePlan(id=1, name="S", tokens_per_hour=7, tokens_per_month=5000)


@pytest.fixture
def collector() -> Iterator[ServiceUnderTest]:
    with ServiceUnderTest("usage_collector", settings=[UsageCollectorSettings(usage_fanout_chunk_size=2)]) as service:
        yield service


def enroll(service: ServiceUnderTest, client_id: int, user_id: int, at: datetime = LONG_AGO) -> str:
    event = UserProvisioned(
        signup_id=uuid.uuid4(),
        email=f"c{client_id}@example.com",
        whmcs_client_id=client_id,
        solusvm_user_id=user_id,
        enrolled_at=at,
    )
    return service.deliver("record_customer", event).kind


def server(server_id: int, hours: int) -> ServerUsage:
    return ServerUsage(
        id=server_id,
        uuid=f"uuid-{server_id}",
        name=f"vm-{server_id}",
        plan=PLAN,
        created_at=LONG_AGO,
        hours=hours,
        tokens=min(hours * 7, 5000),
    )


def test_an_enrolled_customer_is_remembered_once_and_a_user_cannot_be_billed_to_two_clients(
    collector: ServiceUnderTest,
) -> None:
    assert enroll(collector, 7, 70) == "done"
    assert enroll(collector, 7, 70) == "done"  # the same fact again (a replay) changes nothing
    outcome = collector.deliver(
        "record_customer",
        UserProvisioned(
            signup_id=uuid.uuid4(),
            email="thief@example.com",
            whmcs_client_id=8,
            solusvm_user_id=70,
            enrolled_at=LONG_AGO,
        ),
    )
    assert (outcome.kind, outcome.reason) == ("park", "rejected")
    assert [(r.whmcs_client_id, r.solusvm_user_id) for r in collector.rows(store.customers)] == [(7, 70)]


def test_a_closed_period_asks_for_each_customer_enrolled_before_its_end_once(collector: ServiceUnderTest) -> None:
    for client_id in (1, 2, 3, 4, 5):
        enroll(collector, client_id, client_id + 100)
    enroll(collector, 6, 106, at=PERIOD.ends_at + timedelta(seconds=1))  # enrolled after the month: not billed
    close = collector.envelope(BillingPeriodClosed(**window_fields(PERIOD)))

    assert collector.deliver("fan_out", close).kind == "done"
    assert collector.deliver("fan_out", close).kind == "duplicate"
    requests = collector.published("CustomerUsageRequested")
    assert [(r.whmcs_client_id, r.solusvm_user_id, r.period) for r in requests] == [
        (n, n + 100, "2026-10") for n in (1, 2, 3, 4, 5)
    ]
    (fanout,) = collector.rows(store.fanouts)
    assert (fanout.requested, fanout.finished, fanout.last_client_id) == (5, True, 5)


def test_a_replay_for_some_clients_asks_only_for_them(collector: ServiceUnderTest) -> None:
    for client_id in (1, 2, 3):
        enroll(collector, client_id, client_id + 100)
    collector.deliver("fan_out", BillingPeriodClosed(**window_fields(PERIOD), trigger="replay", only_client_ids=(2,)))
    assert [r.whmcs_client_id for r in collector.published("CustomerUsageRequested")] == [2]


def test_usage_is_fetched_for_the_whole_period_and_reported(collector: ServiceUnderTest) -> None:
    user = collector.solusvm.add_user("ada@example.com", billing_user_id=1)
    collector.solusvm.set_usage(user.id, [server(11, 100), server(12, 744)])
    request = CustomerUsageRequested(**window_fields(PERIOD), whmcs_client_id=1, solusvm_user_id=user.id)

    assert collector.deliver("collect_usage", request).kind == "done"
    (collected,) = collector.published("UsageCollected")
    assert (collected.whmcs_client_id, collected.solusvm_user_id, collected.period) == (1, user.id, "2026-10")
    assert [(v.server_id, v.hours, v.tokens) for v in collected.vms] == [(11, 100, 700), (12, 744, 5000)]
    assert collected.total_tokens == 5700
    (row,) = collector.rows(store.collections)
    assert (row.whmcs_client_id, row.vm_count, row.total_tokens, row.outcome) == (1, 2, 5700, "collected")


def test_a_user_solusvm_does_not_know_is_parked_and_an_outage_is_retried(collector: ServiceUnderTest) -> None:
    request = CustomerUsageRequested(**window_fields(PERIOD), whmcs_client_id=1, solusvm_user_id=999)
    parked = collector.deliver("collect_usage", request)
    assert (parked.kind, parked.reason) == ("park", "rejected") and "999" in parked.error

    user = collector.solusvm.add_user("ada@example.com")
    collector.solusvm.fail("period_usage", UpstreamUnavailable("down", upstream="solusvm"))
    retried = CustomerUsageRequested(**window_fields(PERIOD), whmcs_client_id=1, solusvm_user_id=user.id)
    assert collector.deliver("collect_usage", retried).kind == "retry"
    assert collector.published() == [] and collector.rows(store.collections) == []


def test_the_month_so_far_is_reported_for_a_billed_client_only(collector: ServiceUnderTest) -> None:
    month = BillingPeriod.parse("2026-11", "UTC")
    user = collector.solusvm.add_user("ada@example.com", billing_user_id=1)
    collector.solusvm.set_usage(user.id, [server(11, 33)])
    enroll(collector, 1, user.id)
    ask = {"period": "2026-11", "starts_at": month.starts_at, "timezone": "UTC"}

    collector.deliver("report_usage_to_date", UsageToDateRequested(whmcs_client_id=1, **ask))
    collector.deliver("report_usage_to_date", UsageToDateRequested(whmcs_client_id=2, **ask))  # not billed here

    (report,) = collector.published("UsageToDateReported")
    assert (report.whmcs_client_id, report.solusvm_user_id, report.source) == (1, user.id, "endpoint")
    assert report.as_of == collector.clock() and report.total_tokens == 231
    assert collector.solusvm.calls.count("period_usage") == 1


# -- the meter as the source ------------------------------------------------------------------------
EPOCH = uuid.UUID("00000000-0000-4000-8000-00000000e0c1")


def swept(sweep: int, at: datetime, events: int, interval: int = 3600) -> MeterSwept:
    return MeterSwept(
        meter_epoch=EPOCH,
        sweep=sweep,
        started_at=at,
        finished_at=at + timedelta(seconds=5),
        interval_seconds=interval,
        events=events,
        servers=1,
        running=1,
        unreadable=0,
        unattributed=0,
    )


def test_a_meter_billed_period_waits_for_a_sweep_past_its_end_then_is_collected_from_the_runs() -> None:
    settings = UsageCollectorSettings(usage_source="meter")
    with ServiceUnderTest("usage_collector", settings=[settings]) as collector:
        start = PERIOD.ends_at - timedelta(hours=10)
        collector.deliver(
            "record_meter_event",
            VmRunStarted(
                meter_epoch=EPOCH,
                sweep=1,
                server_id=11,
                run=1,
                solusvm_user_id=70,
                name="vm-11",
                plan=MeteredPlan(id=1, name="S", tokens_per_hour=7, tokens_per_month=5000),
                started_at=start,
                evidence="poll",
            ),
        )
        collector.deliver("record_sweep", swept(1, start, events=1))
        request = CustomerUsageRequested(**window_fields(PERIOD), whmcs_client_id=7, solusvm_user_id=70)
        assert collector.deliver("collect_usage", request).kind == "done"
        assert collector.published("UsageCollected") == []  # the meter has not been seen past the month's end

        for n in range(2, 13):  # hourly sweeps up to and past midnight, nothing changing
            collector.deliver("record_sweep", swept(n, start + timedelta(hours=n - 1), events=0))
        (again,) = collector.published("CustomerUsageRequested")  # the waiting work item, requested again
        assert (again.whmcs_client_id, again.solusvm_user_id, again.period) == (7, 70, "2026-10")
        assert collector.deliver("collect_usage", again).kind == "done"

        (collected,) = collector.published("UsageCollected")
        assert collected.source == "meter" and collected.metering is not None
        (vm_usage,) = collected.vms
        # Running from 14:00 to the end of the month: 10 hours, 70 tokens.
        assert (vm_usage.server_id, vm_usage.hours, vm_usage.tokens) == (11, 10, 70)
