"""The meter's sweep: list every server, read the activity log since last time, publish what changed.

A sweep reads first (``GET /servers`` page by page, then each metered event's new log entries), then
applies everything in one transaction: the VMs' new state, the log's read marks, the transitions and
one ``MeterSwept`` into the outbox. Two meters may run (a restart, a second replica): the cursor row is
locked at commit and a sweep based on an older cursor is dropped, so each sweep number is published
once. A sweep that fails halfway (the panel down, the process killed) commits nothing.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.db import Database
from shared.dependencies import Dependencies
from shared.events.base import deterministic_event_id, new_envelope
from shared.events.metering import MeterEvent, MeterSwept, VmPlanChanged, VmRunEnded, VmRunStarted
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.upstream.solusvm import SolusVMResponseError
from shared.upstream.solusvm_inventory import (
    DELETION_EVENTS,
    METERED_EVENTS,
    RUNNING,
    VM_CREATED,
    ActivityEntry,
    PlanPrices,
    Unreadable,
    parse_activity,
    parse_plan,
    parse_server,
)

from services.meter import store
from services.meter.observations import LoggedCreation, Outcome, Sighting, SweepWindow, VmState, observe
from services.meter.settings import MeterSettings

log = get_logger("postpay.meter")
PRODUCER = "meter"
# A logged creation of a VM never listed is kept this long in case it is deleted unseen.
PENDING_CREATION_DAYS = 40
LOG_MARK = "activity_logs"
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


@dataclass
class _Read:
    sightings: dict[int, Sighting] = field(default_factory=dict)
    entries: dict[str, list[ActivityEntry]] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)
    unreadable: int = 0
    requests: int = 0


class Meter:
    """One process's meter. ``deps`` gives the database, the SolusVM 2 client and the clock (looked up
    when a sweep runs: the composition root sets the database after building the service)."""

    def __init__(self, deps: Dependencies, outbox: Outbox, settings: MeterSettings) -> None:
        self.deps = deps
        self.outbox = outbox
        self.settings = settings
        self._memory: _Memory | None = None

    @property
    def db(self) -> Database:
        return self.deps.db  # type: ignore[no-any-return]

    def now(self) -> datetime:
        return self.deps.clock()

    # The sweep ------------------------------------------------------------------------------------

    def sweep(self) -> SweepReport | None:
        """One sweep; None when another meter committed a sweep meanwhile (this one is dropped)."""
        memory = self._memory or self._load()
        base = memory.cursor
        started_at = self.now()
        read = self._read(base.log_marks, first=base.sweep == 0)
        finished_at = self.now()
        window = SweepWindow(base.epoch, base.sweep + 1, started_at, finished_at, base.started_at, base.finished_at)
        known = memory.known
        fresh = [server_id for server_id in read.sightings if server_id not in known]
        if fresh:
            with self.db.transaction() as session:
                known = {**known, **store.deleted_among(session, fresh)}
        creations, deletions, unresolved = self._log_facts(read, known, window)
        all_creations = {**memory.pending, **creations}
        plans = self._plans_for(read, deletions, all_creations, known)
        outcome = observe(known, read.sightings, all_creations, deletions, window, plans)
        outcome.unattributed += unresolved
        if not self._commit(memory, window, read, outcome, creations):
            log.info("sweep dropped: another meter committed this sweep first", sweep=window.sweep)
            self._memory = None
            return None
        running = sum(1 for s in read.sightings.values() if s.server.power == RUNNING)
        report = SweepReport(window.sweep, started_at, finished_at, len(read.sightings), running,
                             len(outcome.events), read.requests, read.unreadable, outcome.unattributed)
        log.info("sweep done", sweep=report.sweep, servers=report.servers, running=report.running,
                 events=report.events, requests=report.requests, unreadable=report.unreadable,
                 unattributed=report.unattributed)
        return report

    def _load(self) -> _Memory:
        with self.db.transaction() as session:
            cursor = store.ensure_cursor(session, self.now())
            return _Memory(cursor, store.known_vms(session), store.pending(session))

    def _pages(self, pages: Iterator[list[Any]], read: _Read) -> Iterator[tuple[list[Any], datetime, datetime]]:
        while True:
            requested_at = self.now()
            try:
                items = next(pages)
            except StopIteration:
                return
            read.requests += 1
            yield items, requested_at, self.now()

    def _server_page(self, page: int) -> tuple[list[Any], int | None, datetime, datetime]:
        requested_at = self.now()
        items, last = self.deps.solusvm.server_page(page, per_page=self.settings.meter_page_size)
        return items, last, requested_at, self.now()

    def _server_pages(self, read: _Read) -> Iterator[tuple[list[Any], datetime, datetime]]:
        """Every page of ``GET /servers``: the first alone (it says how many there are), the rest a few
        at a time, in order; then on one by one while pages keep coming (servers created meanwhile)."""
        items, last, requested_at, received_at = self._server_page(1)
        read.requests += 1
        yield items, requested_at, received_at
        page, known_last = 1, last
        if last is not None and last > 1:
            self._check_pages(last)
            with ThreadPoolExecutor(max_workers=self.settings.meter_page_concurrency,
                                    thread_name_prefix="meter-page") as pool:
                for items, said, requested_at, received_at in pool.map(self._server_page, range(2, last + 1)):
                    read.requests += 1
                    known_last = max(known_last or 0, said or 0)
                    yield items, requested_at, received_at
            page = last
        while items and (known_last is None and len(items) >= self.settings.meter_page_size
                         or known_last is not None and page < known_last):
            page += 1
            self._check_pages(page)
            items, said, requested_at, received_at = self._server_page(page)
            read.requests += 1
            if known_last is not None:
                known_last = max(known_last, said or 0)
            yield items, requested_at, received_at

    def _check_pages(self, pages: int) -> None:
        if pages > self.settings.meter_max_pages:
            raise SolusVMResponseError(f"SolusVM /api/v1/servers: more than {self.settings.meter_max_pages} pages",
                                       upstream="solusvm")

    def _read(self, marks: dict[str, int], *, first: bool) -> _Read:
        read = _Read(marks=dict(marks))
        solusvm = self.deps.solusvm
        for items, requested_at, received_at in self._server_pages(read):
            for raw in items:
                try:
                    server = parse_server(raw)
                except Unreadable as exc:
                    read.unreadable += 1
                    log.warning("server entry skipped", reason=str(exc))
                    continue
                read.sightings[server.id] = Sighting(server, requested_at, received_at)
        # One unfiltered read: a sweep with nothing new costs one request, not one per metered event.
        pages = solusvm.activity_log_pages(per_page=self.settings.meter_page_size,
                                           max_pages=self.settings.meter_max_pages)
        read.entries = self._new_entries(self._pages(pages, read), read, first=first)
        return read

    def _new_entries(self, pages: Iterable[tuple[list[Any], datetime, datetime]], read: _Read, *,
                     first: bool) -> dict[str, list[ActivityEntry]]:
        """Metered entries newer than the read mark, paging newest first until one is not; the first
        sweep of an epoch only learns where the log ends (what came before it was never metered)."""
        mark = read.marks.get(LOG_MARK, 0)
        found: dict[int, ActivityEntry] = {}
        for items, _, _ in pages:
            ids = []
            for raw in items:
                try:
                    entry = parse_activity(raw)
                except Unreadable:
                    read.unreadable += 1
                    continue
                ids.append(entry.id)
                if entry.id > mark and entry.event in METERED_EVENTS:
                    found[entry.id] = entry
            newest_first = all(a >= b for a, b in zip(ids, ids[1:]))
            read.marks[LOG_MARK] = max([read.marks.get(LOG_MARK, 0), *ids])
            if newest_first and (first or (ids and min(ids) <= mark)):
                break
        by_event: dict[str, list[ActivityEntry]] = {}
        for key in sorted(found) if not first else ():
            by_event.setdefault(found[key].event, []).append(found[key])
        return by_event

    def _log_facts(self, read: _Read, known: dict[int, VmState],
                   window: SweepWindow) -> tuple[dict[int, LoggedCreation], dict[int, datetime], int]:
        """Logged creations of VMs not known yet, logged deletions, and deletions naming no VM we can tell."""
        by_uuid = {s.server.uuid: s.server.id for s in read.sightings.values() if s.server.uuid}
        by_uuid.update({state.uuid: state.server_id for state in known.values() if state.uuid})
        creations: dict[int, LoggedCreation] = {}
        deletions: dict[int, datetime] = {}
        unresolved = 0
        for event, entries in read.entries.items():
            for entry in entries:
                resolved = [(ref, ref.id or by_uuid.get(ref.uuid or "")) for ref in entry.servers]
                if not any(server_id for _, server_id in resolved):
                    # The entry does not say which VM (the data shape is undocumented): the list tells.
                    if event in DELETION_EVENTS:
                        unresolved += 1
                    else:
                        read.unreadable += 1
                    continue
                for ref, server_id in resolved:
                    if not server_id:
                        continue
                    if event == VM_CREATED and server_id not in known:
                        creations[server_id] = LoggedCreation(entry.created_at, ref.uuid, ref.name, ref.user_id,
                                                              ref.plan_id)
                    elif event in DELETION_EVENTS:
                        earlier = deletions.get(server_id)
                        deletions[server_id] = entry.created_at if earlier is None else min(earlier, entry.created_at)
        return creations, deletions, unresolved

    def _plans_for(self, read: _Read, deletions: dict[int, datetime], creations: dict[int, LoggedCreation],
                   known: dict[int, VmState]) -> dict[int, PlanPrices]:
        """Plans by id, for VMs created and deleted between two sweeps (their only record is the log)."""
        wanted = {c.plan_id for server_id, c in creations.items()
                  if server_id in deletions and server_id not in known and server_id not in read.sightings}
        wanted.discard(None)
        if not wanted:
            return {}
        plans = {s.server.plan.id: s.server.plan for s in read.sightings.values()}
        if not wanted <= set(plans):
            for items in self.deps.solusvm.plan_pages():
                read.requests += 1
                for raw in items:
                    try:
                        plan = parse_plan(raw)
                    except Unreadable:
                        read.unreadable += 1
                        continue
                    plans[plan.id] = plan
        return plans

    def _commit(self, memory: _Memory, window: SweepWindow, read: _Read, outcome: Outcome,
                creations: dict[int, LoggedCreation]) -> bool:
        base = memory.cursor
        swept = MeterSwept(
            meter_epoch=window.epoch, sweep=window.sweep, started_at=window.started_at,
            finished_at=window.finished_at, interval_seconds=self.settings.meter_interval_seconds,
            events=len(outcome.events), servers=len(read.sightings),
            running=sum(1 for s in read.sightings.values() if s.server.power == RUNNING),
            unreadable=read.unreadable, unattributed=outcome.unattributed,
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
            store.advance_cursor(session, sweep=window.sweep, started_at=window.started_at,
                                 finished_at=window.finished_at, log_marks=read.marks, now=self.now())
            # In chunks: a first sweep of 100,000 VMs publishes 70,000 starts, and their JSON need not
            # all be in memory at once.
            for start in range(0, len(outcome.events), OUTBOX_CHUNK):
                self.outbox.add_all(session, [
                    new_envelope(event, producer=PRODUCER, event_id=_event_id(event), correlation_id=swept_id,
                                 occurred_at=window.finished_at)
                    for event in outcome.events[start:start + OUTBOX_CHUNK]])
            self.outbox.add_all(session, [new_envelope(swept, producer=PRODUCER, event_id=swept_id,
                                                       occurred_at=window.finished_at)])
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
                self.sweep()
            except Exception:  # noqa: BLE001 - the panel or the database down: retried next interval
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
