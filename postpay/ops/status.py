"""``postpay period status``: how far a period's close has come.

Expected and collected customers come from the usage collector's enrolment list and per-customer period
records; invoiced (and the totals), "nothing to bill", held, paused, rejected and uncertain from the
invoicer's ledger and holds, where they are written (no event carries them back to the collector: that
was a delivery, an inbox row and an outbox row per invoice, docs/benchmarks.md); parked work from the parking lots of the
handlers that serve one customer each. Every count is one indexed query,
so following a close of 100,000 customers polls cheaply.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.invoicer import public as invoicer
from services.usage_collector import public as collector
from shared.bus.parking import ParkingLotMissing
from shared.db import Database
from shared.periods import BillingPeriod

# The per-customer handlers of a close: a message parked here is one customer not billed.
PER_CUSTOMER_QUEUES = ("usage_collector.collect_usage", "invoicer.create_invoice", "invoicer.release_invoice")


@dataclass(frozen=True)
class MeterStatus:
    """The meter's side of a period: how far the collector holds its story, who waits for it, and every
    stretch of the period it did not watch (gaps; ``metered_since`` after the period's start is one too)."""

    observed_until: datetime | None
    metered_since: datetime | None
    waiting: int
    gaps: tuple[collector.Gap, ...]

    def covers(self, period: BillingPeriod) -> bool:
        return self.observed_until is not None and self.observed_until >= period.ends_at


@dataclass(frozen=True)
class PeriodStatus:
    period: BillingPeriod
    expected: int
    requested: int
    fanout_started: bool
    fanout_finished: bool
    collected: int
    invoiced: int
    nothing_to_bill: int
    parked: int | None
    invoiced_totals: dict[str, Decimal] = field(default_factory=dict)
    held: int = 0
    paused: int = 0
    rejected: int = 0
    uncertain: int = 0
    pause: invoicer.Pause | None = None
    meter: MeterStatus | None = None

    @property
    def settled(self) -> int:
        return self.invoiced + self.nothing_to_bill

    @property
    def accounted(self) -> int:
        """Customers whose work is finished, one way or the other (settled, rejected, or needing a person:
        parked, held, paused)."""
        return self.settled + self.rejected + self.held + self.paused + (self.parked or 0)

    @property
    def complete(self) -> bool:
        return self.fanout_finished and self.accounted >= self.expected


def period_status(
    db: Database, period: BillingPeriod, *, parked: int | None = None, with_totals: bool = True
) -> PeriodStatus:
    # One snapshot: counts and totals read while invoices are still being written must agree.
    with db.snapshot() as session:
        expected = collector.count_enrolled_before(session, period.ends_at)
        fanout = collector.latest_fanout(session, period.key)
        outcomes = collector.outcome_counts(session, period.key)
        totals = invoicer.invoiced_totals(session, period.key) if with_totals else {}
        holds = invoicer.hold_counts(session, period.key)
        ledger = invoicer.ledger_counts(session, period.key)
        pause = invoicer.pause_of(session, period.key)
        meter = _meter_status(session, period)
    return PeriodStatus(
        period=period,
        expected=expected,
        requested=fanout.requested if fanout else 0,
        fanout_started=fanout is not None,
        fanout_finished=bool(fanout and fanout.finished),
        collected=sum(outcomes.values()),
        invoiced=ledger.get(invoicer.INVOICED, 0),
        nothing_to_bill=ledger.get(invoicer.NOTHING_TO_BILL, 0),
        parked=parked,
        invoiced_totals=totals,
        held=holds.get(invoicer.HELD, 0),
        paused=holds.get(invoicer.PAUSED, 0),
        rejected=holds.get(invoicer.REJECTED, 0),
        uncertain=ledger.get(invoicer.UNCERTAIN, 0),
        pause=pause,
        meter=meter,
    )


def _meter_status(session: Any, period: BillingPeriod) -> MeterStatus | None:
    """None when no meter has ever reported (the endpoint source, no meter running)."""
    covered = collector.meter_coverage(session)
    waiting = collector.meter_waiting_count(session, period.key)
    if covered.observed_until is None and not waiting:
        return None
    gaps = collector.meter_gaps(session, period.starts_at, period.ends_at)
    return MeterStatus(covered.observed_until, covered.metered_since, waiting, tuple(gaps))


def count_parked(
    bus: Any, period: BillingPeriod, queues: Iterable[str] = PER_CUSTOMER_QUEUES, limit: int = 100_000
) -> int:
    """Parked per-customer work of ``period`` on ``bus``; a broker that cannot be reached raises."""
    lot = bus.parking_lot()
    count = 0
    for queue in queues:
        try:
            messages = lot.list(bus.naming.parking_lot(queue), limit=limit)
        except ParkingLotMissing:  # never declared on this broker: it holds nothing
            continue
        count += sum(1 for message in messages if _period_of(message.body) == period.key)
    return count


def _period_of(body: bytes) -> str | None:
    try:
        payload = json.loads(body).get("payload", {})
    except (ValueError, AttributeError):
        return None
    return payload.get("period") if isinstance(payload, dict) else None
