"""The scheduler's daily tasks on fakes (its handler-like part: the loop only calls these at the
configured time): every ended month closed once, oldest first, missed months caught up; one accounts
sync per billing day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from services.scheduler.closing import Scheduler
from services.scheduler.settings import SchedulerSettings
from tests.fakes.service import ServiceUnderTest


def scheduler_on(service: ServiceUnderTest, settings: SchedulerSettings) -> Scheduler:
    return Scheduler(service.db, service.service.outbox, settings, service.clock)


@pytest.fixture
def scheduler() -> Iterator[tuple[ServiceUnderTest, Scheduler]]:
    settings = SchedulerSettings(scheduler_first_period="2026-08")
    with ServiceUnderTest("scheduler", settings=[settings], now=datetime(2026, 11, 2, 9, tzinfo=UTC)) as service:
        yield service, scheduler_on(service, settings)


def closed(service: ServiceUnderTest) -> list[tuple[str, str, str]]:
    return [(e.period, e.trigger, e.timezone) for e in service.published("BillingPeriodClosed")]


def test_every_ended_month_is_closed_once_oldest_first(scheduler: tuple[ServiceUnderTest, Scheduler]) -> None:
    service, tick = scheduler
    assert [e.period.key for e in tick.tick()] == ["2026-08", "2026-09", "2026-10"]  # missed months caught up
    assert tick.tick() == []  # the next tick the same day: nothing more
    (october,) = [e for e in service.published("BillingPeriodClosed") if e.period == "2026-10"]
    assert (october.starts_at, october.ends_at) == (
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2026, 11, 1, tzinfo=UTC),
    )

    service.clock.set(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert tick.tick() == []  # November has not ended
    service.clock.advance(minutes=2)
    assert [e.period.key for e in tick.tick()] == ["2026-11"]
    assert closed(service) == [(key, "schedule", "UTC") for key in ("2026-08", "2026-09", "2026-10", "2026-11")]


def test_a_month_ends_at_midnight_in_the_billing_time_zone() -> None:
    settings = SchedulerSettings(scheduler_first_period="2026-10", billing_timezone="Europe/Berlin")
    with ServiceUnderTest("scheduler", settings=[settings], now=datetime(2026, 10, 31, 22, 59, tzinfo=UTC)) as service:
        tick = scheduler_on(service, settings)
        assert tick.tick() == []  # 23:59 in Berlin (CET after the change back)
        service.clock.advance(minutes=1)
        (emitted,) = tick.tick()
        assert (emitted.period.key, emitted.period.ends_at) == ("2026-10", datetime(2026, 10, 31, 23, tzinfo=UTC))
        assert closed(service) == [("2026-10", "schedule", "Europe/Berlin")]


def test_one_accounts_sync_per_billing_day(scheduler: tuple[ServiceUnderTest, Scheduler]) -> None:
    service, tick = scheduler
    assert tick.sync_accounts() is not None
    service.clock.advance(hours=6)
    assert tick.sync_accounts() is None  # the same day again (a restart, a second scheduler)
    service.clock.advance(days=1)
    assert tick.sync_accounts() is not None

    syncs = service.published("AccountsSyncRequested")
    assert [s.as_of for s in syncs] == [datetime(2026, 11, 2, 9, tzinfo=UTC), datetime(2026, 11, 3, 15, tzinfo=UTC)]
    assert all(s.trigger == "schedule" and s.only_client_ids is None for s in syncs)
    assert service.clock() - syncs[0].as_of == timedelta(days=1, hours=6)
