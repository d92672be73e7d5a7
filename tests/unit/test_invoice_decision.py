"""The invoicer's decision on one usage: the physical and business checks that hold an invoice."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.invoicer.decision import decide
from services.invoicer.pricing import Tariff
from services.invoicer.settings import InvoicerSettings
from shared.errors import PermanentError
from shared.events.billing import VmUsage
from shared.periods import BillingPeriod
from tests.support.usage import vm_usage

NOW = datetime(2026, 11, 1, 0, 15, tzinfo=UTC)
OCTOBER = BillingPeriod.parse("2026-10")  # 744 hours
USD = Tariff("USD", Decimal("0.0010"))
SETTINGS = InvoicerSettings(token_prices={"USD": Decimal("0.0010")})


def vm(hours: int, tph: int = 7, tpm: int = 5000, tokens: int | None = None, server_id: int = 1) -> VmUsage:
    return vm_usage(server_id, hours, tokens_per_hour=tph, tokens_per_month=tpm, tokens=tokens)


def codes(
    *vms: VmUsage,
    settings: InvoicerSettings = SETTINGS,
    earlier: Decimal | None = None,
    period: BillingPeriod = OCTOBER,
) -> list[str]:
    decision = decide(vms, period, USD, settings, client_id=7, now=NOW, largest_earlier=earlier)
    return [reason.code for reason in decision.reasons] if decision.outcome == "hold" else [decision.outcome]


def test_an_ordinary_month_is_invoiced() -> None:
    assert codes(vm(744)) == ["invoice"]
    assert codes(vm(0, tokens=0)) == ["nothing-to-bill"]


def test_more_hours_than_the_period_has_are_held() -> None:
    assert codes(vm(745)) == ["hours-over-period"]
    # A shifted window (the month after a zone change) has its own length: 719 hours.
    november = BillingPeriod.parse("2026-11", "Europe/Berlin").between("UTC", None)
    assert codes(vm(719), period=november) == ["invoice"]
    assert codes(vm(720), period=november) == ["hours-over-period"]


def test_tokens_above_the_cap_or_off_the_rule_are_held_and_priced_as_reported() -> None:
    assert codes(vm(744, tokens=5001)) == ["tokens-over-cap"]
    assert codes(vm(10, tokens=71)) == ["tokens-off-rule"]
    decision = decide([vm(10, tokens=71)], OCTOBER, USD, SETTINGS, client_id=7, now=NOW, largest_earlier=None)
    assert decision.draft is not None and decision.draft.total == Decimal("0.07")


def test_negative_counts_are_refused_outright() -> None:
    broken = VmUsage.model_construct(
        server_id=1,
        name="vps",
        plan_id=1,
        plan_name="S",
        hours=-1,
        tokens_per_hour=7,
        tokens_per_month=5000,
        tokens=0,
        uuid="",
        created_at=None,
        deleted_at=None,
    )
    with pytest.raises(PermanentError, match="negative hours"):
        decide([broken, vm(1)], OCTOBER, USD, SETTINGS, client_id=7, now=NOW, largest_earlier=None)


def test_the_ceiling_is_configured_or_the_price_of_ten_million_tokens() -> None:
    absurd = vm(720, tph=1_000_000_000, tpm=10**15)  # USD 720,000,000
    assert codes(absurd) == ["total-over-ceiling"]
    at_default = vm(1, tph=10_000_000, tpm=10**15)  # exactly USD 10,000: not above
    assert codes(at_default) == ["invoice"]
    assert codes(vm(1, tph=10_010_000, tpm=10**15)) == ["total-over-ceiling"]  # USD 10,010
    strict = InvoicerSettings(token_prices={"USD": Decimal("0.0010")}, invoice_hold_above={"USD": "4.99"})
    assert codes(vm(744), settings=strict) == ["total-over-ceiling"]


def test_growth_is_measured_against_the_largest_earlier_invoice_when_there_is_one() -> None:
    assert codes(vm(744), earlier=None) == ["invoice"]  # 5.00, nothing to compare with
    assert codes(vm(744), earlier=Decimal("1.00")) == ["invoice"]  # exactly 5×
    assert codes(vm(744), earlier=Decimal("0.99")) == ["growth"]
    assert codes(vm(744), earlier=Decimal("0")) == ["invoice"]  # a zero invoice gives no scale
    floored = InvoicerSettings(token_prices={"USD": Decimal("0.0010")}, invoice_hold_growth_floor={"USD": "5"})
    assert codes(vm(744), earlier=Decimal("0.07"), settings=floored) == ["invoice"]
    triple = InvoicerSettings(token_prices={"USD": Decimal("0.0010")}, invoice_hold_growth_factor=Decimal(3))
    assert codes(vm(744), earlier=Decimal("1.60"), settings=triple) == ["growth"]


def test_every_reason_is_given_at_once() -> None:
    assert codes(vm(800, tph=1_000_000_000, tpm=10**15), earlier=Decimal("1")) == [
        "hours-over-period",
        "total-over-ceiling",
        "growth",
    ]
