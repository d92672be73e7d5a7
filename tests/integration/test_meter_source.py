"""The meter as a usage source, end to end on the in-process bus: a close that comes before the meter
has watched past the period's end waits instead of billing short; gaps are billed or skipped by policy
and reported on the invoice and in ``period status``; a restarted meter, a second meter and redelivered
events never count anything twice; a sweep that dies halfway records nothing (no phantom stop)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import select

from postpay.bootstrap import service_builder
from postpay.ops.context import BILLING_SERVICES
from postpay.ops.dry_run import preview_period
from postpay.ops.reports import render_status
from services.meter import store as meter_store
from services.meter.public import meter_of
from services.meter.settings import MeterSettings
from services.usage_collector import meter_progress
from services.usage_collector.settings import UsageCollectorSettings
from shared.bus.memory import InMemoryBus
from shared.bus.messages import OutgoingMessage
from shared.db import Database
from shared.events.metering import MeteredPlan, MeterSwept, VmRunEnded, VmRunStarted
from shared.periods import BillingPeriod
from tests.support.billing import PRICES, BillingHarness, Customer, VmHistory, expected_lines
from tests.support.bus_helpers import metric, publish, wait_until
from tests.support.metering import drive_meter
from tests.support.system import Upstreams

PERIOD = BillingPeriod.parse("2026-10")
START, END = PERIOD.starts_at, PERIOD.ends_at
H = timedelta(hours=1)
INTERVAL = timedelta(hours=1)


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with Upstreams(now=START - 2 * H) as running:
        yield running


def harness_for(upstreams: Upstreams, bus: Any, db: Database, **collector: Any) -> BillingHarness:
    harness = BillingHarness(
        upstreams,
        bus,
        db,
        clock=upstreams.solusvm_clock.now,
        services=(*BILLING_SERVICES, "meter"),
        collector=UsageCollectorSettings(usage_source="meter", **collector),
        extra_settings=[MeterSettings(meter_interval_seconds=int(INTERVAL.total_seconds()))],
    )
    return harness.start()


def one_customer(harness: BillingHarness) -> Customer:
    plan = harness.add_plan("S", 7, 5000)
    customer = harness.add_customer(
        "USD",
        [
            VmHistory("always", plan, [(START - 10 * 24 * H, None)]),
            VmHistory("mid", plan, [(START + 100 * H + timedelta(minutes=7), START + 130 * H + timedelta(minutes=7))]),
        ],
    )
    harness.enroll([customer])
    return customer


def meter_until(harness: BillingHarness, upstreams: Upstreams, moment: Any) -> int:
    return drive_meter(harness, upstreams.solusvm_clock, until=moment)


def collected_past(harness: BillingHarness, moment: Any) -> bool:
    with harness.db.transaction() as session:
        meter_progress.advance(session)
        return meter_progress.coverage(session).covers(moment)


def waiting(harness: BillingHarness) -> int:
    meter = harness.status(PERIOD.key).meter
    return meter.waiting if meter is not None else 0


def invoice_of(harness: BillingHarness, customer: Customer) -> Any:
    (invoice,) = harness.invoices_of(customer.client_id)
    return invoice


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
def test_a_close_before_the_meter_watched_past_the_end_waits_and_then_bills_the_whole_month(
    upstreams: Upstreams, memory_bus: InMemoryBus, database: Database
) -> None:
    harness = harness_for(upstreams, memory_bus, database)
    try:
        customer = one_customer(harness)
        meter_until(harness, upstreams, END - 30 * timedelta(minutes=1))  # the meter is down at midnight
        upstreams.solusvm_clock.set(END + 15 * timedelta(minutes=1))  # the scheduler's tick at 00:15
        harness.close(PERIOD.key)
        wait_until(lambda: waiting(harness) == 1, what="the work item waiting for the meter")
        status = harness.status(PERIOD.key)
        assert (status.collected, status.invoiced) == (0, 0), "nothing billed from a meter short of the end"
        assert harness.invoices_of(customer.client_id) == []
        meter_until(harness, upstreams, END + 2 * H)  # the meter comes back and sweeps past midnight
        harness.wait_settled(PERIOD.key, 1)
        deps = harness.context.deps
        previews = list(
            preview_period(
                database,
                deps.solusvm,
                deps.whmcs,
                PERIOD,
                harness.invoicer_settings,
                now=END + 2 * H,
                collector=UsageCollectorSettings(usage_source="meter"),
            )
        )
    finally:
        harness.stop()
    assert [p.verdict for p in previews] == ["unchanged"], "the dry run computes the meter's invoice the same way"
    assert previews[0].draft is not None and "Usage metered by postpay" in previews[0].draft.notes
    expected = expected_lines(customer, PERIOD, PRICES["USD"], now=END + 2 * H)
    assert [(line.hours, line.tokens) for line in expected] == [(744, 5000), (30, 210)]
    invoice = invoice_of(harness, customer)
    assert [item.amount for item in invoice.items] == [line.amount for line in expected]
    assert "Usage metered by postpay" in invoice.notes and "No meter gaps." in invoice.notes, (
        "45 minutes without a sweep is less than two intervals: no gap"
    )
    assert waiting(harness) == 0


@pytest.mark.parametrize(("policy", "always_hours"), [("bill", 744), ("skip", 744 - 6)])
def test_a_gap_is_billed_through_or_skipped_by_policy_and_reported_everywhere(
    upstreams: Upstreams, memory_bus: InMemoryBus, postgres_database: Database, policy: str, always_hours: int
) -> None:
    harness = harness_for(upstreams, memory_bus, postgres_database, meter_gap_policy=policy)
    try:
        customer = one_customer(harness)
        down = START + 10 * 24 * H + 12 * H
        meter_until(harness, upstreams, down)
        upstreams.solusvm_clock.set(down + 6 * H)  # down for six hours
        meter_until(harness, upstreams, END + 2 * H)
        wait_until(lambda: collected_past(harness, END), what="every sweep recorded")
        harness.close(PERIOD.key)
        harness.wait_settled(PERIOD.key, 1)
        status = harness.status(PERIOD.key)
    finally:
        harness.stop()
    invoice = invoice_of(harness, customer)
    assert f"(#{customer.vms[0].server_id}, plan S): {always_hours} hours" in invoice.items[0].description
    assert "30 hours" in invoice.items[1].description, "a run between polls on both sides of no gap is exact"
    billed = "billed through" if policy == "bill" else "not billed"
    assert f"2026-10-11T12:00:00Z to 2026-10-11T18:00:00Z ({billed})" in invoice.notes
    assert status.meter is not None and [(g.starts_at, g.ends_at) for g in status.meter.gaps] == [(down, down + 6 * H)]
    console = Console(record=True, width=200)
    render_status(console, status)
    printed = console.export_text()
    assert "gap: 2026-10-11T12:00:00+00:00 to 2026-10-11T18:00:00+00:00 (6.0 h unobserved)" in printed
    assert "past the period's end" in printed and "not yet" not in printed


def test_a_restarted_meter_a_second_meter_and_redelivered_events_never_count_twice(
    upstreams: Upstreams, memory_bus: InMemoryBus, postgres_database: Database
) -> None:
    harness = harness_for(upstreams, memory_bus, postgres_database)
    sent: list[Any] = []
    meter_service = harness.context.services["meter"]
    record_all = meter_service.outbox.add_all

    def recording(session: Any, envelopes: Any) -> None:
        sent.extend(envelopes)
        record_all(session, envelopes)

    meter_service.outbox.add_all = recording  # type: ignore[method-assign]
    dropped_before = metric("postpay_meter_sweeps_total", outcome="dropped")
    try:
        customer = one_customer(harness)
        meter_until(harness, upstreams, START + 5 * 24 * H)
        # A restart: a fresh process's meter, knowing nothing but the database.
        restarted = service_builder("meter")(harness.context.deps)
        restarted.outbox.add_all = recording  # type: ignore[method-assign]
        harness.context.services["meter"] = restarted
        meter_until(harness, upstreams, START + 12 * 24 * H)
        # Two meters sweep at the same instant: one commits, the other's sweep is dropped.
        rival = meter_of(service_builder("meter")(harness.context.deps))
        rival.outbox.add_all = recording
        rival.sweep()
        upstreams.solusvm_clock.advance(INTERVAL.total_seconds())
        both = [threading.Thread(target=meter.sweep) for meter in (meter_of(restarted), rival)]
        for thread in both:
            thread.start()
        for thread in both:
            thread.join()
        meter_until(harness, upstreams, END + 2 * H)
        # Every meter event delivered a second time, as after a relay crash before its delete.
        publisher = memory_bus.publisher()
        publisher.publish([OutgoingMessage.from_envelope(envelope) for envelope in sent])
        wait_until(lambda: collected_past(harness, END), what="every sweep recorded")
        harness.close(PERIOD.key)
        harness.wait_settled(PERIOD.key, 1)
    finally:
        harness.stop()
    sweeps = [e.payload.sweep for e in sent if e.event_type == "MeterSwept"]
    assert sorted(sweeps) == list(range(1, len(sweeps) + 1)), "each sweep number published once"
    assert metric("postpay_meter_sweeps_total", outcome="dropped") - dropped_before == 1, "the rival's sweep"
    starts = [(e.payload.server_id, e.payload.run) for e in sent if e.event_type == "VmRunStarted"]
    assert len(starts) == len(set(starts)) == 2
    expected = expected_lines(customer, PERIOD, PRICES["USD"], now=END)
    invoice = invoice_of(harness, customer)
    assert [item.amount for item in invoice.items] == [line.amount for line in expected]


def test_a_sweep_that_dies_halfway_records_nothing_and_stops_no_vm(
    upstreams: Upstreams, memory_bus: InMemoryBus, postgres_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = harness_for(upstreams, memory_bus, postgres_database)
    try:
        customer = one_customer(harness)
        plan = customer.vms[0].plan
        harness.add_vms(customer, [VmHistory(f"extra-{n}", plan, [(START - 24 * H, None)]) for n in range(5)])
        meter_until(harness, upstreams, START + 24 * H)
        meter = meter_of(harness.context.services["meter"])
        with postgres_database.transaction() as session:
            before = meter_store.lock_cursor(session).sweep
        real_page = meter.deps.solusvm.server_page

        def first_page_then_crash(page: int, *, per_page: int) -> tuple[list[Any], int | None]:
            if page == 1:
                return real_page(1, per_page=2)  # two of seven: four pages to read
            raise ConnectionResetError("the meter's connection died in the middle of the list")

        monkeypatch.setattr(meter.deps.solusvm, "server_page", first_page_then_crash)
        written: list[Any] = []
        monkeypatch.setattr(meter.outbox, "add_all", lambda session, envelopes: written.extend(envelopes))
        upstreams.solusvm_clock.advance(INTERVAL.total_seconds())
        with pytest.raises(ConnectionResetError):
            meter.sweep()
        with postgres_database.transaction() as session:
            assert meter_store.lock_cursor(session).sweep == before, "nothing of the dead sweep was kept"
        assert written == [], "no event of the dead sweep reached the outbox"
        monkeypatch.undo()
        assert meter.sweep() is not None
        meter_until(harness, upstreams, END + 2 * H)
        wait_until(lambda: collected_past(harness, END), what="every sweep recorded")
        harness.close(PERIOD.key)
        harness.wait_settled(PERIOD.key, 1)
    finally:
        harness.stop()
    with postgres_database.transaction() as session:
        from services.usage_collector.meter_store import meter_runs

        ends = session.execute(
            select(meter_runs.c.server_id, meter_runs.c.end_reason).where(meter_runs.c.ended_at.is_not(None))
        ).all()
    assert [reason for _, reason in ends] == ["stopped"], "only the VM that really stopped has an end"
    invoice = invoice_of(harness, customer)
    assert sum(1 for item in invoice.items if ": 744 hours" in item.description) == 6


def test_a_close_waits_for_every_transition_of_the_sweep_past_the_end_not_just_the_sweep(
    upstreams: Upstreams, memory_bus: InMemoryBus, postgres_database: Database
) -> None:
    """The sweep after midnight announced one transition (the VM stopped at 14:00 on the 31st) that is
    still on its way: billing now would count the run as open to the end, ten hours too many."""
    harness = BillingHarness(
        upstreams,
        memory_bus,
        postgres_database,
        clock=upstreams.solusvm_clock.now,
        collector=UsageCollectorSettings(usage_source="meter"),
    ).start()
    epoch = uuid.uuid4()
    try:
        plan = harness.add_plan("S", 7, 5000)
        customer = harness.add_customer("USD")
        harness.enroll([customer])
        common = {"meter_epoch": epoch, "server_id": 900}
        started = VmRunStarted(
            **common,
            sweep=1,
            run=1,
            solusvm_user_id=customer.solusvm_user_id,
            name="late",
            plan=MeteredPlan(id=plan.id, name="S", tokens_per_hour=7, tokens_per_month=5000),
            started_at=START - H,
            evidence="poll",
        )
        ended = VmRunEnded(**common, sweep=2, run=1, ended_at=END - 10 * H, not_running_at=END, reason="stopped")
        swept = [
            MeterSwept(
                meter_epoch=epoch,
                sweep=n,
                started_at=at,
                finished_at=at,
                interval_seconds=60,
                events=1,
                servers=1,
                running=1,
                unreadable=0,
                unattributed=0,
            )
            for n, at in ((1, START - H), (2, END + timedelta(minutes=1)))
        ]
        for event in (started, *swept):
            publish(memory_bus, event, producer="meter")
        upstreams.solusvm_clock.set(END + 15 * timedelta(minutes=1))
        harness.close(PERIOD.key)
        wait_until(lambda: waiting(harness) == 1, what="the work item waiting for the sweep's last transition")
        assert harness.invoices_of(customer.client_id) == []
        publish(memory_bus, ended, producer="meter")
        harness.wait_settled(PERIOD.key, 1)
    finally:
        harness.stop()
    (item,) = invoice_of(harness, customer).items
    assert ": 734 hours, 5000 tokens" in item.description, item.description
