"""The usage collector: its customer projection, a fan-out that survives a crash halfway, replays
narrowed to some clients, and per-customer failures that park on their own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.usage_collector import store as collector_store
from shared.bus.memory import InMemoryBus
from shared.clock import ManualClock
from shared.db import Database
from shared.events.enrollment import UserProvisioned
from simulators.faults import FaultRule
from tests.support.billing import BillingHarness, VmHistory
from tests.support.bus_helpers import metric, publish, wait_until
from tests.support.system import Upstreams

PERIOD = "2026-10"
NOW = datetime(2026, 11, 1, 0, 15, tzinfo=UTC)
START = datetime(2026, 10, 1, tzinfo=UTC)
COLLECT = "usage_collector.collect_usage"


def handled(queue: str, outcome: str = "done") -> float:
    return metric("postpay_messages_handled_total", handler=queue, outcome=outcome)


def test_a_fan_out_that_crashes_halfway_resumes_after_its_last_chunk_without_duplicates(
    bus: Any, postgres_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_advance = collector_store.advance_fanout
    calls = {"n": 0}

    def crash_on_the_third_chunk(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionError("database connection lost mid fan-out")
        real_advance(*args, **kwargs)

    monkeypatch.setattr(collector_store, "advance_fanout", crash_on_the_third_chunk)
    with Upstreams(now=NOW) as upstreams:
        harness = BillingHarness(upstreams, bus, postgres_database, clock=ManualClock(NOW), chunk_size=3).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            customers = [harness.add_customer("USD", [VmHistory("vm", plan, [(START, None)])]) for _ in range(11)]
            harness.enroll(customers)
            collected_before = handled(COLLECT)
            harness.close(PERIOD)
            status = harness.wait_settled(PERIOD, 11)
        finally:
            harness.stop()
    assert calls["n"] == 5, "chunks 1-2, the crash, then chunks 3-4 after the redelivery"
    assert (status.requested, status.fanout_finished, status.invoiced) == (11, True, 11)
    assert handled(COLLECT) - collected_before == 11, "each customer's work item was handled once"
    assert all(len(harness.invoices_of(c.client_id)) == 1 for c in customers)


def test_a_replay_for_some_clients_collects_only_theirs(memory_bus: InMemoryBus, sqlite_database: Database) -> None:
    clock = ManualClock(NOW)
    with Upstreams(now=NOW) as upstreams:
        harness = BillingHarness(upstreams, memory_bus, sqlite_database, clock=clock).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            customers = [harness.add_customer("USD", [VmHistory("vm", plan, [(START, None)])]) for _ in range(4)]
            harness.enroll(customers)
            harness.close(PERIOD)
            harness.wait_settled(PERIOD, 4)
            clock.advance(hours=1)
            replayed = {customers[1].client_id, customers[3].client_id}
            emitted = harness.replay(PERIOD, sorted(replayed))
            wait_until(
                lambda: len(recollected(sqlite_database, NOW)) == 2 and fanout_done(sqlite_database, emitted.event_id),
                what="replay collected",
            )
        finally:
            harness.stop()
    assert recollected(sqlite_database, NOW) == replayed
    assert [len(harness.invoices_of(c.client_id)) for c in customers] == [1, 1, 1, 1]


def recollected(db: Database, since: datetime) -> set[int]:
    table = collector_store.collections
    with db.transaction() as session:
        return set(session.execute(select(table.c.whmcs_client_id).where(table.c.collected_at > since)).scalars())


def fanout_done(db: Database, close_event_id: uuid.UUID) -> bool:
    table = collector_store.fanouts
    with db.transaction() as session:
        row = session.execute(select(table).where(table.c.close_event_id == close_event_id)).first()
    return bool(row and row.finished and row.requested == 2)


def test_the_projection_keeps_the_earliest_enrolment_and_refuses_a_user_billed_to_two_clients(
    memory_bus: InMemoryBus, sqlite_database: Database
) -> None:
    with Upstreams(now=NOW) as upstreams:
        harness = BillingHarness(upstreams, memory_bus, sqlite_database, clock=ManualClock(NOW)).start()
        try:
            customer = harness.add_customer("USD", enrolled_at=START + timedelta(days=3))
            harness.enroll([customer])
            later = UserProvisioned(
                signup_id=uuid.uuid4(),
                email=customer.email,
                whmcs_client_id=customer.client_id,
                solusvm_user_id=customer.solusvm_user_id,
                enrolled_at=START + timedelta(days=9),
            )
            stolen = UserProvisioned(
                signup_id=uuid.uuid4(),
                email="other@example.com",
                whmcs_client_id=customer.client_id + 1000,
                solusvm_user_id=customer.solusvm_user_id,
                enrolled_at=START,
            )
            publish(memory_bus, later)
            publish(memory_bus, stolen)
            lot = memory_bus.parking_lot()
            (parked,) = wait_until(
                lambda: lot.list(memory_bus.naming.parking_lot("usage_collector.record_customer")),
                what="the conflicting enrolment parked",
            )
        finally:
            harness.stop()
    assert parked.reason == "rejected"
    assert f"already enrolled for WHMCS client {customer.client_id}" in parked.error
    with sqlite_database.transaction() as session:
        (only,) = collector_store.customers_page(session, enrolled_before=NOW, after=0, limit=10)
    assert (only.whmcs_client_id, only.enrolled_at) == (customer.client_id, START + timedelta(days=3))


def test_a_customer_whose_solusvm_user_is_gone_is_parked_alone(
    memory_bus: InMemoryBus, sqlite_database: Database
) -> None:
    with Upstreams(now=NOW) as upstreams:
        harness = BillingHarness(upstreams, memory_bus, sqlite_database, clock=ManualClock(NOW)).start()
        try:
            plan = harness.add_plan("S", 7, 5000)
            gone = harness.add_customer("USD")
            fine = harness.add_customer("USD", [VmHistory("vm", plan, [(START, None)])])
            harness.enroll([gone, fine])
            upstreams.solusvm_state.delete_user(gone.solusvm_user_id)
            # Two transient failures of the usage endpoint on the way: retried, not parked.
            upstreams.solusvm_faults.add(FaultRule(kind="server_error", route="GET /api/v1/users/{id}/usage", count=2))
            harness.close(PERIOD)
            harness.wait_settled(PERIOD, 1)
            lot = memory_bus.parking_lot()
            (parked,) = wait_until(lambda: lot.list(memory_bus.naming.parking_lot(COLLECT)), what="parked")
        finally:
            harness.stop()
    assert f"SolusVM 2 has no user {gone.solusvm_user_id}" in parked.error
    assert harness.invoices_of(gone.client_id) == [] and len(harness.invoices_of(fine.client_id)) == 1
