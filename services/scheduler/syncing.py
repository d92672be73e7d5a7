"""Emitting AccountsSyncRequested: by the daily tick, and by ``postpay accounts sync``.

The tick asks once per billing day: the sync of a day has one deterministic event id, recorded with its
emission in one transaction, so ticking again that day (a restart, a second scheduler) emits nothing.
An operator's sync is a new request with a fresh id: it runs even if today's already did.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from services.scheduler import store
from shared.events.accounts import AccountsSyncRequested, SyncTrigger
from shared.events.base import deterministic_event_id
from shared.outbox import Outbox
from shared.periods import zone


@dataclass(frozen=True)
class SyncRequested:
    event_id: uuid.UUID
    day: date
    trigger: SyncTrigger


def sync_event_id(day: date, timezone: str) -> uuid.UUID:
    """The one id of a billing day's scheduled accounts sync."""
    return deterministic_event_id("AccountsSyncRequested", day.isoformat(), timezone)


def request_accounts_sync(
    session: Session,
    outbox: Outbox,
    *,
    timezone: str,
    now: datetime,
    trigger: SyncTrigger = "schedule",
    client_ids: Sequence[int] | None = None,
) -> SyncRequested | None:
    """Ask for every customer's standing (or only these clients') to be checked as of ``now``; None
    when the tick already asked today."""
    day = now.astimezone(zone(timezone)).date()
    if trigger == "schedule" and client_ids:
        raise ValueError("the daily sync checks every customer")
    event_id = sync_event_id(day, timezone) if trigger == "schedule" else uuid.uuid4()
    if not store.record_sync(session, event_id, day, timezone, trigger, now):
        return None
    only = tuple(sorted(set(client_ids))) if client_ids else None
    event = AccountsSyncRequested(as_of=now, timezone=timezone, trigger=trigger, only_client_ids=only)
    outbox.add_event(session, event, event_id=event_id, occurred_at=now)
    return SyncRequested(event_id, day, trigger)
