"""Unit and property tests of the period-usage computation (§8.3) and the timestamps it reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.solusvm.timestamps import format_timestamp, parse_utc_timestamp
from simulators.solusvm.usage import (
    MAX_WINDOW,
    PlanPrice,
    RunInterval,
    ServerRuntime,
    UsageWindow,
    WindowError,
    billable_hours,
    compute_usage,
    parse_window,
    running_time,
    window_tokens,
)

MAY = UsageWindow(datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC))
AFTER_MAY = datetime(2024, 6, 15, tzinfo=UTC)
PLAN_S = PlanPrice(id=3, name="S", tokens_per_hour=7, tokens_per_month=5000)
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def at(text: str) -> datetime:
    moment = parse_utc_timestamp(text)
    assert moment is not None
    return moment


def server(server_id: int, intervals: list[RunInterval], plan: PlanPrice = PLAN_S) -> ServerRuntime:
    created = intervals[0][0] if intervals else EPOCH
    return ServerRuntime(server_id, f"uuid-{server_id}", f"vps-{server_id}", plan, created, None, tuple(intervals))


def hours_in_may(*intervals: RunInterval) -> int:
    return billable_hours(running_time(intervals, MAY, AFTER_MAY))


class TestHours:
    @pytest.mark.parametrize(
        ("seconds", "hours"),
        [(0, 0), (0.000001, 1), (1, 1), (300, 1), (3599, 1), (3600, 1), (3601, 2), (7200, 2), (744 * 3600, 744)],
    )
    def test_rounds_up_to_whole_hours(self, seconds: float, hours: int) -> None:
        assert billable_hours(timedelta(seconds=seconds)) == hours

    @given(st.integers(min_value=0, max_value=10**12))
    def test_ceil_property_in_microseconds(self, microseconds: int) -> None:
        running = timedelta(microseconds=microseconds)
        hours = billable_hours(running)
        assert timedelta(hours=hours) >= running
        assert hours == 0 or timedelta(hours=hours - 1) < running

    def test_five_minute_vm_bills_one_hour_of_tokens(self) -> None:
        hours = hours_in_may((at("2024-05-10T08:00:00Z"), at("2024-05-10T08:05:00Z")))
        assert (hours, window_tokens(hours, PLAN_S)) == (1, 7)

    def test_monthly_cap(self) -> None:
        assert window_tokens(744, PLAN_S) == 5000  # 5208 capped
        assert window_tokens(700, PLAN_S) == 4900  # under the cap
        assert window_tokens(715, PLAN_S) == 5000  # 5005, capped


class TestWindowEdges:
    def test_half_open_window(self) -> None:
        assert hours_in_may((at("2024-04-01T00:00:00Z"), at("2024-05-01T00:00:00Z"))) == 0  # ends at from
        assert hours_in_may((at("2024-04-01T00:00:00Z"), at("2024-05-01T00:00:01Z"))) == 1
        assert hours_in_may((at("2024-06-01T00:00:00Z"), None)) == 0  # starts at to
        assert hours_in_may((at("2024-05-31T23:59:59Z"), None)) == 1
        assert hours_in_may((at("2024-04-20T09:00:00Z"), None)) == 744

    def test_open_interval_runs_until_now_only(self) -> None:
        now = at("2024-05-01T02:30:00Z")
        assert billable_hours(running_time([(at("2024-04-30T00:00:00Z"), None)], MAY, now)) == 3

    def test_overlapping_intervals_are_not_counted_twice(self) -> None:
        first = (at("2024-05-01T00:00:00Z"), at("2024-05-01T02:00:00Z"))
        overlapping = (at("2024-05-01T01:00:00Z"), at("2024-05-01T03:00:00Z"))
        assert running_time([first, overlapping], MAY, AFTER_MAY) == timedelta(hours=3)

    def test_hours_are_summed_before_rounding(self) -> None:
        # Two 20-minute runs are 40 minutes: one billed hour, not two.
        runs = [
            (at("2024-05-02T00:00:00Z"), at("2024-05-02T00:20:00Z")),
            (at("2024-05-03T00:00:00Z"), at("2024-05-03T00:20:00Z")),
        ]
        assert hours_in_may(*runs) == 1


class TestComputeUsage:
    def test_worked_example(self) -> None:
        servers = [
            server(103, [(at("2024-04-01T00:00:00Z"), at("2024-04-30T00:00:00Z"))]),
            server(101, [(at("2024-05-02T20:00:00Z"), None)]),
            server(102, [(at("2024-05-10T08:00:00Z"), at("2024-05-10T08:05:00Z"))]),
            server(100, [(at("2024-04-20T09:00:00Z"), None)]),
        ]
        report = compute_usage(12, servers, MAY, AFTER_MAY)
        assert [(c.server.id, c.hours, c.tokens) for c in report.charges] == [
            (100, 744, 5000),
            (101, 700, 4900),
            (102, 1, 7),
        ]
        assert report.total_tokens == 9907

    def test_no_servers_is_an_empty_report(self) -> None:
        report = compute_usage(1, [], MAY, AFTER_MAY)
        assert report.charges == () and report.total_tokens == 0


class TestParseWindow:
    def test_valid_window(self) -> None:
        assert parse_window("2024-05-01T00:00:00Z", "2024-06-01T00:00:00+00:00") == MAY

    @pytest.mark.parametrize(
        ("raw_from", "raw_to", "fields"),
        [
            (None, None, {"from", "to"}),
            ("", "2024-06-01T00:00:00Z", {"from"}),
            ("2024-05-01T00:00:00+01:00", "2024-06-01T00:00:00Z", {"from"}),
            ("2024-05-01T00:00:00Z", "2024-06-01T00:00:00", {"to"}),
            ("2024-06-01T00:00:00Z", "2024-05-01T00:00:00Z", {"to"}),
            ("2024-05-01T00:00:00Z", "2024-05-01T00:00:00Z", {"to"}),
            ("2024-05-01T00:00:00Z", "2024-06-02T00:00:00.000001Z", {"to"}),
        ],
    )
    def test_invalid_windows(self, raw_from: str | None, raw_to: str | None, fields: set[str]) -> None:
        with pytest.raises(WindowError) as caught:
            parse_window(raw_from, raw_to)
        assert set(caught.value.errors) == fields

    @given(st.integers(min_value=1, max_value=40 * 86400))
    def test_32_days_is_the_longest_window(self, seconds: int) -> None:
        start = datetime(2024, 5, 1, tzinfo=UTC)
        end = start + timedelta(seconds=seconds)
        if end - start > MAX_WINDOW:
            with pytest.raises(WindowError):
                parse_window(format_timestamp(start), format_timestamp(end))
        else:
            assert parse_window(format_timestamp(start), format_timestamp(end)) == UsageWindow(start, end)


class TestTimestamps:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2024-05-01T00:00:00Z", datetime(2024, 5, 1, tzinfo=UTC)),
            ("2024-05-01t00:00:00z", datetime(2024, 5, 1, tzinfo=UTC)),
            ("2024-05-01T00:00:00+00:00", datetime(2024, 5, 1, tzinfo=UTC)),
            ("2024-05-01T00:00:00.5Z", datetime(2024, 5, 1, 0, 0, 0, 500000, tzinfo=UTC)),
            ("2024-05-01T00:00:00.123456789Z", datetime(2024, 5, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ],
    )
    def test_utc_forms_are_read(self, text: str, expected: datetime) -> None:
        assert parse_utc_timestamp(text) == expected

    @pytest.mark.parametrize(
        "text",
        [
            "2024-05-01T00:00:00",
            "2024-05-01T02:00:00+02:00",
            "2024-05-01T00:00:00-00:00",
            "2024-05-01",
            "2024-05-01 00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T00:00:60Z",
            "",
            "now",
        ],
    )
    def test_anything_else_is_refused(self, text: str) -> None:
        assert parse_utc_timestamp(text) is None

    def test_format_is_z_with_a_fraction_only_when_needed(self) -> None:
        assert format_timestamp(datetime(2024, 5, 1, 2, tzinfo=UTC)) == "2024-05-01T02:00:00Z"
        assert format_timestamp(datetime(2024, 5, 1, 2, 0, 0, 5, tzinfo=UTC)) == "2024-05-01T02:00:00.000005Z"


# Properties over random histories, checked against a brute-force oracle: the set of running minutes.

minutes = st.integers(min_value=0, max_value=3 * 24 * 60)


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[int, int | None]]:
    """Intervals in whole minutes from EPOCH; possibly overlapping, unordered, the last one maybe open."""
    pairs = draw(st.lists(st.tuples(minutes, st.integers(min_value=1, max_value=600)), max_size=6))
    intervals: list[tuple[int, int | None]] = [(start, start + length) for start, length in pairs]
    if intervals and draw(st.booleans()):
        intervals[-1] = (intervals[-1][0], None)
    return intervals


def as_intervals(history: list[tuple[int, int | None]]) -> list[RunInterval]:
    return [(EPOCH + timedelta(minutes=s), None if e is None else EPOCH + timedelta(minutes=e)) for s, e in history]


@settings(max_examples=300, deadline=None)
@given(history=histories(), window=st.tuples(minutes, minutes), now_minute=minutes)
def test_running_time_matches_the_minute_oracle(
    history: list[tuple[int, int | None]], window: tuple[int, int], now_minute: int
) -> None:
    lo, hi = sorted(window)
    if lo == hi:
        hi += 1
    running_minutes: set[int] = set()
    for start, end in history:
        running_minutes.update(range(start, now_minute if end is None else end))
    expected = timedelta(minutes=len(running_minutes & set(range(lo, hi))))
    usage_window = UsageWindow(EPOCH + timedelta(minutes=lo), EPOCH + timedelta(minutes=hi))
    assert running_time(as_intervals(history), usage_window, EPOCH + timedelta(minutes=now_minute)) == expected


@settings(max_examples=200, deadline=None)
@given(history=histories(), cut=minutes)
def test_running_time_is_additive_over_split_windows(history: list[tuple[int, int | None]], cut: int) -> None:
    whole = UsageWindow(EPOCH, EPOCH + timedelta(days=4))
    split_at = EPOCH + timedelta(minutes=cut)
    now = EPOCH + timedelta(days=5)
    intervals = as_intervals(history)
    parts = running_time(intervals, UsageWindow(EPOCH, split_at), now) if cut else timedelta()
    parts += running_time(intervals, UsageWindow(split_at, whole.end), now)
    assert parts == running_time(intervals, whole, now)


@settings(max_examples=200, deadline=None)
@given(
    histories_by_server=st.lists(histories(), min_size=0, max_size=6),
    per_hour=st.integers(min_value=0, max_value=100),
    per_month=st.integers(min_value=0, max_value=20000),
)
def test_report_invariants(
    histories_by_server: list[list[tuple[int, int | None]]], per_hour: int, per_month: int
) -> None:
    plan = PlanPrice(1, "P", per_hour, per_month)
    window = UsageWindow(EPOCH + timedelta(hours=6), EPOCH + timedelta(days=2))
    now = EPOCH + timedelta(days=3)
    servers = [server(100 - n, as_intervals(h), plan) for n, h in enumerate(histories_by_server)]
    report = compute_usage(7, servers, window, now)
    ids = [charge.server.id for charge in report.charges]
    assert ids == sorted(ids)
    billed = {charge.server.id: charge for charge in report.charges}
    for candidate in servers:
        seconds = running_time(candidate.intervals, window, now)
        if seconds == timedelta():
            assert candidate.id not in billed  # zero runtime: omitted
            continue
        charge = billed[candidate.id]
        assert charge.hours >= 1
        assert charge.tokens == min(charge.hours * per_hour, per_month) <= per_month
    assert report.total_tokens == sum(charge.tokens for charge in report.charges)
