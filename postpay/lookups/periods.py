"""Every billing month, closed or not, with its window and how far its close has come."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from postpay.ops.status import PeriodStatus, period_status
from services.scheduler import public as scheduler
from services.usage_collector import public as collector
from shared.db import Database
from shared.periods import BillingPeriod


@dataclass(frozen=True)
class PeriodSummary:
    key: str
    timezone: str
    starts_at: datetime
    ends_at: datetime
    state: str  # "open" (not ended), "not closed" (ended, never closed), "closed"
    closed_at: datetime | None
    closed_by: str | None
    status: PeriodStatus

    @property
    def progress(self) -> str:
        if self.state != "closed":
            return ""
        return f"{self.status.accounted}/{self.status.expected}"


def never_closed_hint(key: str) -> str:
    return (
        f"{key} has never been closed: close it with `postpay close-period {key}` (the scheduler closes each "
        "month by itself a little after it ends)"
    )


def closed_info(db: Database, key: str) -> scheduler.ClosedPeriod | None:
    with db.transaction() as session:
        return scheduler.closed(session).get(key)


def summary(
    db: Database,
    period: BillingPeriod,
    now: datetime,
    closed: scheduler.ClosedPeriod | None,
    *,
    with_totals: bool = True,
) -> PeriodSummary:
    if closed is not None:
        state = "closed"
    else:
        state = "not closed" if period.has_ended(now) else "open"
    status = period_status(db, period, with_totals=with_totals)
    return PeriodSummary(
        period.key,
        period.timezone,
        period.starts_at,
        period.ends_at,
        state,
        closed.closed_at if closed else None,
        closed.trigger if closed else None,
        status,
    )


def list_periods(db: Database, timezone: str, now: datetime) -> list[PeriodSummary]:
    """From the first month postpay knows of to the current one, newest first."""
    with db.transaction() as session:
        closed = scheduler.closed(session)
        known = set(closed) | set(collector.fanout_periods(session))
        first = scheduler.first_period(session)
    current = BillingPeriod.containing(now, timezone)
    keys = known | ({first} if first else set()) | {current.previous().key}
    period = BillingPeriod.parse(min(keys), timezone)
    found = []
    while period.key <= current.key:
        found.append(summary(db, period, now, closed.get(period.key)))
        period = period.next()
    return list(reversed(found))
