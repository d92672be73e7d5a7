"""The scheduler's own loop: where a fresh install starts, the daily tick at a local time, catching up
the months missed while it was down, and two schedulers never closing a month twice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import select

from services.scheduler import store
from services.scheduler.closing import Scheduler
from services.scheduler.settings import SchedulerSettings
from services.usage_collector import store as collector_store
from shared.bus.memory import InMemoryBus
from shared.clock import ManualClock
from shared.db import Database
from tests.support.billing import BillingHarness
from tests.support.bus_helpers import wait_until
from tests.support.system import Upstreams

BERLIN = "Europe/Berlin"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def emitted(db: Database) -> list[tuple[str, str]]:
    with db.transaction() as session:
        rows = session.execute(
            select(store.emissions.c.period, store.emissions.c.trigger).order_by(store.emissions.c.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def fanned_out(db: Database) -> list[str]:
    with db.transaction() as session:
        return sorted(session.execute(select(collector_store.fanouts.c.period)).scalars())


def test_the_loop_starts_at_the_install_month_ticks_at_local_time_and_catches_up_after_downtime(
    memory_bus: InMemoryBus, sqlite_database: Database
) -> None:
    clock = ManualClock(utc(2026, 10, 15, 9))
    settings = SchedulerSettings(billing_timezone=BERLIN, scheduler_run_at=time(0, 15), scheduler_poll_seconds=0.02)
    with Upstreams() as upstreams:
        harness = BillingHarness(upstreams, memory_bus, sqlite_database, clock=clock, scheduler=settings)
        harness.start(background=True)
        try:
            # A fresh install in mid-October: nothing before October is ever billed.
            wait_until(lambda: _anchor(sqlite_database) == "2026-10", what="install month recorded")
            # The daily ticks of October close nothing: the month has not ended.
            clock.set(utc(2026, 10, 31, 22))
            threading.Event().wait(0.3)
            assert emitted(sqlite_database) == []
            # 1 November 00:10 in Berlin is 23:10 UTC on 31 October: October has ended, the tick is not due.
            clock.set(utc(2026, 10, 31, 23, 10))
            threading.Event().wait(0.3)
            assert emitted(sqlite_database) == []
            clock.set(utc(2026, 10, 31, 23, 16))
            wait_until(lambda: emitted(sqlite_database) == [("2026-10", "schedule")], what="October closed at 00:15")
            wait_until(lambda: fanned_out(sqlite_database) == ["2026-10"], what="October fanned out")
        finally:
            harness.stop()

        # Down from November to February: on restart the missed months close at once, oldest first.
        clock.set(utc(2027, 2, 3, 12))
        restarted = BillingHarness(upstreams, memory_bus, sqlite_database, clock=clock, scheduler=settings)
        restarted.start(background=True)
        try:
            wait_until(lambda: len(emitted(sqlite_database)) == 4, what="missed months caught up")
            wait_until(lambda: len(fanned_out(sqlite_database)) == 4, what="missed months fanned out")
        finally:
            restarted.stop()
    assert emitted(sqlite_database) == [
        ("2026-10", "schedule"),
        ("2026-11", "schedule"),
        ("2026-12", "schedule"),
        ("2027-01", "schedule"),
    ]


def test_two_schedulers_ticking_together_close_each_month_once(
    postgres_database: Database, memory_bus: InMemoryBus
) -> None:
    clock = ManualClock(utc(2026, 11, 1, 0, 30))
    settings = SchedulerSettings(scheduler_first_period="2026-06")
    with Upstreams() as upstreams:
        harness = BillingHarness(upstreams, memory_bus, postgres_database, clock=clock, scheduler=settings)
        outbox = harness.context.services["scheduler"].outbox
        schedulers = [Scheduler(postgres_database, outbox, settings, clock) for _ in range(4)]
        results: list[Any] = []
        threads = [threading.Thread(target=lambda s=s: results.append(s.tick())) for s in schedulers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    closes = sorted(e.period.key for batch in results for e in batch)
    assert closes == ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10"]
    with postgres_database.transaction() as session:
        assert outbox.backlog(session) == 5
    assert sorted(period for period, _ in emitted(postgres_database)) == closes


def _anchor(db: Database) -> str | None:
    with db.transaction() as session:
        return session.execute(select(store.anchor.c.first_period)).scalar()
