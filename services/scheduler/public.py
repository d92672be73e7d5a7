"""What postpay's operator tools may use of the scheduler (the only module of it postpay/ imports): which
months are closed, when and how, and the billing time zone the months are cut in; and what an operator
may ask of it: close or replay a month, choose a period to act on, request an accounts sync (events in
the scheduler's outbox, written in the caller's transaction, as its own tick writes them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.scheduler.closing import Emitted, PeriodNotEnded, close_period, replay_period
from services.scheduler.settings import SchedulerSettings
from services.scheduler.store import anchor, closed_periods, emissions, tables
from services.scheduler.syncing import request_accounts_sync
from services.scheduler.windows import PeriodChoice, PeriodNotClosed, choose_period

__all__ = [
    "ClosedPeriod",
    "Emission",
    "Emitted",
    "PeriodChoice",
    "PeriodNotClosed",
    "PeriodNotEnded",
    "SchedulerSettings",
    "choose_period",
    "close_period",
    "closed",
    "emissions_of",
    "first_period",
    "replay_period",
    "request_accounts_sync",
    "tables",
]


@dataclass(frozen=True)
class ClosedPeriod:
    period: str
    timezone: str
    event_id: uuid.UUID
    trigger: str
    closed_at: datetime


@dataclass(frozen=True)
class Emission:
    event_id: uuid.UUID
    period: str
    trigger: str
    client_ids: str | None
    emitted_at: datetime


def closed(session: Session) -> dict[str, ClosedPeriod]:
    rows = session.execute(select(closed_periods))
    return {
        row.period: ClosedPeriod(row.period, row.timezone, row.event_id, row.trigger, row.closed_at) for row in rows
    }


def emissions_of(session: Session, period: str) -> list[Emission]:
    query = select(emissions).where(emissions.c.period == period).order_by(emissions.c.id)
    return [Emission(r.event_id, r.period, r.trigger, r.client_ids, r.emitted_at) for r in session.execute(query)]


def first_period(session: Session) -> str | None:
    """The first month this install closes, once the scheduler has recorded it (reading changes nothing)."""
    return session.execute(select(anchor.c.first_period).where(anchor.c.id == 1)).scalar_one_or_none()
