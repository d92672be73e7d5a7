"""The meter's reading of one sweep (pure): which transitions it publishes, at which instants."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.meter.observations import (
    MISSING_SWEEPS,
    LoggedCreation,
    Sighting,
    SweepWindow,
    VmState,
    observe,
)
from shared.events.metering import VmDeleted, VmPlanChanged, VmRunEnded, VmRunStarted
from shared.upstream.solusvm_inventory import RUNNING, STOPPED, UNKNOWN, PlanPrices, ServerSighting

EPOCH = uuid.UUID(int=7)
T = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
S = PlanPrices(1, "S", 7, 5000)
M = PlanPrices(2, "M", 14, 10000)


def window(sweep: int = 5, at: datetime = T) -> SweepWindow:
    """Sweep ``sweep`` from ``at`` for 10 s; the previous one a minute before."""
    return SweepWindow(EPOCH, sweep, at, at + timedelta(seconds=10), at - MIN, at - MIN + timedelta(seconds=10))


def seen(
    server_id: int,
    power: str = RUNNING,
    *,
    user: int = 9,
    plan: PlanPrices = S,
    at: datetime = T + timedelta(seconds=3),
) -> Sighting:
    server = ServerSighting(server_id, f"uuid-{server_id}", f"vm-{server_id}", power, user, plan, None)  # type: ignore[arg-type]
    return Sighting(server, at, at + timedelta(seconds=1))


def state(server_id: int, running: bool = True, **changes: object) -> VmState:
    fields: dict[str, object] = {
        "uuid": f"uuid-{server_id}",
        "name": f"vm-{server_id}",
        "user_id": 9,
        "plan": S,
        "running": running,
        "run": 1 if running else 0,
    }
    fields.update(changes)
    return VmState(server_id, **fields)  # type: ignore[arg-type]


def kinds(outcome: object) -> list[str]:
    return [type(event).__name__ for event in outcome.events]  # type: ignore[attr-defined]


def test_the_first_sweep_starts_every_running_vm_at_its_sighting_and_nothing_else() -> None:
    first = SweepWindow(EPOCH, 1, T, T + timedelta(seconds=10), None, None)
    outcome = observe({}, {1: seen(1), 2: seen(2, STOPPED), 3: seen(3, UNKNOWN)}, {}, {}, first, {})
    (started,) = outcome.events
    assert isinstance(started, VmRunStarted)
    assert (started.server_id, started.run, started.started_at, started.not_running_at, started.evidence) == (
        1,
        1,
        T + timedelta(seconds=4),
        None,
        "poll",
    )
    assert set(outcome.changed) == {1, 2, 3} and not outcome.changed[2].running


def test_a_stop_ends_the_run_at_the_last_sweep_that_saw_it_running() -> None:
    outcome = observe({1: state(1)}, {1: seen(1, STOPPED)}, {}, {}, window(), {})
    (ended,) = outcome.events
    assert isinstance(ended, VmRunEnded)
    assert (ended.ended_at, ended.not_running_at, ended.reason, ended.run) == (
        T - MIN,
        T + timedelta(seconds=3),
        "stopped",
        1,
    )
    assert not outcome.changed[1].running


def test_a_start_counts_from_the_poll_that_saw_it_with_the_bracket_from_the_sweep_before() -> None:
    outcome = observe({1: state(1, running=False, run=2)}, {1: seen(1)}, {}, {}, window(), {})
    (started,) = outcome.events
    assert (started.run, started.started_at, started.not_running_at) == (
        3,
        T + timedelta(seconds=4),  # type: ignore[attr-defined]
        T - MIN + timedelta(seconds=10),
    )


def test_a_vm_created_since_the_last_sweep_runs_from_its_logged_creation() -> None:
    created = T - timedelta(seconds=20)
    outcome = observe({}, {1: seen(1)}, {1: LoggedCreation(created)}, {}, window(), {})
    (started,) = outcome.events
    assert (started.started_at, started.not_running_at, started.evidence) == (created, created, "logged_creation")  # type: ignore[attr-defined]
    assert outcome.consumed_creations == {1}


def test_a_creation_logged_before_the_last_sweep_is_not_trusted_as_the_start() -> None:
    long_ago = T - timedelta(hours=3)  # the previous sweep should have listed it: something else happened
    (started,) = observe({}, {1: seen(1)}, {1: LoggedCreation(long_ago)}, {}, window(), {}).events
    assert (started.started_at, started.evidence) == (T + timedelta(seconds=4), "poll")  # type: ignore[attr-defined]


def test_a_logged_deletion_of_a_running_vm_ends_the_run_at_the_deletion() -> None:
    deleted = T - timedelta(seconds=30)
    outcome = observe({1: state(1)}, {}, {}, {1: deleted}, window(), {})
    ended, gone = outcome.events
    assert isinstance(ended, VmRunEnded) and isinstance(gone, VmDeleted)
    assert (ended.ended_at, ended.reason, gone.deleted_at) == (deleted, "deleted", deleted)
    assert outcome.changed[1].deleted


def test_still_listed_stopped_after_its_deletion_the_deletion_ends_the_run() -> None:
    deleted = T + timedelta(seconds=1)
    ended, _ = observe({1: state(1)}, {1: seen(1, STOPPED)}, {}, {1: deleted}, window(), {}).events
    assert (ended.ended_at, ended.reason) == (deleted, "deleted")  # type: ignore[attr-defined]


def test_seen_stopped_before_its_deletion_the_run_ended_at_the_last_running_sighting() -> None:
    deleted = T + timedelta(seconds=30)  # after this sweep's page was read
    ended, gone = observe({1: state(1)}, {1: seen(1, STOPPED)}, {}, {1: deleted}, window(), {}).events
    assert (ended.ended_at, ended.reason) == (T - MIN, "stopped")  # type: ignore[attr-defined]
    assert isinstance(gone, VmDeleted)


def test_listed_running_after_the_deletion_request_it_runs_until_this_sweep() -> None:
    deleted = T - timedelta(seconds=30)
    ended, _ = observe({1: state(1)}, {1: seen(1)}, {}, {1: deleted}, window(), {}).events
    assert ended.ended_at == T  # type: ignore[attr-defined]


def test_a_vm_missing_from_one_sweep_is_not_stopped_and_vanishes_at_its_last_sighting_after_two() -> None:
    known = {1: state(1)}
    first = observe(known, {}, {}, {}, window(5), {})
    assert first.events == [] and first.changed[1].missing == 1 and first.changed[1].running
    second = observe(first.changed, {}, {}, {}, window(6, T + MIN), {})
    (ended,) = second.events
    assert (ended.reason, ended.ended_at) == ("vanished", T - MIN)  # type: ignore[attr-defined]
    assert second.changed[1].missing == MISSING_SWEEPS
    third = observe(second.changed, {}, {}, {}, window(7, T + 2 * MIN), {})
    assert third.events == [] and third.changed == {}, "nothing more to write for a VM gone quiet"
    back = observe(second.changed, {1: seen(1, at=T + 3 * MIN)}, {}, {}, window(8, T + 3 * MIN), {})
    (restarted,) = back.events
    assert (restarted.run, restarted.evidence) == (2, "poll")  # type: ignore[attr-defined]
    assert back.changed[1].missing == 0


def test_a_vm_back_after_one_missing_sweep_is_still_the_same_run() -> None:
    first = observe({1: state(1)}, {}, {}, {}, window(5), {})
    again = observe(first.changed, {1: seen(1, at=T + MIN)}, {}, {}, window(6, T + MIN), {})
    assert again.events == [] and again.changed[1].missing == 0 and again.changed[1].run == 1


def test_a_stop_after_a_missing_sweep_ends_at_the_sweep_that_last_saw_it() -> None:
    first = observe({1: state(1)}, {}, {}, {}, window(5), {})
    (ended,) = observe(first.changed, {1: seen(1, STOPPED, at=T + MIN)}, {}, {}, window(6, T + MIN), {}).events
    assert ended.ended_at == T - MIN  # type: ignore[attr-defined]


def test_a_vm_created_and_deleted_between_sweeps_runs_from_creation_to_deletion_when_the_log_says_whose() -> None:
    created, deleted = T - timedelta(seconds=50), T - timedelta(seconds=20)
    creation = LoggedCreation(created, "u-1", "flash", 9, 2)
    outcome = observe({}, {}, {1: creation}, {1: deleted}, window(), {2: M})
    started, ended, gone = outcome.events
    assert (started.started_at, started.plan.id, started.solusvm_user_id) == (created, 2, 9)  # type: ignore[attr-defined]
    assert (ended.ended_at, gone.deleted_at) == (deleted, deleted)  # type: ignore[attr-defined]
    assert outcome.unattributed == 0


@pytest.mark.parametrize(
    "creation",
    [
        None,  # no creation on record
        LoggedCreation(T - timedelta(seconds=50)),  # whose? on which plan?
        LoggedCreation(T - timedelta(seconds=50), user_id=9, plan_id=99),  # a plan nobody knows
        LoggedCreation(T - timedelta(hours=5), user_id=9, plan_id=2),  # too old to be between two sweeps
    ],
)
def test_an_unlisted_deletion_the_log_cannot_attribute_is_counted_not_billed(creation: LoggedCreation | None) -> None:
    outcome = observe({}, {}, {1: creation} if creation else {}, {1: T - timedelta(seconds=20)}, window(), {2: M})
    assert outcome.events == [] and outcome.unattributed == 1


def test_a_resize_is_published_once_when_first_seen() -> None:
    outcome = observe({1: state(1)}, {1: seen(1, plan=M)}, {}, {}, window(), {})
    (changed,) = outcome.events
    assert isinstance(changed, VmPlanChanged) and changed.plan.id == 2 and changed.seen_at == T + timedelta(seconds=4)
    assert observe(outcome.changed, {1: seen(1, plan=M)}, {}, {}, window(6, T + MIN), {}).events == []


def test_a_new_owner_ends_one_run_and_starts_another() -> None:
    ended, started = observe({1: state(1)}, {1: seen(1, user=10)}, {}, {}, window(), {}).events
    assert (ended.reason, ended.run, started.run, started.solusvm_user_id) == ("owner_changed", 1, 2, 10)  # type: ignore[attr-defined]


def test_an_unknown_status_changes_nothing_and_a_deleted_vm_listed_again_is_ignored() -> None:
    assert observe({1: state(1)}, {1: seen(1, UNKNOWN)}, {}, {}, window(), {}).events == []
    assert observe({1: state(1, deleted=True)}, {1: seen(1)}, {}, {}, window(), {}).changed == {}
