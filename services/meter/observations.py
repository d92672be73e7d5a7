"""One sweep's observations against what the meter knew: the transitions to publish (pure, no I/O).

The model: a VM is taken to be in the same state between two observations that agree, and nowhere
else. Observations are sightings by a poll (``GET /servers``: running or not) and the activity log's
creations (it starts running) and deletions (it stops). So a run counts

- from its logged creation, when the VM was created since the previous sweep began and the first
  sighting shows it running; else from the poll that first saw it running;
- to its logged deletion (or a later sighting still running); else to the last sweep that saw it running.

Nothing between two polls is guessed: a VM seen stopped starts counting only when a poll sees it
running, and a run ends at the last poll that saw it. A stop and a start both inside one interval are
invisible to any sampler; that is the one way a sampled history differs from the truth the other way.

A VM missing from one sweep's list is not taken as stopped (a page may shift while VMs are created or
deleted during the sweep); after ``MISSING_SWEEPS`` sweeps without it and no logged deletion, its run
ends at the last sweep that saw it ("vanished"). A sweep is applied whole or not at all, so a crash
in the middle of one changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.events.metering import MeteredPlan, MeterEvent, VmDeleted, VmPlanChanged, VmRunEnded, VmRunStarted
from shared.upstream.solusvm_inventory import RUNNING, STOPPED, UNKNOWN, PlanPrices, ServerSighting

MISSING_SWEEPS = 2


@dataclass(frozen=True, slots=True)
class VmState:
    """What the meter knows of one VM after a sweep."""

    server_id: int
    uuid: str
    name: str
    user_id: int
    plan: PlanPrices
    running: bool
    run: int = 0
    missing: int = 0
    # The start of the last sweep that saw it, kept only while it is missing from the list.
    last_seen_at: datetime | None = None
    deleted: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True)
class Sighting:
    server: ServerSighting
    requested_at: datetime
    received_at: datetime


@dataclass(frozen=True)
class LoggedCreation:
    at: datetime
    uuid: str | None = None
    name: str | None = None
    user_id: int | None = None
    plan_id: int | None = None


@dataclass(frozen=True)
class SweepWindow:
    epoch: uuid.UUID
    sweep: int
    started_at: datetime
    finished_at: datetime
    previous_started_at: datetime | None
    previous_finished_at: datetime | None


@dataclass
class Outcome:
    changed: dict[int, VmState] = field(default_factory=dict)
    events: list[MeterEvent] = field(default_factory=list)
    consumed_creations: set[int] = field(default_factory=set)
    unattributed: int = 0


def metered_plan(plan: PlanPrices) -> MeteredPlan:
    return MeteredPlan(
        id=plan.id, name=plan.name, tokens_per_hour=plan.tokens_per_hour, tokens_per_month=plan.tokens_per_month
    )


class _Sweep:
    def __init__(self, window: SweepWindow, outcome: Outcome) -> None:
        self.window = window
        self.outcome = outcome

    def common(self, server_id: int) -> dict[str, object]:
        return {"meter_epoch": self.window.epoch, "sweep": self.window.sweep, "server_id": server_id}

    def last_running(self, state: VmState) -> datetime:
        """The start of the last sweep that saw ``state``'s VM (running, since it is running)."""
        if state.missing and state.last_seen_at is not None:
            return state.last_seen_at
        assert self.window.previous_started_at is not None, "a known VM was seen by an earlier sweep"
        return self.window.previous_started_at

    def start(self, state: VmState, started_at: datetime, not_running_at: datetime | None, evidence: str) -> VmState:
        run = state.run + 1
        self.outcome.events.append(
            VmRunStarted(
                **self.common(state.server_id),
                run=run,
                solusvm_user_id=state.user_id,
                uuid=state.uuid,
                name=state.name,
                plan=metered_plan(state.plan),
                created_at=state.created_at,
                started_at=started_at,
                not_running_at=not_running_at,
                evidence=evidence,
            )
        )
        return replace(state, running=True, run=run)

    def end(self, state: VmState, ended_at: datetime, not_running_at: datetime | None, reason: str) -> VmState:
        self.outcome.events.append(
            VmRunEnded(
                **self.common(state.server_id),
                run=state.run,
                ended_at=ended_at,
                not_running_at=not_running_at,
                reason=reason,
            )
        )
        return replace(state, running=False)

    def delete(self, state: VmState, deleted_at: datetime) -> VmState:
        self.outcome.events.append(VmDeleted(**self.common(state.server_id), deleted_at=deleted_at))
        return replace(state, deleted=True, running=False, missing=0, last_seen_at=None)


def observe(
    known: Mapping[int, VmState],
    sightings: Mapping[int, Sighting],
    creations: Mapping[int, LoggedCreation],
    deletions: Mapping[int, datetime],
    window: SweepWindow,
    plans: Mapping[int, PlanPrices],
) -> Outcome:
    """The transitions of one sweep. ``known``: every VM not deleted; ``creations``: logged creations of
    VMs not yet seen (this sweep's and earlier ones'); ``deletions``: this sweep's logged deletions."""
    outcome = Outcome()
    sweep = _Sweep(window, outcome)
    for server_id, sighting in sightings.items():
        state = known.get(server_id)
        if state is not None and state.deleted:
            continue
        deleted_at = deletions.get(server_id)
        running = sighting.server.power == RUNNING
        if state is None:
            state = _first_sighting(sweep, sighting, creations.get(server_id))
            outcome.consumed_creations.add(server_id)
        elif deleted_at is not None and not running and deleted_at <= sighting.requested_at:
            # Still listed, no longer running, deleted before this page was asked for: the deletion is
            # the first thing seen after the last running sighting, so it ends the run.
            state = _deleted(sweep, state, deleted_at, seen_running=False)
            outcome.changed[server_id] = state
            continue
        else:
            before = state
            state = _sighting(sweep, state, sighting)
            if state is before and deleted_at is None:
                continue  # seen as it was: nothing to write (the common case, every sweep, every VM)
        if deleted_at is not None:
            state = _deleted(sweep, state, deleted_at, seen_running=running)
        outcome.changed[server_id] = state
    for server_id, deleted_at in deletions.items():
        if server_id in sightings:
            continue
        state = known.get(server_id)
        if state is None:
            _never_listed(sweep, server_id, creations.get(server_id), deleted_at, plans)
            outcome.consumed_creations.add(server_id)
        elif not state.deleted:
            outcome.changed[server_id] = _deleted(sweep, state, deleted_at, seen_running=False)
    for server_id, state in known.items():
        if state.deleted or server_id in sightings or server_id in deletions:
            continue
        missing = _missing(sweep, state)
        if missing is not None:
            outcome.changed[server_id] = missing
    return outcome


def _first_sighting(sweep: _Sweep, sighting: Sighting, creation: LoggedCreation | None) -> VmState:
    server = sighting.server
    window = sweep.window
    state = VmState(
        server.id,
        server.uuid,
        server.name,
        server.user_id,
        server.plan,
        running=False,
        created_at=server.created_at or (creation.at if creation else None),
    )
    if server.power != RUNNING:
        return state
    created_since = (
        creation is not None
        and window.previous_started_at is not None
        and window.previous_started_at <= creation.at <= sighting.received_at
    )
    if created_since:
        assert creation is not None
        return sweep.start(state, creation.at, creation.at, "logged_creation")
    return sweep.start(state, sighting.received_at, None, "poll")


def _sighting(sweep: _Sweep, state: VmState, sighting: Sighting) -> VmState:
    """The VM's state after this sighting; ``state`` itself when the sighting changes nothing."""
    server = sighting.server
    unchanged_power = server.power == UNKNOWN or (server.power == RUNNING) == state.running
    if (
        unchanged_power
        and not state.missing
        and server.user_id == state.user_id
        and server.plan == state.plan
        and (server.uuid or state.uuid) == state.uuid
        and (server.name or state.name) == state.name
    ):
        return state
    not_running_since = state.last_seen_at if state.missing else sweep.window.previous_finished_at
    if server.user_id != state.user_id and state.running:
        # Another owner's run from here on; the old one ends at the last sighting under its owner.
        state = sweep.end(state, sweep.last_running(state), None, "owner_changed")
        not_running_since = None
    if server.plan != state.plan:
        sweep.outcome.events.append(
            VmPlanChanged(**sweep.common(state.server_id), plan=metered_plan(server.plan), seen_at=sighting.received_at)
        )
    last_running = sweep.last_running(state) if state.running else None
    state = replace(
        state, uuid=server.uuid or state.uuid, name=server.name or state.name, user_id=server.user_id, plan=server.plan
    )
    if server.power == RUNNING and not state.running:
        state = sweep.start(state, sighting.received_at, not_running_since, "poll")
    elif server.power == STOPPED and state.running:
        assert last_running is not None
        state = sweep.end(state, last_running, sighting.requested_at, "stopped")
    return replace(state, missing=0, last_seen_at=None)


def _deleted(sweep: _Sweep, state: VmState, deleted_at: datetime, *, seen_running: bool) -> VmState:
    if state.running:
        # Running until its deletion, or later if this sweep still saw it running after the request.
        last = sweep.window.started_at if seen_running else sweep.last_running(state)
        ended_at = max(deleted_at, last)
        state = sweep.end(state, ended_at, ended_at, "deleted")
    return sweep.delete(state, deleted_at)


def _missing(sweep: _Sweep, state: VmState) -> VmState | None:
    """One more sweep without the VM in the list; None when that changes nothing worth writing."""
    if state.missing >= MISSING_SWEEPS and not state.running:
        return None
    last_seen = state.last_seen_at if state.missing else sweep.window.previous_started_at
    state = replace(state, missing=state.missing + 1, last_seen_at=last_seen)
    if state.missing >= MISSING_SWEEPS and state.running and last_seen is not None:
        state = sweep.end(state, last_seen, None, "vanished")
    return state


def _never_listed(
    sweep: _Sweep,
    server_id: int,
    creation: LoggedCreation | None,
    deleted_at: datetime,
    plans: Mapping[int, PlanPrices],
) -> None:
    """Created and deleted between two sweeps: a run from its logged creation to its logged deletion,
    when the log tells whose it was and on which plan."""
    plan = plans.get(creation.plan_id) if creation is not None and creation.plan_id is not None else None
    previous = sweep.window.previous_started_at
    # Created before the previous sweep, it should have been listed: an entry this old is not a run
    # between two sweeps, and nothing proves it ran.
    if (
        creation is None
        or creation.user_id is None
        or plan is None
        or previous is None
        or not previous <= creation.at <= deleted_at
    ):
        sweep.outcome.unattributed += 1
        return
    state = VmState(
        server_id,
        creation.uuid or "",
        creation.name or f"#{server_id}",
        creation.user_id,
        plan,
        running=False,
        created_at=creation.at,
    )
    state = sweep.start(state, creation.at, creation.at, "logged_creation")
    state = sweep.end(state, deleted_at, deleted_at, "deleted")
    sweep.outcome.changed[server_id] = sweep.delete(state, deleted_at)
