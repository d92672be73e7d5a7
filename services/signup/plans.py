"""The landing page's plans: SolusVM 2's plan list (``GET /api/v1/plans``, §4.1), cached, priced in every
currency a customer may choose, with a worked example, all by ``shared.pricing`` (the invoicer's rules).

A view never waits on SolusVM 2 longer than ``plans_timeout_seconds``: the list is fetched in the
background when it is older than ``plans_cache_seconds``, and a view that cannot wait shows the list it
has (or, before the first one arrives, the token prices alone).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from services.signup.settings import SignupSettings
from shared.clock import Clock
from shared.logging import get_logger
from shared.money import format_money, minor_units
from shared.ports import SolusVM
from shared.pricing import Tariff, billable_hours, tariff_for, vm_tokens
from shared.upstream.solusvm_inventory import PlanPrices, Unreadable, parse_plan

log = get_logger("postpay.signup.plans")
MAX_PLANS = 100


@dataclass(frozen=True)
class PlanPrice:
    currency: str
    per_hour: str
    per_month_cap: str


@dataclass(frozen=True)
class PricedPlan:
    name: str
    tokens_per_hour: int
    tokens_per_month: int
    prices: tuple[PlanPrice, ...]


@dataclass(frozen=True)
class WorkedExample:
    plan: str
    currency: str
    short_minutes: int
    short_tokens: int
    short_amount: str
    month_hours: int
    month_uncapped_tokens: int
    month_tokens: int
    month_amount: str


def exact_amount(amount: Decimal, currency: str) -> str:
    """An amount with at least the currency's decimals and no rounding: a price per hour of 0.007 USD
    shows as 0.007 (the invoice rounds each line, not each hour)."""
    places = max(minor_units(currency), -amount.normalize().as_tuple().exponent)  # type: ignore[operator]
    return format(amount.quantize(Decimal(1).scaleb(-places)), "f")


def price_plan(plan: PlanPrices, tariffs: list[Tariff]) -> PricedPlan:
    prices = tuple(
        PlanPrice(
            t.currency,
            exact_amount(t.token_price * plan.tokens_per_hour, t.currency),
            format_money(t.amount(plan.tokens_per_month), t.currency),
        )
        for t in tariffs
    )
    return PricedPlan(plan.name or f"#{plan.id}", plan.tokens_per_hour, plan.tokens_per_month, prices)


def worked_example(plan: PlanPrices, tariff: Tariff, month_hours: int = 744) -> WorkedExample:
    """A VM that ran 40 minutes, and one that ran a whole month, on ``plan``, priced as the invoice will."""
    short = vm_tokens(billable_hours(timedelta(minutes=40)), plan.tokens_per_hour, plan.tokens_per_month)
    month = vm_tokens(month_hours, plan.tokens_per_hour, plan.tokens_per_month)
    return WorkedExample(
        plan.name or f"#{plan.id}",
        tariff.currency,
        40,
        short,
        format_money(tariff.amount(short), tariff.currency),
        month_hours,
        month_hours * plan.tokens_per_hour,
        month,
        format_money(tariff.amount(month), tariff.currency),
    )


def tariffs(settings: SignupSettings) -> list[Tariff]:
    return [tariff_for(code, settings.token_prices, {}) for code in settings.signup_currencies]


class PlanCatalog:
    """SolusVM 2's plans, fetched at most once per ``plans_cache_seconds``, by one background worker."""

    def __init__(self, solusvm: SolusVM, settings: SignupSettings, clock: Clock) -> None:
        self.solusvm, self.settings, self.clock = solusvm, settings, clock
        self._lock = threading.Lock()
        self._plans: tuple[PlanPrices, ...] | None = None
        self._fetched_at: datetime | None = None
        self._pending: Future[None] | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signup-plans")

    def fresh(self) -> tuple[bool, tuple[PlanPrices, ...] | None]:
        """(True, the list) while the cached list is fresh; (False, None) when a call to :meth:`plans`
        would have to ask SolusVM 2 (and may wait for it). Never blocks, never starts a fetch."""
        with self._lock:
            if self._is_fresh():
                return True, self._plans
        return False, None

    def plans(self) -> tuple[PlanPrices, ...] | None:
        """The newest list, fresh if SolusVM 2 answers within the timeout; None before any answered."""
        with self._lock:
            if self._is_fresh():
                return self._plans
            if self._pending is None or self._pending.done():
                self._pending = self._worker.submit(self._refresh)
            pending = self._pending
        try:
            pending.result(timeout=self.settings.plans_timeout_seconds)
        except FutureTimeout:
            log.info("SolusVM 2's plan list is slow; the landing page shows the last one it has")
        except Exception:
            pass
        with self._lock:
            return self._plans

    def _is_fresh(self) -> bool:
        return self._fetched_at is not None and self.clock() - self._fetched_at < timedelta(
            seconds=self.settings.plans_cache_seconds
        )

    def _refresh(self) -> None:
        try:
            found: list[PlanPrices] = []
            for page in self.solusvm.plan_pages():
                for raw in page:
                    try:
                        found.append(parse_plan(raw))
                    except Unreadable:
                        continue
                if len(found) >= MAX_PLANS:
                    break
        except Exception as exc:
            log.warning("SolusVM 2's plan list is not available", error=type(exc).__name__)
            raise
        plans = tuple(
            sorted(found[:MAX_PLANS], key=lambda plan: (plan.tokens_per_hour, plan.tokens_per_month, plan.id))
        )
        with self._lock:
            self._plans, self._fetched_at = plans, self.clock()
