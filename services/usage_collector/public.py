"""What postpay's operator tools may use of the usage collector (the only module of it postpay/ imports):
who it bills since when, how far each period's close has come, what it collected per customer, how far
the meter has been observed, and a customer's period usage from the meter (``postpay replay --dry-run``).
Read-only, but for ``advance_meter`` (moves the collector's complete-and-contiguous mark, as its
handlers do)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.usage_collector import meter_progress
from services.usage_collector.meter_progress import Coverage, Gap
from services.usage_collector.meter_usage import MeterNotThere, metered_period
from services.usage_collector.settings import UsageCollectorSettings
from services.usage_collector.store import (
    COLLECTED,
    Customer,
    FanOut,
    collections,
    count_enrolled_before,
    customers,
    customers_page,
    fanouts,
    latest_fanout,
    outcome_counts,
    tables,
)
from services.usage_collector.usage import vm_usages

__all__ = [
    "COLLECTED",
    "Collection",
    "Coverage",
    "Customer",
    "FanOut",
    "Gap",
    "MeterNotThere",
    "UsageCollectorSettings",
    "advance_meter",
    "collections_of_client",
    "collections_of_period",
    "count_enrolled_before",
    "customer",
    "customers_page",
    "fanout_periods",
    "latest_fanout",
    "meter_coverage",
    "meter_gaps",
    "meter_waiting_count",
    "metered_period",
    "outcome_counts",
    "tables",
    "vm_usages",
]

# How far the meter has been observed, its gaps, and the customers waiting for it.
meter_coverage = meter_progress.coverage
meter_gaps = meter_progress.gaps_between
meter_waiting_count = meter_progress.waiting_count
advance_meter = meter_progress.advance


@dataclass(frozen=True)
class Collection:
    period: str
    whmcs_client_id: int
    solusvm_user_id: int
    vm_count: int
    total_tokens: int
    outcome: str
    invoice_id: int | None
    currency: str | None
    total: object
    collected_at: datetime
    settled_at: datetime | None


def _collections(rows: object) -> list[Collection]:
    fields = Collection.__dataclass_fields__
    return [Collection(**{name: getattr(row, name) for name in fields}) for row in rows]  # type: ignore[attr-defined]


def customer(session: Session, client_id: int) -> Customer | None:
    row = session.execute(select(customers).where(customers.c.whmcs_client_id == client_id)).first()
    return Customer(row.whmcs_client_id, row.solusvm_user_id, row.enrolled_at) if row else None


def collections_of_client(session: Session, client_id: int) -> list[Collection]:
    query = select(collections).where(collections.c.whmcs_client_id == client_id).order_by(collections.c.period.desc())
    return _collections(session.execute(query))


def collections_of_period(
    session: Session, period: str, *, after: int = 0, limit: int = 500, client_id: int | None = None
) -> list[Collection]:
    query = select(collections).where(collections.c.period == period, collections.c.whmcs_client_id > after)
    if client_id is not None:
        query = query.where(collections.c.whmcs_client_id == client_id)
    return _collections(session.execute(query.order_by(collections.c.whmcs_client_id).limit(limit)))


def fanout_periods(session: Session) -> dict[str, datetime]:
    """Every period a close reached the collector for, with when it first started."""
    query = select(fanouts.c.period, func.min(fanouts.c.started_at)).group_by(fanouts.c.period)
    return {period: started for period, started in session.execute(query)}
