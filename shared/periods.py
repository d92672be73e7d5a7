"""Billing periods: calendar months in the operator's billing time zone.

A period is ``[1st 00:00, next 1st 00:00)`` local time, turned into UTC instants for SolusVM 2. In a
zone with daylight saving time a month is not always a whole number of days of 24 h: October in
Europe/Berlin lasts 745 hours. The instants are computed from local midnights, never by adding days.

When the billing time zone changes, the first month in the new zone starts where the month before it
ended, at that month's local midnight in the old zone (``starts_in``), so no hour is billed twice or
never; likewise a month closed after its successor ends where the successor starts (``ends_in``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
_PERIOD_RE = re.compile(PERIOD_PATTERN)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class BillingPeriod:
    year: int
    month: int
    timezone: str = "UTC"
    # The zone whose local midnight the window starts (ends) at, when it is not ``timezone``: the
    # month after a change of billing time zone starts where the month before it ended.
    starts_in: str | None = None
    ends_in: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1970 <= self.year <= 9999:
            raise ValueError(f"not a billing month: {self.year}-{self.month}")
        for name in (self.timezone, self.starts_in, self.ends_in):
            if name is not None:
                zone(name)
        # A zone equal to the period's own is no shift: keep one spelling, so equal windows compare equal.
        if self.starts_in == self.timezone:
            object.__setattr__(self, "starts_in", None)
        if self.ends_in == self.timezone:
            object.__setattr__(self, "ends_in", None)
        if self.ends_at <= self.starts_at:
            raise ValueError(f"{self.key} would end before it starts")

    @classmethod
    def parse(cls, key: str, timezone: str = "UTC") -> BillingPeriod:
        if not _PERIOD_RE.match(key):
            raise ValueError(f"a billing period looks like 2026-10, not {key!r}")
        year, month = key.split("-")
        return cls(int(year), int(month), timezone)

    @classmethod
    def containing(cls, moment: datetime, timezone: str = "UTC") -> BillingPeriod:
        if moment.tzinfo is None:
            raise ValueError("a naive datetime has no place in billing; pass an aware one")
        local = moment.astimezone(zone(timezone))
        return cls(local.year, local.month, timezone)

    @property
    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def between(self, starts_in: str | None, ends_in: str | None) -> BillingPeriod:
        """The same month, its window starting at local midnight in ``starts_in`` and ending in ``ends_in``."""
        return BillingPeriod(self.year, self.month, self.timezone, starts_in, ends_in)

    @property
    def shifted(self) -> bool:
        """Whether the window is not simply the calendar month in ``timezone``."""
        return self.starts_in is not None or self.ends_in is not None

    @property
    def hours(self) -> int:
        """Whole hours in the window, rounded up (a VM cannot be billed more hours than this)."""
        return -((self.starts_at - self.ends_at) // timedelta(hours=1))

    def next(self) -> BillingPeriod:
        if self.month == 12:
            return BillingPeriod(self.year + 1, 1, self.timezone)
        return BillingPeriod(self.year, self.month + 1, self.timezone)

    def previous(self) -> BillingPeriod:
        if self.month == 1:
            return BillingPeriod(self.year - 1, 12, self.timezone)
        return BillingPeriod(self.year, self.month - 1, self.timezone)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def starts_at(self) -> datetime:
        """The first local midnight of the month, as a UTC instant."""
        return _local_midnight(self.first_day, self.starts_in or self.timezone)

    @property
    def ends_at(self) -> datetime:
        """The first local midnight of the next month, as a UTC instant (exclusive)."""
        return _local_midnight(self._next_first_day, self.ends_in or self.timezone)

    @property
    def _next_first_day(self) -> date:
        return date(self.year + 1, 1, 1) if self.month == 12 else date(self.year, self.month + 1, 1)

    @property
    def last_day(self) -> date:
        return date.fromordinal(self._next_first_day.toordinal() - 1)

    def has_ended(self, now: datetime) -> bool:
        return now >= self.ends_at

    def __str__(self) -> str:
        return self.key


def _local_midnight(day: date, timezone: str) -> datetime:
    local = datetime(day.year, day.month, day.day, tzinfo=zone(timezone))
    return local.astimezone(UTC)


def ended_periods_since(first: BillingPeriod, now: datetime) -> list[BillingPeriod]:
    """Every period from ``first`` whose end is at or before ``now``, oldest first."""
    periods = []
    period = first
    while period.has_ended(now):
        periods.append(period)
        period = period.next()
    return periods
