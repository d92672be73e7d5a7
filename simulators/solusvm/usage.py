"""Period usage (§8.3 of the reference, project-defined): the money path, as pure functions.

No I/O and no simulator state here, so the rules can be unit- and property-tested on their own:
running time clipped to the half-open window ``[start, end)``, hours rounded up per server, tokens
capped at the plan's monthly price once per window, zero-runtime servers omitted, ordered by id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from simulators.solusvm.timestamps import parse_utc_timestamp

HOUR = timedelta(hours=1)
# A longer window would let one monthly cap cover several months (§8.3 rule 3).
MAX_WINDOW = timedelta(days=32)

RunInterval = tuple[datetime, datetime | None]


class WindowError(ValueError):
    """The requested window is invalid; ``errors`` maps ``from``/``to`` to messages (a 422)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class UsageWindow:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PlanPrice:
    id: int
    name: str
    tokens_per_hour: int
    tokens_per_month: int


@dataclass(frozen=True)
class ServerRuntime:
    """What the computation needs to know about one server (live or deleted)."""

    id: int
    uuid: str
    name: str
    plan: PlanPrice
    created_at: datetime
    deleted_at: datetime | None
    intervals: tuple[RunInterval, ...]


@dataclass(frozen=True)
class ServerCharge:
    server: ServerRuntime
    hours: int
    tokens: int


@dataclass(frozen=True)
class UsageReport:
    user_id: int
    window: UsageWindow
    charges: tuple[ServerCharge, ...]

    @property
    def total_tokens(self) -> int:
        return sum(charge.tokens for charge in self.charges)


def parse_window(raw_from: str | None, raw_to: str | None) -> UsageWindow:
    """Validate the ``from``/``to`` query values; raises WindowError with every problem found."""
    errors: dict[str, list[str]] = {}
    bounds: dict[str, datetime] = {}
    for field, raw in (("from", raw_from), ("to", raw_to)):
        if raw is None or raw == "":
            errors[field] = [f"The {field} field is required."]
            continue
        moment = parse_utc_timestamp(raw)
        if moment is None:
            errors[field] = [f"The {field} must be an RFC3339 timestamp in UTC (Z or +00:00)."]
            continue
        bounds[field] = moment
    if errors:
        raise WindowError(errors)
    window = UsageWindow(start=bounds["from"], end=bounds["to"])
    if window.end <= window.start:
        raise WindowError({"to": ["The to must be a date after from."]})
    if window.end - window.start > MAX_WINDOW:
        raise WindowError({"to": ["The window from..to must not be longer than 32 days."]})
    return window


def merged_intervals(intervals: Iterable[RunInterval], now: datetime) -> list[tuple[datetime, datetime]]:
    """Close open intervals at ``now`` and merge overlaps, so no second is ever counted twice."""
    closed = sorted((start, now if end is None else end) for start, end in intervals)
    merged: list[tuple[datetime, datetime]] = []
    for start, end in closed:
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def running_time(intervals: Iterable[RunInterval], window: UsageWindow, now: datetime) -> timedelta:
    """Total running time inside ``[window.start, window.end)``; an open interval runs until ``now``."""
    total = timedelta()
    for start, end in merged_intervals(intervals, now):
        clipped = min(end, window.end) - max(start, window.start)
        if clipped > timedelta():
            total += clipped
    return total


def billable_hours(running: timedelta) -> int:
    """Whole hours, rounded up: 1 s bills 1 h, 3600 s is 1 h, 3601 s is 2 h (exact, no floats)."""
    return -((-running) // HOUR)


def window_tokens(hours: int, plan: PlanPrice) -> int:
    """``min(hours × tokens_per_hour, tokens_per_month)``: the monthly price is a cap (D2)."""
    return min(hours * plan.tokens_per_hour, plan.tokens_per_month)


def compute_usage(user_id: int, servers: Sequence[ServerRuntime], window: UsageWindow, now: datetime) -> UsageReport:
    """The §8.2 report: every server that ran inside the window, ordered by id."""
    charges = []
    for server in sorted(servers, key=lambda s: s.id):
        hours = billable_hours(running_time(server.intervals, window, now))
        if hours == 0:
            continue
        charges.append(ServerCharge(server=server, hours=hours, tokens=window_tokens(hours, server.plan)))
    return UsageReport(user_id=user_id, window=window, charges=tuple(charges))
