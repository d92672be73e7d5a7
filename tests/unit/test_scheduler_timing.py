"""When the scheduler ticks and which periods it closes (pure logic, no clock, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, time

from services.scheduler.timing import close_event_id, due_periods, next_run_after
from shared.periods import BillingPeriod


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_the_daily_tick_is_at_the_local_time_the_next_time_it_comes() -> None:
    assert next_run_after(utc(2026, 10, 31, 12), time(0, 15), "UTC") == utc(2026, 11, 1, 0, 15)
    assert next_run_after(utc(2026, 11, 1, 0, 14), time(0, 15), "UTC") == utc(2026, 11, 1, 0, 15)
    # Exactly at the tick: the next one is tomorrow's, never the same instant twice.
    assert next_run_after(utc(2026, 11, 1, 0, 15), time(0, 15), "UTC") == utc(2026, 11, 2, 0, 15)


def test_the_tick_keeps_its_wall_clock_time_across_daylight_saving_changes() -> None:
    berlin = "Europe/Berlin"
    # Before the October change Berlin is UTC+2, after it UTC+1: 00:15 local moves by an hour in UTC.
    assert next_run_after(utc(2026, 10, 24, 12), time(0, 15), berlin) == utc(2026, 10, 24, 22, 15)
    assert next_run_after(utc(2026, 10, 25, 12), time(0, 15), berlin) == utc(2026, 10, 25, 23, 15)
    assert next_run_after(utc(2026, 10, 31, 22), time(0, 15), berlin) == utc(2026, 10, 31, 23, 15)
    # A local time that does not exist on the spring-forward day still ticks once that day.
    tick = next_run_after(utc(2026, 3, 28, 12), time(2, 30), berlin)
    assert tick.date().isoformat() == "2026-03-29"
    assert next_run_after(tick, time(2, 30), berlin) == utc(2026, 3, 30, 0, 30)


def test_due_periods_are_the_ended_ones_not_closed_yet_oldest_first() -> None:
    first = BillingPeriod.parse("2026-07")
    now = utc(2026, 11, 1, 0, 15)
    assert [p.key for p in due_periods(first, set(), now)] == ["2026-07", "2026-08", "2026-09", "2026-10"]
    assert [p.key for p in due_periods(first, {"2026-07", "2026-09"}, now)] == ["2026-08", "2026-10"]
    assert due_periods(first, {"2026-07", "2026-08", "2026-09", "2026-10"}, now) == []


def test_a_period_has_one_close_event_id_per_time_zone() -> None:
    october = BillingPeriod.parse("2026-10")
    assert close_event_id(october) == close_event_id(BillingPeriod.parse("2026-10"))
    assert close_event_id(october) != close_event_id(BillingPeriod.parse("2026-11"))
    assert close_event_id(october) != close_event_id(BillingPeriod.parse("2026-10", "Europe/Berlin"))
