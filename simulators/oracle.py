"""The invoice oracle: what a month's invoice must bill, from the servers' run intervals alone.

Used by every check of postpay's invoices (the tests' billing harness, the month-close benchmark, the
demo), and deliberately sharing nothing with postpay (its pricing, its periods) nor with the SolusVM 2
simulator's usage endpoint, so that a bug in either cannot hide in the expectation. It lives beside the
simulators because, like them, it stands for the outside world's truth and imports none of the product.

The rule: per server, the seconds it ran inside ``[start, end)`` (a run still going counts up to
``now``); whole hours rounded up; tokens = hours × the plan's tokens per hour, capped at its tokens per
month; the line's amount = tokens × the currency's token price, rounded half up to the cent (or to
``places``). A server that did not run in the period has no line. The invoice total is the sum of its
lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

Run = tuple[datetime, datetime | None]


@dataclass(frozen=True)
class ServerUse:
    """One server as the checker knows it: what it is called, its plan's prices, when it ran."""

    key: Any  # how the caller names the line: a server id, a VM name
    tokens_per_hour: int
    tokens_per_month: int
    runs: Sequence[Run]
    created_at: datetime | None = None  # default: the start of the first run
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class Line:
    key: Any
    hours: int
    tokens: int
    amount: Decimal
    ran: str  # "ran <day>[ to <day>]": the server's life inside the period, in local days


def running_seconds(runs: Iterable[Run], start: datetime, end: datetime, now: datetime) -> int:
    """Whole seconds of ``runs`` inside ``[start, end)``, a run without an end counting up to ``now``."""
    total = 0
    for run_start, run_end in runs:
        overlap = min(run_end or now, end) - max(run_start, start)
        total += max(0, int(overlap.total_seconds()))
    return total


def ran_days(server: ServerUse, start: datetime, end: datetime, timezone: str) -> str:
    local = ZoneInfo(timezone)
    created = server.created_at or server.runs[0][0]
    first = max(created, start).astimezone(local).date()
    gone = min(server.deleted_at or end, end)
    last = max(first, (gone - timedelta(microseconds=1)).astimezone(local).date())
    return f"ran {first}" if first == last else f"ran {first} to {last}"


def invoice_lines(
    servers: Iterable[ServerUse],
    *,
    start: datetime,
    end: datetime,
    timezone: str,
    price: Decimal,
    now: datetime,
    places: int = 2,
) -> list[Line]:
    """One line per server that ran in ``[start, end)``, in the order given."""
    quantum = Decimal(1).scaleb(-places)
    lines = []
    for server in servers:
        seconds = running_seconds(server.runs, start, end, now)
        if seconds == 0:
            continue
        hours = -(-seconds // 3600)
        tokens = min(hours * server.tokens_per_hour, server.tokens_per_month)
        amount = (price * tokens).quantize(quantum, ROUND_HALF_UP)
        lines.append(Line(server.key, hours, tokens, amount, ran_days(server, start, end, timezone)))
    return lines


class Priced(Protocol):
    @property
    def amount(self) -> Decimal: ...


def invoice_total(lines: Iterable[Priced]) -> Decimal:
    return sum((line.amount for line in lines), Decimal("0.00"))
