"""What customers are shown, priced by the invoicer's rules (pure): the landing page's plans and worked
example, the month so far with its estimate, and the plan list's cache that never makes a view wait long."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.signup.figures import estimated_tokens, still_running, usage_view
from services.signup.figures_store import UsageRow
from services.signup.plans import PlanCatalog, exact_amount, price_plan, tariffs, worked_example
from services.signup.settings import SignupSettings
from shared.clock import ManualClock
from shared.events.billing import VmUsage
from shared.pricing import Tariff
from shared.upstream.solusvm_inventory import PlanPrices
from tests.support.usage import vm_usage

S = PlanPrices(3, "S", 7, 5000)
EUR = Tariff("EUR", Decimal("0.0009"))
JPY = Tariff("JPY", Decimal("0.15"), 0)
NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
MONTH_END = datetime(2026, 12, 1, tzinfo=UTC)


def test_an_hourly_price_is_shown_unrounded_and_a_cap_to_the_minor_unit() -> None:
    assert exact_amount(Decimal("0.0063"), "EUR") == "0.0063"
    assert exact_amount(Decimal("7"), "USD") == "7.00"
    assert exact_amount(Decimal("1.05"), "JPY") == "1.05"
    priced = price_plan(S, [EUR, JPY])
    assert [(p.currency, p.per_hour, p.per_month_cap) for p in priced.prices] == [
        ("EUR", "0.0063", "4.50"),
        ("JPY", "1.05", "750"),
    ]


def test_the_worked_example_follows_the_billing_rules() -> None:
    example = worked_example(S, EUR)
    assert (example.short_minutes, example.short_tokens, example.short_amount) == (40, 7, "0.01")
    assert (example.month_uncapped_tokens, example.month_tokens, example.month_amount) == (5208, 5000, "4.50")


def test_only_currencies_with_a_price_and_a_whmcs_id_are_priced() -> None:
    settings = SignupSettings(token_prices={"USD": "0.001", "EUR": "0.0009", "GBP": "0.0008"})
    assert [t.currency for t in tariffs(settings)] == ["EUR", "USD"]


def vm(server_id: int, hours: int, *, ran_until: datetime | None, deleted: bool = False) -> VmUsage:
    return vm_usage(
        server_id,
        hours,
        name=f"vm-{server_id}",
        plan_id=3,
        ran_from=datetime(2026, 11, 1, tzinfo=UTC) if ran_until else None,
        ran_until=ran_until,
        deleted_at=ran_until if deleted else None,
    )


def test_the_estimate_runs_a_running_vm_to_the_month_end_and_adds_nothing_for_a_stopped_one() -> None:
    running, stopped, deleted = (
        vm(1, 348, ran_until=NOW),
        vm(2, 10, ran_until=NOW - timedelta(days=2)),
        vm(3, 1, ran_until=NOW, deleted=True),
    )
    assert [still_running(v, NOW) for v in (running, stopped, deleted)] == [True, False, False]
    # 348 hours so far + 372 left = 720 hours: 5040 tokens, capped at 5000.
    assert estimated_tokens(running, NOW, MONTH_END) == 5000
    assert estimated_tokens(vm(4, 2, ran_until=NOW), NOW, MONTH_END) == (2 + 372) * 7
    assert estimated_tokens(stopped, NOW, MONTH_END) == 70 and estimated_tokens(deleted, NOW, MONTH_END) == 7


def test_the_month_so_far_is_priced_line_by_line_and_marked_old_past_its_age() -> None:
    row = UsageRow(
        "2026-11",
        datetime(2026, 11, 1, tzinfo=UTC),
        NOW,
        "endpoint",
        (vm(1, 348, ran_until=NOW), vm(2, 1, ran_until=NOW - timedelta(days=9))),
    )
    shown = usage_view(
        row, tariff=EUR, month_ends_at=MONTH_END, now=NOW + timedelta(minutes=3), max_age=timedelta(minutes=5)
    )
    assert [(line.tokens, line.amount, line.running) for line in shown.lines] == [
        (2436, "EUR 2.19", True),
        (7, "EUR 0.01", False),
    ]
    assert (shown.total_tokens, shown.total, shown.estimate, shown.stale) == (2443, "EUR 2.20", "EUR 4.51", False)
    old = usage_view(
        row, tariff=EUR, month_ends_at=MONTH_END, now=NOW + timedelta(minutes=6), max_age=timedelta(minutes=5)
    )
    assert old.stale
    unpriced = usage_view(row, tariff=None, month_ends_at=MONTH_END, now=NOW, max_age=timedelta(minutes=5))
    assert (unpriced.total, unpriced.estimate, unpriced.lines[0].amount, unpriced.total_tokens) == (
        None,
        None,
        None,
        2443,
    )


class SlowPanel:
    """A SolusVM 2 whose plan list answers only when the test lets it."""

    def __init__(self) -> None:
        self.answer, self.calls = threading.Event(), 0

    def plan_pages(self) -> Any:
        self.calls += 1
        self.answer.wait(10)
        yield [{"id": 3, "name": "S", "tokens_per_hour": 7, "tokens_per_month": 5000}, {"id": 9, "name": "broken"}]


def test_a_slow_plan_list_does_not_hold_the_page_and_is_kept_once_it_comes() -> None:
    solusvm, clock = SlowPanel(), ManualClock(NOW)
    catalog = PlanCatalog(solusvm, SignupSettings(plans_timeout_seconds=0.05, plans_cache_seconds=300), clock)
    assert catalog.plans() is None, "nothing yet: the page shows the token prices alone"
    assert catalog.plans() is None and solusvm.calls == 1, "one fetch in flight, not one per view"
    solusvm.answer.set()
    for _ in range(100):
        if catalog.plans() is not None:
            break
        threading.Event().wait(0.02)
    assert catalog.plans() == (S,), "the unreadable plan is left out"
    clock.advance(seconds=299)
    assert catalog.plans() == (S,) and solusvm.calls == 1, "kept for the cache's lifetime"
    clock.advance(seconds=2)
    assert catalog.plans() == (S,) and solusvm.calls == 2


def test_the_landing_page_reads_a_fresh_plan_list_without_waiting_or_fetching() -> None:
    solusvm, clock = SlowPanel(), ManualClock(NOW)
    catalog = PlanCatalog(solusvm, SignupSettings(plans_timeout_seconds=0.05, plans_cache_seconds=300), clock)
    assert catalog.fresh() == (False, None) and solusvm.calls == 0, "nothing cached: no fetch started by asking"
    solusvm.answer.set()
    assert catalog.plans() == (S,)
    assert catalog.fresh() == (True, (S,)) and solusvm.calls == 1
    clock.advance(seconds=301)
    assert catalog.fresh() == (False, None), "stale: the page must go through plans(), which may wait"
    assert solusvm.calls == 1
