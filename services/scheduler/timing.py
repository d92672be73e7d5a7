"""When the scheduler acts, and which periods are due (pure: no clock, no database)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime, time, timedelta

from shared.events.base import deterministic_event_id
from shared.periods import BillingPeriod, ended_periods_since, zone


def next_run_after(moment: datetime, run_at: time, timezone: str) -> datetime:
    """The first local ``run_at`` strictly after ``moment``, as a UTC instant.

    Computed from the local calendar day, not by adding 24 hours, so the tick stays at the same wall
    time across daylight-saving changes. A ``run_at`` that does not exist on a spring-forward day
    (02:30 in Europe/Berlin) resolves to the same instant an hour later on the wall clock.
    """
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no place in scheduling; pass an aware one")
    tz = zone(timezone)
    day = moment.astimezone(tz).date()
    while True:
        candidate = datetime.combine(day, run_at, tzinfo=tz).astimezone(UTC)
        if candidate > moment:
            return candidate
        day += timedelta(days=1)


def due_periods(first: BillingPeriod, closed: Collection[str], now: datetime) -> list[BillingPeriod]:
    """Every period from ``first`` that has ended by ``now`` and is not closed yet, oldest first."""
    return [period for period in ended_periods_since(first, now) if period.key not in closed]


def close_event_id(period: BillingPeriod) -> uuid.UUID:
    """The one id of a period's scheduled (or manual) close: emitting it again is deduplicated."""
    return deterministic_event_id("BillingPeriodClosed", period.key, period.timezone)
