"""The meter's sweep: list every server, read the activity log since last time, publish what changed.

A sweep reads first (``GET /servers`` page by page, then each metered event's new log entries), then
applies everything in one transaction: the VMs' new state, the log's read marks, the transitions and
one ``MeterSwept`` into the outbox. Two meters may run (a restart, a second replica): the cursor row is
locked at commit and a sweep based on an older cursor is dropped, so each sweep number is published
once. A sweep that fails halfway (the panel down, the process killed) commits nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.meter import metrics, store
from services.meter.observations import LoggedCreation, Outcome, SweepWindow, VmState, observe
from services.meter.reading import Read, Reader
from services.meter.settings import MeterSettings
from shared.db import Database
from shared.dependencies import Dependencies
from shared.errors import ConfigurationError
from shared.events.base import deterministic_event_id, new_envelope
from shared.events.metering import MeterEvent, MeterSwept, VmPlanChanged, VmRunEnded, VmRunStarted
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.upstream.solusvm_inventory import RUNNING

log = get_logger("postpay.meter")
PRODUCER = "meter"
# A logged creation of a VM never listed is kept this long in case it is deleted unseen.
PENDING_CREATION_DAYS = 40
OUTBOX_CHUNK = 2000

Wait = Callable[[threading.Event, datetime], None]


@dataclass
class SweepReport:
    sweep: int
    started_at: datetime
    finished_at: datetime
    servers: int
    running: int
    events: int
    requests: int
    unreadable: int
    unattributed: int


@dataclass
class _Memory:
    """What the last sweep this process committed left: reused while no other meter commits."""

    cursor: store.Cursor
    known: dict[int, VmState]
    pending: dict[int, LoggedCreation]


class Meter:
    """One process's meter. ``deps`` gives the database, the SolusVM 2 client and the clock (looked up
    when a sweep runs: the composition root sets the database after building the service)."""

    def __init__(self, deps: Dependencies, outbox: Outbox, settings: MeterSettings) -> None:
        self.deps = deps
        self.outbox = outbox
        self.settings = settings
        self._memory: _Memory | None = None
        self.reader = Reader(deps, settings)

    @property
    def db(self) -> Database:
        if self.deps.db is None:
            raise ConfigurationError("the meter needs the database (Dependencies.db is unset)")
        return self.deps.db

    def now(self) -> datetime:
        return self.deps.clock()

    # The sweep ------------------------------------------------------------------------------------

    def sweep(self) -> SweepReport | None:
        """One sweep; None when another meter committed a sweep meanwhile (this one is dropped)."""
        memory = self._memory or self._load()
        base = memory.cursor
        started_at = self.now()
        read = self.reader.read(base.log_marks, first=base.sweep == 0)
        finished_at = self.now()
        window = SweepWindow(base.epoch, base.sweep + 1, started_at, finished_at, base.started_at, base.finished_at)
        known = memory.known
        fresh = [server_id for server_id in read.sightings if server_id not in known]
        if fresh:
            with self.db.transaction() as session:
                known = {**known, **store.deleted_among(session, fresh)}
        creations, deletions, unresolved = self.reader.log_facts(read, known)
        all_creations = {**memory.pending, **creations}
        plans = self.reader.plans_for(read, deletions, all_creations, known)
        outcome = observe(known, read.sightings, all_creations, deletions, window, plans)
        outcome.unattributed += unresolved
        if not self._commit(memory, window, read, outcome, creations):
            log.info("sweep dropped: another meter committed this sweep first", sweep=window.sweep)
            metrics.SWEEPS.labels("dropped").inc()
            self._memory = None
            return None
        running = sum(1 for s in read.sightings.values() if s.server.power == RUNNING)
        metrics.SWEEPS.labels("done").inc()
        metrics.LAST_SWEEP.set(started_at.timestamp())
        metrics.SERVERS.labels("listed").set(len(read.sightings))
        metrics.SERVERS.labels("running").set(running)
        metrics.TRANSITIONS.inc(len(outcome.events))
        metrics.UNREADABLE.inc(read.unreadable)
        metrics.UNATTRIBUTED.inc(outcome.unattributed)
        report = SweepReport(
            window.sweep,
            started_at,
            finished_at,
            len(read.sightings),
            running,
            len(outcome.events),
            read.requests,
            read.unreadable,
            outcome.unattributed,
        )
        log.info(
            "sweep done",
            sweep=report.sweep,
            servers=report.servers,
            running=report.running,
            events=report.events,
            requests=report.requests,
            unreadable=report.unreadable,
            unattributed=report.unattributed,
        )
        return report

    def _load(self) -> _Memory:
        with self.db.transaction() as session:
            cursor = store.ensure_cursor(session, self.now())
            return _Memory(cursor, store.known_vms(session), store.pending(session))

    def _commit(
        self, memory: _Memory, window: SweepWindow, read: Read, outcome: Outcome, creations: dict[int, LoggedCreation]
    ) -> bool:
        base = memory.cursor
        swept = MeterSwept(
            meter_epoch=window.epoch,
            sweep=window.sweep,
            started_at=window.started_at,
            finished_at=window.finished_at,
            interval_seconds=self.settings.meter_interval_seconds,
            events=len(outcome.events),
            servers=len(read.sightings),
            running=sum(1 for s in read.sightings.values() if s.server.power == RUNNING),
            unreadable=read.unreadable,
            unattributed=outcome.unattributed,
        )
        swept_id = deterministic_event_id("meter", window.epoch, "sweep", window.sweep)
        pending = {**memory.pending, **creations}
        for server_id in outcome.consumed_creations:
            pending.pop(server_id, None)
        too_old = window.started_at - timedelta(days=PENDING_CREATION_DAYS)
        expired = {server_id for server_id, creation in pending.items() if creation.at < too_old}
        with self.db.transaction() as session:
            current = store.lock_cursor(session)
            if (current.epoch, current.sweep) != (base.epoch, base.sweep):
                return False
            store.save_vms(session, outcome.changed.values())
            if creations or outcome.consumed_creations or expired:
                store.save_pending(session, creations, outcome.consumed_creations | expired, older_than=too_old)
            store.advance_cursor(
                session,
                sweep=window.sweep,
                started_at=window.started_at,
                finished_at=window.finished_at,
                log_marks=read.marks,
                now=self.now(),
            )
            # In chunks: a first sweep of 100,000 VMs publishes 70,000 starts, and their JSON need not
            # all be in memory at once.
            for start in range(0, len(outcome.events), OUTBOX_CHUNK):
                self.outbox.add_all(
                    session,
                    [
                        new_envelope(
                            event,
                            producer=PRODUCER,
                            event_id=_event_id(event),
                            correlation_id=swept_id,
                            occurred_at=window.finished_at,
                        )
                        for event in outcome.events[start : start + OUTBOX_CHUNK]
                    ],
                )
            self.outbox.add_all(
                session, [new_envelope(swept, producer=PRODUCER, event_id=swept_id, occurred_at=window.finished_at)]
            )
        known = memory.known
        for server_id, state in outcome.changed.items():
            if state.deleted:
                known.pop(server_id, None)
            else:
                known[server_id] = state
        cursor = store.Cursor(base.epoch, window.sweep, window.started_at, window.finished_at, dict(read.marks))
        self._memory = _Memory(cursor, known, {k: v for k, v in pending.items() if k not in expired})
        return True

    # The loop -------------------------------------------------------------------------------------

    def run(self, stop: threading.Event, wait: Wait | None = None) -> None:
        """Sweep every interval until ``stop``; a failed sweep is retried at the next interval.

        ``wait(stop, until)`` returns at ``until`` (by the meter's clock) or when stopped; the default
        sleeps in wall time. A test passes one that moves a simulated clock instead.
        """
        wait = wait or self._wall_wait
        interval = timedelta(seconds=self.settings.meter_interval_seconds)
        due = self.now()
        while not stop.is_set():
            began = self.now()
            try:
                with metrics.SWEEP_SECONDS.time():
                    self.sweep()
            except Exception:
                metrics.SWEEPS.labels("failed").inc()
                log.exception("sweep failed; nothing of it was recorded")
            due = max(due + interval, began)
            if due <= self.now():
                # Behind (a long sweep, a pause): the next sweep starts now, and the gap shows in the sweeps.
                due = self.now()
            wait(stop, due)

    def _wall_wait(self, stop: threading.Event, until: datetime) -> None:
        while not stop.is_set():
            remaining = (until - self.now()).total_seconds()
            if remaining <= 0:
                return
            stop.wait(min(remaining, 5.0))


def _event_id(event: MeterEvent) -> Any:
    if isinstance(event, (VmRunStarted, VmRunEnded)):
        key: object = event.run
    elif isinstance(event, VmPlanChanged):
        key = event.sweep
    else:
        key = "-"
    return deterministic_event_id("meter", event.meter_epoch, event.event_type, event.server_id, key)
