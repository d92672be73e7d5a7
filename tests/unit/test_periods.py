"""Billing periods are calendar months in the billing time zone, sent to SolusVM 2 as UTC instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events.billing import BillingPeriodClosed, window_fields
from shared.periods import BillingPeriod, ended_periods_since


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "starts", "ends", "days"),
    [
        ("2026-01", utc(2026, 1, 1), utc(2026, 2, 1), 31),
        ("2026-02", utc(2026, 2, 1), utc(2026, 3, 1), 28),
        ("2028-02", utc(2028, 2, 1), utc(2028, 3, 1), 29),
        ("2026-04", utc(2026, 4, 1), utc(2026, 5, 1), 30),
        ("2026-12", utc(2026, 12, 1), utc(2027, 1, 1), 31),
    ],
)
def test_utc_months_of_28_to_31_days(key: str, starts: datetime, ends: datetime, days: int) -> None:
    period = BillingPeriod.parse(key)
    assert (period.starts_at, period.ends_at) == (starts, ends)
    assert period.ends_at - period.starts_at == timedelta(days=days)
    assert period.last_day.day == days


@pytest.mark.parametrize(
    ("key", "starts", "ends", "hours"),
    [
        # Winter: Berlin is UTC+1. The month starts at 23:00 UTC the day before.
        ("2026-01", utc(2025, 12, 31, 23), utc(2026, 1, 31, 23), 744),
        ("2026-02", utc(2026, 1, 31, 23), utc(2026, 2, 28, 23), 672),
        # March: clocks go forward on the 29th, so the month is an hour short.
        ("2026-03", utc(2026, 2, 28, 23), utc(2026, 3, 31, 22), 743),
        # Summer: UTC+2.
        ("2026-07", utc(2026, 6, 30, 22), utc(2026, 7, 31, 22), 744),
        # October: clocks go back on the 25th, so the month is an hour long.
        ("2026-10", utc(2026, 9, 30, 22), utc(2026, 10, 31, 23), 745),
        ("2026-12", utc(2026, 11, 30, 23), utc(2026, 12, 31, 23), 744),
        ("2024-05", utc(2024, 4, 30, 22), utc(2024, 5, 31, 22), 744),
    ],
)
def test_berlin_months_follow_local_midnights_across_daylight_saving(
    key: str, starts: datetime, ends: datetime, hours: int
) -> None:
    period = BillingPeriod.parse(key, "Europe/Berlin")
    assert (period.starts_at, period.ends_at) == (starts, ends)
    assert period.ends_at - period.starts_at == timedelta(hours=hours)


@given(
    st.integers(min_value=1971, max_value=2100),
    st.integers(min_value=1, max_value=12),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]),
)
def test_consecutive_periods_tile_time_without_gap_or_overlap(year: int, month: int, timezone: str) -> None:
    period = BillingPeriod(year, month, timezone)
    assert period.next().starts_at == period.ends_at
    assert period.next().previous() == period
    assert BillingPeriod.containing(period.starts_at, timezone) == period
    assert BillingPeriod.containing(period.ends_at - timedelta(microseconds=1), timezone) == period
    assert timedelta(days=28) - timedelta(hours=1) <= period.ends_at - period.starts_at <= timedelta(days=31, hours=1)


def test_a_period_has_ended_only_at_its_exclusive_end() -> None:
    october = BillingPeriod.parse("2026-10", "Europe/Berlin")
    assert not october.has_ended(utc(2026, 10, 31, 22, 59, 59))
    assert october.has_ended(utc(2026, 10, 31, 23))


def test_ended_periods_catch_up_every_missed_month_in_order() -> None:
    first = BillingPeriod.parse("2025-11")
    keys = [p.key for p in ended_periods_since(first, utc(2026, 3, 1, 0, 15))]
    assert keys == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert ended_periods_since(first, utc(2025, 11, 30, 23, 59)) == []


def test_bad_period_keys_and_zones_are_refused() -> None:
    for key in ("2026-13", "2026-1", "26-10", "2026/10", ""):
        with pytest.raises(ValueError):
            BillingPeriod.parse(key)
    with pytest.raises(ValueError, match="time zone"):
        BillingPeriod.parse("2026-10", "Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="naive"):
        BillingPeriod.containing(datetime(2026, 10, 1), "UTC")


def test_an_event_window_that_is_not_its_calendar_month_is_caught() -> None:
    berlin = BillingPeriod.parse("2026-10", "Europe/Berlin")
    event = BillingPeriodClosed(**window_fields(berlin))
    assert event.billing_period() == berlin
    # The UTC window of October labelled as Berlin's October: the hours would be the wrong ones.
    shifted = BillingPeriodClosed(**{**window_fields(BillingPeriod.parse("2026-10")), "timezone": "Europe/Berlin"})
    with pytest.raises(ValueError, match="is not 2026-10 in Europe/Berlin"):
        shifted.billing_period()


def test_the_month_after_a_zone_change_starts_where_the_month_before_ended() -> None:
    october_utc = BillingPeriod.parse("2026-10", "UTC")
    november = BillingPeriod.parse("2026-11", "Europe/Berlin").between("UTC", None)
    assert november.starts_at == october_utc.ends_at == utc(2026, 11, 1)
    assert november.ends_at == BillingPeriod.parse("2026-12", "Europe/Berlin").starts_at == utc(2026, 11, 30, 23)
    assert (november.hours, october_utc.hours) == (719, 744)
    assert november.shifted and not october_utc.shifted
    # Back from Berlin to UTC: November starts at Berlin's midnight, an hour before UTC's.
    back = BillingPeriod.parse("2026-11", "UTC").between("Europe/Berlin", None)
    assert back.starts_at == BillingPeriod.parse("2026-10", "Europe/Berlin").ends_at == utc(2026, 10, 31, 23)
    assert back.hours == 721
    # Naming the period's own zone is no shift.
    assert BillingPeriod.parse("2026-11", "UTC").between("UTC", "UTC") == BillingPeriod.parse("2026-11")


def test_a_shifted_window_travels_in_events_and_is_checked_exactly() -> None:
    november = BillingPeriod.parse("2026-11", "Europe/Berlin").between("UTC", None)
    event = BillingPeriodClosed(**window_fields(november))
    assert (event.starts_in, event.ends_in) == ("UTC", None)
    assert event.billing_period() == november
    # An ordinary month carries no shift on the wire.
    assert "starts_in" not in window_fields(BillingPeriod.parse("2026-11"))
    # A shift that does not produce the window carried is refused.
    lying = BillingPeriodClosed(**{**window_fields(november), "starts_in": "Asia/Tokyo"})
    with pytest.raises(ValueError, match="is not 2026-11 in Europe/Berlin"):
        lying.billing_period()
