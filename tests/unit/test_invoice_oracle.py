"""The invoice oracle that the billing tests, the benchmark and the demo check invoices against:
its rule on hand-worked cases (it is the expectation, so it is checked by hand, not by postpay)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from simulators.oracle import Line, ServerUse, invoice_lines, invoice_total, running_seconds

START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)
NOW = END + timedelta(hours=5)


def lines(*servers: ServerUse, price: str = "0.0010", timezone: str = "UTC", places: int = 2) -> list[Line]:
    return invoice_lines(servers, start=START, end=END, timezone=timezone, price=Decimal(price), now=NOW, places=places)


def test_a_second_bills_a_whole_hour_and_a_run_before_the_month_counts_from_its_start() -> None:
    (line,) = lines(ServerUse(7, 10, 5000, [(START - timedelta(days=3), START + timedelta(seconds=1))]))
    assert (line.key, line.hours, line.tokens, line.amount) == (7, 1, 10, Decimal("0.01"))


def test_tokens_cap_at_the_plans_month_and_a_running_server_counts_to_the_end_not_now() -> None:
    (line,) = lines(ServerUse("web", 7, 5000, [(START - timedelta(days=1), None)]))
    assert (line.hours, line.tokens, line.amount) == (744, 5000, Decimal("5.00"))


def test_amounts_round_half_up_per_line_and_the_total_is_their_sum() -> None:
    # 3 hours × 5 tokens × 0.0009 = 0.0135 → 0.01 (2 places); 0.0135 → 0.014 (3 places).
    server = ServerUse(1, 5, 5000, [(START, START + timedelta(hours=2, minutes=1))])
    assert lines(server, price="0.0009")[0].amount == Decimal("0.01")
    assert lines(server, price="0.0009", places=3)[0].amount == Decimal("0.014")
    # 0.0150 → 0.02: half goes up, not to even.
    half = ServerUse(2, 5, 5000, [(START, START + timedelta(hours=3))])
    assert lines(half, price="0.0010")[0].amount == Decimal("0.02")
    assert invoice_total(lines(server, half, price="0.0009")) == Decimal("0.01") + Decimal("0.01")


def test_servers_that_did_not_run_in_the_month_have_no_line_and_order_is_kept() -> None:
    before = ServerUse(1, 7, 5000, [(START - timedelta(days=9), START)])
    after = ServerUse(2, 7, 5000, [(END, None)])
    b = ServerUse(3, 7, 5000, [(START, START + timedelta(hours=1))])
    a = ServerUse(4, 7, 5000, [(START, START + timedelta(hours=1))])
    assert [line.key for line in lines(before, after, b, a)] == [3, 4]


def test_several_runs_add_up_before_rounding() -> None:
    runs = [(START, START + timedelta(minutes=40)), (START + timedelta(days=2), START + timedelta(days=2, minutes=40))]
    assert running_seconds(runs, START, END, NOW) == 4800
    assert lines(ServerUse(1, 7, 5000, runs))[0].hours == 2


def test_a_run_still_going_counts_up_to_now_when_now_is_inside_the_month() -> None:
    now = START + timedelta(hours=10, seconds=1)
    assert running_seconds([(START, None)], START, END, now) == 36001


def test_the_days_a_server_ran_are_local_days_inside_the_month() -> None:
    created = START + timedelta(days=4, hours=23, minutes=30)  # 2026-10-05 23:30 UTC = 10-06 01:30 in Berlin
    deleted = START + timedelta(days=9, hours=1)
    server = ServerUse(1, 7, 5000, [(created, deleted)], deleted_at=deleted)
    assert lines(server)[0].ran == "ran 2026-10-05 to 2026-10-10"
    assert lines(server, timezone="Europe/Berlin")[0].ran == "ran 2026-10-06 to 2026-10-10"
    always = ServerUse(2, 7, 5000, [(START - timedelta(days=40), None)])
    assert lines(always)[0].ran == "ran 2026-10-01 to 2026-10-31"
