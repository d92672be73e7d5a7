"""A period's usage from the meter's runs (pure): §8's rules, the plan rule, gaps, the estimate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.usage_collector.meter_progress import Gap
from services.usage_collector.meter_store import PlanRow, RunRow, VmRow
from services.usage_collector.metered import coverage_gaps, metered_usage, run_interval, without_gaps
from shared.events.metering import MeteredPlan

EPOCH, OLD_EPOCH = uuid.UUID(int=2), uuid.UUID(int=1)
START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)
S = MeteredPlan(id=1, name="S", tokens_per_hour=7, tokens_per_month=5000)
L = MeteredPlan(id=3, name="L", tokens_per_hour=28, tokens_per_month=20000)
WATCHED = {EPOCH: END + H}


def run(
    server: int,
    start: datetime,
    end: datetime | None,
    *,
    number: int = 1,
    epoch: uuid.UUID = EPOCH,
    start_bound: datetime | None = None,
    end_bound: datetime | None = None,
) -> RunRow:
    return RunRow(epoch, server, number, start, start_bound, end, end_bound)


def usage(runs: list[RunRow], plans: list[PlanRow] | None = None, gaps: list[Gap] | None = None, **options: object):
    servers = {r.server_id for r in runs}
    plans = plans if plans is not None else [PlanRow(s, START - 30 * 24 * H, S) for s in servers]
    vms = {s: VmRow(s, f"u-{s}", f"vm-{s}", None, None) for s in servers}
    merged = {"estimate": "observed", "gap_policy": "bill", "epoch_ends": WATCHED, **options}
    return {
        vm.server_id: vm for vm in metered_usage(runs, plans, vms, gaps or [], starts_at=START, ends_at=END, **merged)
    }  # type: ignore[arg-type]


def test_hours_round_up_per_vm_over_all_its_runs_clipped_to_the_period() -> None:
    found = usage(
        [
            run(1, START - 5 * H, START + timedelta(minutes=20)),  # 20 min inside
            run(1, START + 2 * H, START + 2 * H + timedelta(minutes=50), number=2),  # + 50 min = 70 min → 2 h
            run(2, START + 3 * H, START + 3 * H + timedelta(minutes=5)),  # a 5-minute VM → 1 h
            run(3, START - 2 * H, START - H),  # before the period: omitted
        ]
    )
    assert {s: (vm.hours, vm.tokens) for s, vm in found.items()} == {1: (2, 14), 2: (1, 7)}


def test_exactly_an_hour_is_one_hour_and_a_second_more_is_two() -> None:
    found = usage([run(1, START, START + H), run(2, START, START + H + timedelta(seconds=1))])
    assert (found[1].hours, found[2].hours) == (1, 2)


def test_the_monthly_cap_applies_once_and_an_open_run_counts_to_the_period_end() -> None:
    (vm,) = usage([run(1, START - 40 * 24 * H, None)]).values()
    assert (vm.hours, vm.tokens) == (744, 5000)


def test_overlapping_runs_are_never_counted_twice() -> None:
    # Two epochs (a reset meter) that both saw the VM run: the union, not the sum.
    (vm,) = usage(
        [run(1, START, START + 10 * H), run(1, START + 5 * H, START + 12 * H, epoch=OLD_EPOCH)],
        epoch_ends={EPOCH: END + H, OLD_EPOCH: START + 12 * H},
    ).values()
    assert vm.hours == 12


def test_an_open_run_of_an_epoch_that_stopped_ends_at_its_last_sweep() -> None:
    (vm,) = usage([run(1, START, None, epoch=OLD_EPOCH)], epoch_ends={OLD_EPOCH: START + 30 * H}).values()
    assert vm.hours == 30


def test_the_plan_at_the_period_end_prices_all_its_hours() -> None:
    plans = [
        PlanRow(1, START - H, S),
        PlanRow(1, START + 20 * 24 * H, L),
        PlanRow(2, START - H, L),
        PlanRow(2, START + 10 * 24 * H, S),
        PlanRow(3, START - H, S),
        PlanRow(3, END + H, L),
    ]
    found = usage(
        [run(1, START, START + 100 * H), run(2, START, START + 100 * H), run(3, START, START + 100 * H)], plans=plans
    )
    assert (found[1].plan_id, found[1].tokens) == (3, 2800), "an upgrade: the whole period at L"
    assert (found[2].plan_id, found[2].tokens) == (1, 700), "a downgrade: the whole period at S"
    assert (found[3].plan_id, found[3].tokens) == (1, 700), "a resize after the period does not count"


def test_midpoint_takes_the_middle_of_each_bracket() -> None:
    edges = run(1, START + 10 * H, START + 20 * H, start_bound=START + 9 * H, end_bound=START + 22 * H)
    assert run_interval(edges, estimate="observed", period_end=END, epoch_ends=WATCHED) == (
        START + 10 * H,
        START + 20 * H,
    )
    assert run_interval(edges, estimate="midpoint", period_end=END, epoch_ends=WATCHED) == (
        START + 9 * H + 30 * timedelta(minutes=1),
        START + 21 * H,
    )
    assert usage([edges], estimate="midpoint")[1].hours == 12


def test_skip_removes_only_gaps_a_run_spans_and_bill_keeps_them() -> None:
    gap = Gap(START + 10 * H, START + 13 * H)
    spanning = run(1, START, START + 20 * H)
    begun_inside = run(2, START + 11 * H, START + 20 * H)  # created during the gap: its logged creation counts
    assert usage([spanning, begun_inside], gaps=[gap])[1].hours == 20
    skipped = usage([spanning, begun_inside], gaps=[gap], gap_policy="skip")
    assert (skipped[1].hours, skipped[2].hours) == (17, 9)
    assert without_gaps((START, START + 20 * H), [gap, Gap(START + 15 * H, START + 16 * H)]) == [
        (START, START + 10 * H),
        (START + 13 * H, START + 15 * H),
        (START + 16 * H, START + 20 * H),
    ]


def test_every_gap_is_reported_with_whether_it_was_billed() -> None:
    gaps = [Gap(START - 2 * H, START + H), Gap(START + 50 * H, START + 53 * H)]
    reported = coverage_gaps(gaps, starts_at=START, ends_at=END, metered_since=START + 5 * H, gap_policy="bill")
    assert [(g.starts_at, g.ends_at, g.billed) for g in reported] == [
        (START, START + 5 * H, False),
        (START, START + H, True),
        (START + 50 * H, START + 53 * H, True),
    ]
    assert coverage_gaps([], starts_at=START, ends_at=END, metered_since=START - H, gap_policy="skip") == ()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-100, 800), st.integers(1, 300)), min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 740), st.integers(3, 40)), max_size=3),
)
def test_skipping_gaps_never_bills_more_than_billing_them(
    pieces: list[tuple[int, int]], holes: list[tuple[int, int]]
) -> None:
    runs = [run(1, START + a * H, START + (a + n) * H, number=i + 1) for i, (a, n) in enumerate(pieces)]
    gaps = [Gap(START + a * H, START + (a + n) * H) for a, n in holes]
    billed, skipped = usage(runs, gaps=gaps), usage(runs, gaps=gaps, gap_policy="skip")
    assert set(skipped) <= set(billed)
    for server, vm in skipped.items():
        assert vm.hours <= billed[server].hours <= 744


def test_each_vm_says_the_first_and_last_instant_it_ran_inside_the_period() -> None:
    found = usage(
        [
            run(1, START - 5 * H, START + 2 * H),  # from the period's start
            run(1, START + 9 * 24 * H, START + 9 * 24 * H + 40 * timedelta(minutes=1), number=2),
            run(2, START + 3 * 24 * H, START + 3 * 24 * H + timedelta(minutes=40)),  # forty minutes on the 4th
            run(3, END - H, None),  # still running at the end
        ]
    )
    assert (found[1].ran_from, found[1].ran_until) == (START, START + 9 * 24 * H + timedelta(minutes=40))
    assert (found[2].ran_from, found[2].ran_until) == (START + 3 * 24 * H, START + 3 * 24 * H + timedelta(minutes=40))
    assert (found[3].ran_from, found[3].ran_until) == (END - H, END)


def test_the_usage_endpoint_gives_each_vm_its_life_inside_the_window() -> None:
    from services.usage_collector.usage import vm_usages
    from shared.upstream.solusvm_models import PeriodUsage

    plan = {"id": 3, "name": "S", "tokens_per_hour": 7, "tokens_per_month": 5000}
    body = {
        "user_id": 9,
        "period": {"from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
        "total_tokens": 5014,
        "servers": [
            {
                "id": 1,
                "uuid": "a",
                "name": "old",
                "plan": plan,
                "created_at": "2026-09-20T09:00:00Z",
                "deleted_at": None,
                "hours": 744,
                "tokens": 5000,
            },
            {
                "id": 2,
                "uuid": "b",
                "name": "tmp",
                "plan": plan,
                "created_at": "2026-10-10T08:00:00Z",
                "deleted_at": "2026-10-10T08:40:00Z",
                "hours": 1,
                "tokens": 7,
            },
            {
                "id": 3,
                "uuid": "c",
                "name": "gone",
                "plan": plan,
                "created_at": "2026-09-01T00:00:00Z",
                "deleted_at": "2026-10-01T00:30:00Z",
                "hours": 1,
                "tokens": 7,
            },
        ],
    }
    old, tmp, gone = vm_usages(PeriodUsage.model_validate(body))
    assert (old.ran_from, old.ran_until) == (START, END)
    assert (tmp.ran_from, tmp.ran_until) == (
        datetime(2026, 10, 10, 8, tzinfo=UTC),
        datetime(2026, 10, 10, 8, 40, tzinfo=UTC),
    )
    assert (gone.ran_from, gone.ran_until) == (START, START + timedelta(minutes=30))
