"""Emitting BillingPeriodClosed: by the daily tick, by ``postpay close-period``, by ``postpay replay``.

The event goes through the scheduler's outbox in the same transaction as the record of the close, so a
close is never recorded without its event, nor emitted twice by the tick. A close (scheduled or manual)
has one deterministic event id per period: closing a period again is harmless, its consumers
deduplicate it. A replay is a new fact and gets a fresh id, so it is collected and priced again; the
invoicer's ledger still allows one invoice per (client, period).

A period's window is recorded when it is first closed, and every later close or replay uses the
recorded one whatever the billing time zone is set to by then. A new zone takes effect from the first
month not closed yet, which starts where the closed month before it ended (see ``choose_period``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from services.scheduler import store
from services.scheduler.settings import SchedulerSettings
from services.scheduler.syncing import SyncRequested, request_accounts_sync
from services.scheduler.timing import close_event_id, due_periods, next_run_after
from services.scheduler.windows import PeriodChoice, PeriodNotClosed, choose_period
from shared.db import Database
from shared.events.billing import BillingPeriodClosed, Trigger, window_fields
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.periods import BillingPeriod

log = get_logger("postpay.scheduler")


class PeriodNotEnded(ValueError):
    """Closing (or replaying) a month before it ended would invoice part of it as the whole."""


@dataclass(frozen=True)
class Emitted:
    event_id: uuid.UUID
    period: BillingPeriod
    trigger: Trigger
    newly_closed: bool
    choice: PeriodChoice | None = None


def _require_ended(period: BillingPeriod, now: datetime) -> None:
    if not period.has_ended(now):
        raise PeriodNotEnded(
            f"{period.key} ({period.timezone}) ends at {period.ends_at.isoformat()}; it cannot be billed before then"
        )


def close_period(
    session: Session,
    outbox: Outbox,
    period: BillingPeriod,
    *,
    trigger: Trigger,
    now: datetime,
    again: bool = True,
) -> Emitted | None:
    """Record the period as closed and emit its close event; when it was closed already, emit the same
    event again only if ``again`` (an operator asked), else do nothing and return None.

    ``period`` names the month and the zone configured now; the window closed is ``choose_period``'s.
    """
    choice = choose_period(session, period.key, period.timezone)
    period = choice.period
    _require_ended(period, now)
    event_id = close_event_id(period)
    newly_closed = store.mark_closed(session, period, event_id, trigger, now)
    if not newly_closed and not again:
        return None
    event = BillingPeriodClosed(**window_fields(period), trigger=trigger)
    outbox.add_event(session, event, event_id=event_id, occurred_at=now)
    store.record_emission(session, event_id, period.key, trigger, None, now)
    return Emitted(event_id, period, trigger, newly_closed, choice)


def replay_period(
    session: Session, outbox: Outbox, period: BillingPeriod, *, client_ids: Sequence[int] | None, now: datetime
) -> Emitted:
    """Collect and price the period again (for some clients only, if given), under a fresh event id,
    in the window recorded when it was closed."""
    choice = choose_period(session, period.key, period.timezone)
    if not choice.recorded:
        raise PeriodNotClosed(
            f"{period.key} has not been closed, so it has no window to replay yet; "
            f"close it first (postpay close-period {period.key})"
        )
    period = choice.period
    _require_ended(period, now)
    event_id = uuid.uuid4()
    only = tuple(sorted(set(client_ids))) if client_ids else None
    event = BillingPeriodClosed(**window_fields(period), trigger="replay", only_client_ids=only)
    outbox.add_event(session, event, event_id=event_id, occurred_at=now)
    store.record_emission(session, event_id, period.key, "replay", only, now)
    return Emitted(event_id, period, "replay", newly_closed=False, choice=choice)


class Scheduler:
    """The daily tick: close every ended period not closed yet, catching up missed months; then ask for
    every customer's standing to be checked (the account lifecycle), once per billing day."""

    def __init__(
        self, db: Database, outbox: Outbox, settings: SchedulerSettings, clock: Callable[[], datetime]
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.settings = settings
        self.clock = clock

    @property
    def timezone(self) -> str:
        return self.settings.billing_timezone

    def _first_period(self, session: Session, now: datetime) -> BillingPeriod:
        configured = self.settings.scheduler_first_period
        if configured is not None:
            return BillingPeriod.parse(configured, self.timezone)
        current = BillingPeriod.containing(now, self.timezone)
        return BillingPeriod.parse(store.first_period(session, current.key, now), self.timezone)

    def tick(self) -> list[Emitted]:
        """Close what is due, oldest first, each period in its own transaction."""
        now = self.clock()
        with self.db.transaction() as session:
            first = self._first_period(session, now)
            due = due_periods(first, store.closed_keys(session), now)
        emitted = []
        for period in due:
            with self.db.transaction() as session:
                # Another scheduler may have closed it meanwhile: then its close stands, and this one is skipped.
                closed = close_period(session, self.outbox, period, trigger="schedule", now=now, again=False)
            if closed is not None:
                emitted.append(closed)
                log.info(
                    "billing period closed", period=period.key, timezone=period.timezone, event_id=str(closed.event_id)
                )
        return emitted

    def sync_accounts(self) -> SyncRequested | None:
        """Today's accounts sync, unless it was requested already."""
        now = self.clock()
        with self.db.transaction() as session:
            requested = request_accounts_sync(session, self.outbox, timezone=self.timezone, now=now)
        if requested is not None:
            log.info("accounts sync requested", day=requested.day.isoformat(), event_id=str(requested.event_id))
        return requested

    def run(self, stop: threading.Event) -> None:
        """Tick at start (to catch up), then daily at the configured local time, until ``stop``."""
        due_at = self.clock()
        while not stop.is_set():
            now = self.clock()
            if now >= due_at:
                try:
                    self.tick()
                    self.sync_accounts()
                    due_at = next_run_after(self.clock(), self.settings.scheduler_run_at, self.timezone)
                except Exception:
                    log.exception("scheduler tick failed; retrying")
                    due_at = self.clock()
                    stop.wait(self.settings.scheduler_poll_seconds)
                    continue
            wait = min((due_at - self.clock()).total_seconds(), self.settings.scheduler_poll_seconds)
            stop.wait(max(wait, 0.0))
