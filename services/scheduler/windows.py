"""Which window a month is billed in: the one recorded at its first close, or for a month not closed
yet, its calendar month in the configured zone, joined to its closed neighbours.

A change of ``POSTPAY_BILLING_TIMEZONE`` therefore never moves a closed month, and takes effect from
the first month not closed yet, which starts exactly where the month before it ended: no hour is billed
twice and none is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from services.scheduler import store
from shared.periods import BillingPeriod


class PeriodNotClosed(ValueError):
    """A replay of a month never closed would bill it under a window nobody recorded."""


@dataclass(frozen=True)
class PeriodChoice:
    """The window a month is billed in, and whether it is the one recorded at its first close."""

    period: BillingPeriod
    recorded: bool
    requested_timezone: str

    @property
    def zone_setting_ignored(self) -> bool:
        """Closed in another zone than the one configured now: the recorded window wins."""
        return self.recorded and self.period.timezone != self.requested_timezone

    @property
    def continues_previous(self) -> bool:
        """Not closed yet, and starting where the month before it ended in another zone."""
        return not self.recorded and self.period.starts_in is not None


def choose_period(session: Session, key: str, timezone: str) -> PeriodChoice:
    """The recorded window of a closed month; for one not closed yet, the calendar month in
    ``timezone`` with its start moved to where the month before it ended (and its end to where the
    month after it starts, if that one was closed first), so consecutive months never overlap or leave
    a gap, whatever zone each was closed in."""
    recorded = store.recorded_period(session, key)
    if recorded is not None:
        return PeriodChoice(recorded, True, timezone)
    calendar = BillingPeriod.parse(key, timezone)
    before = store.recorded_period(session, calendar.previous().key)
    after = store.recorded_period(session, calendar.next().key)
    starts_in = (before.ends_in or before.timezone) if before is not None else None
    ends_in = (after.starts_in or after.timezone) if after is not None else None
    return PeriodChoice(calendar.between(starts_in, ends_in), False, timezone)
