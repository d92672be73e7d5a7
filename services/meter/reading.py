"""What one sweep reads: every page of ``GET /servers`` and the activity log since its read mark.

Only reads, no state: the sweep (``handlers``) decides what the reading means. Pages of the list are
fetched a few at a time once the first says how many there are; the log is read newest first until an
entry already seen (the first sweep of an epoch only learns where the log ends).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.meter.observations import LoggedCreation, Sighting, VmState
from services.meter.settings import MeterSettings
from shared.dependencies import Dependencies
from shared.logging import get_logger
from shared.upstream.solusvm_connection import SolusVMResponseError
from shared.upstream.solusvm_inventory import (
    DELETION_EVENTS,
    METERED_EVENTS,
    VM_CREATED,
    ActivityEntry,
    PlanPrices,
    Unreadable,
    parse_activity,
    parse_plan,
    parse_server,
)

log = get_logger("postpay.meter")
LOG_MARK = "activity_logs"


@dataclass
class Read:
    sightings: dict[int, Sighting] = field(default_factory=dict)
    entries: dict[str, list[ActivityEntry]] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)
    unreadable: int = 0
    requests: int = 0


class Reader:
    def __init__(self, deps: Dependencies, settings: MeterSettings) -> None:
        self.deps = deps
        self.settings = settings

    def now(self) -> datetime:
        return self.deps.clock()

    def pages(self, pages: Iterator[list[Any]], read: Read) -> Iterator[tuple[list[Any], datetime, datetime]]:
        while True:
            requested_at = self.now()
            try:
                items = next(pages)
            except StopIteration:
                return
            read.requests += 1
            yield items, requested_at, self.now()

    def server_page(self, page: int) -> tuple[list[Any], int | None, datetime, datetime]:
        requested_at = self.now()
        items, last = self.deps.solusvm.server_page(page, per_page=self.settings.meter_page_size)
        return items, last, requested_at, self.now()

    def server_pages(self, read: Read) -> Iterator[tuple[list[Any], datetime, datetime]]:
        """Every page of ``GET /servers``: the first alone (it says how many there are), the rest a few
        at a time, in order; then on one by one while pages keep coming (servers created meanwhile)."""
        items, last, requested_at, received_at = self.server_page(1)
        read.requests += 1
        yield items, requested_at, received_at
        page, known_last = 1, last
        if last is not None and last > 1:
            self.check_pages(last)
            with ThreadPoolExecutor(
                max_workers=self.settings.meter_page_concurrency, thread_name_prefix="meter-page"
            ) as pool:
                for items, said, requested_at, received_at in pool.map(self.server_page, range(2, last + 1)):
                    read.requests += 1
                    known_last = max(known_last or 0, said or 0)
                    yield items, requested_at, received_at
            page = last
        while items and (
            known_last is None
            and len(items) >= self.settings.meter_page_size
            or known_last is not None
            and page < known_last
        ):
            page += 1
            self.check_pages(page)
            items, said, requested_at, received_at = self.server_page(page)
            read.requests += 1
            if known_last is not None:
                known_last = max(known_last, said or 0)
            yield items, requested_at, received_at

    def check_pages(self, pages: int) -> None:
        if pages > self.settings.meter_max_pages:
            raise SolusVMResponseError(
                f"SolusVM /api/v1/servers: more than {self.settings.meter_max_pages} pages", upstream="solusvm"
            )

    def read(self, marks: dict[str, int], *, first: bool) -> Read:
        read = Read(marks=dict(marks))
        solusvm = self.deps.solusvm
        for items, requested_at, received_at in self.server_pages(read):
            for raw in items:
                try:
                    server = parse_server(raw)
                except Unreadable as exc:
                    read.unreadable += 1
                    log.warning("server entry skipped", reason=str(exc))
                    continue
                read.sightings[server.id] = Sighting(server, requested_at, received_at)
        # One unfiltered read: a sweep with nothing new costs one request, not one per metered event.
        pages = solusvm.activity_log_pages(
            per_page=self.settings.meter_page_size, max_pages=self.settings.meter_max_pages
        )
        read.entries = self.new_entries(self.pages(pages, read), read, first=first)
        return read

    def new_entries(
        self, pages: Iterable[tuple[list[Any], datetime, datetime]], read: Read, *, first: bool
    ) -> dict[str, list[ActivityEntry]]:
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

    def log_facts(
        self, read: Read, known: dict[int, VmState]
    ) -> tuple[dict[int, LoggedCreation], dict[int, datetime], int]:
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
                        creations[server_id] = LoggedCreation(
                            entry.created_at, ref.uuid, ref.name, ref.user_id, ref.plan_id
                        )
                    elif event in DELETION_EVENTS:
                        earlier = deletions.get(server_id)
                        deletions[server_id] = entry.created_at if earlier is None else min(earlier, entry.created_at)
        return creations, deletions, unresolved

    def plans_for(
        self,
        read: Read,
        deletions: dict[int, datetime],
        creations: dict[int, LoggedCreation],
        known: dict[int, VmState],
    ) -> dict[int, PlanPrices]:
        """Plans by id, for VMs created and deleted between two sweeps (their only record is the log)."""
        wanted = {
            c.plan_id
            for server_id, c in creations.items()
            if server_id in deletions and server_id not in known and server_id not in read.sightings
        }
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
