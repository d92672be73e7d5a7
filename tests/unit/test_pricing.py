"""Property tests of the money rules: tokens per VM, per-line rounding, totals, Decimal only."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.invoicer.pricing import Tariff, billable_hours, price_usage, tariff_for, vm_tokens
from services.invoicer.settings import InvoicerSettings
from shared.errors import ConfigurationError, PermanentError
from shared.events.billing import VmUsage
from tests.support.usage import vm_usage

counts = st.integers(min_value=0, max_value=10_000)
prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("5"), places=6, allow_nan=False, allow_infinity=False)
minor_units = st.integers(min_value=0, max_value=2)


@st.composite
def vms(draw: st.DrawFn) -> VmUsage:
    hours = draw(st.integers(min_value=1, max_value=745))
    per_hour, per_month = draw(counts), draw(counts)
    return vm_usage(
        draw(st.integers(min_value=1, max_value=10**6)), hours, tokens_per_hour=per_hour, tokens_per_month=per_month
    )


@given(st.integers(min_value=0, max_value=40 * 24 * 3600 * 10**6))
def test_billable_hours_round_any_started_hour_up(microseconds: int) -> None:
    running = timedelta(microseconds=microseconds)
    hours = billable_hours(running)
    assert hours == math.ceil(microseconds / (3600 * 10**6))
    assert timedelta(hours=hours) >= running > timedelta(hours=hours - 1) or hours == 0


def test_billable_hours_of_the_reference_examples() -> None:
    assert billable_hours(timedelta(minutes=5)) == 1
    assert billable_hours(timedelta(seconds=3600)) == 1
    assert billable_hours(timedelta(seconds=3601)) == 2
    assert billable_hours(timedelta(0)) == 0


@given(st.integers(min_value=0, max_value=40 * 24 * 3600), counts, counts)
def test_tokens_per_vm_are_ceil_hours_times_the_hourly_price_capped_by_the_monthly(
    seconds: int, per_hour: int, per_month: int
) -> None:
    hours = billable_hours(timedelta(seconds=seconds))
    tokens = vm_tokens(hours, per_hour, per_month)
    assert tokens == min(math.ceil(seconds / 3600) * per_hour, per_month)
    assert 0 <= tokens <= per_month
    assert tokens <= hours * per_hour


def test_the_reference_cap_examples() -> None:
    assert vm_tokens(744, 7, 5000) == 5000
    assert vm_tokens(700, 7, 5000) == 4900
    assert vm_tokens(1, 7, 5000) == 7


@given(counts, prices, minor_units)
def test_a_line_is_the_exact_product_rounded_half_up_to_the_minor_unit(
    tokens: int, price: Decimal, places: int
) -> None:
    amount = Tariff("EUR", price, places).amount(tokens)
    exact = price * tokens
    quantum = Decimal(1).scaleb(-places)
    assert isinstance(amount, Decimal)
    assert amount == exact.quantize(quantum, rounding=ROUND_HALF_UP)
    assert abs(amount - exact) <= quantum / 2
    assert amount.as_tuple().exponent == -places
    assert amount >= 0


def test_half_a_cent_rounds_up_and_just_below_rounds_down() -> None:
    tariff = Tariff("USD", Decimal("0.001"))
    assert tariff.amount(5) == Decimal("0.01")
    assert tariff.amount(4) == Decimal("0.00")
    assert Tariff("USD", Decimal("0.0025")).amount(3) == Decimal("0.01")  # 0.0075
    assert Tariff("JPY", Decimal("0.15"), 0).amount(3) == Decimal("0")  # 0.45
    assert Tariff("JPY", Decimal("0.15"), 0).amount(10) == Decimal("2")  # 1.5


@settings(max_examples=200)
@given(st.lists(vms(), max_size=12), prices, minor_units)
def test_the_total_is_the_sum_of_the_rounded_lines_never_negative(
    usages: list[VmUsage], price: Decimal, places: int
) -> None:
    priced = price_usage(usages, Tariff("EUR", price, places))
    assert [line.vm for line in priced.vms] == usages
    assert priced.total == sum((line.amount for line in priced.vms), Decimal(0))
    assert priced.total >= 0 and all(line.amount >= 0 for line in priced.vms)
    assert isinstance(priced.total, Decimal)
    assert priced.total_tokens == sum(vm.tokens for vm in usages)
    # Rounding per line moves the total by at most half a minor unit per line from the exact price.
    exact = price * priced.total_tokens
    assert abs(priced.total - exact) <= Decimal(1).scaleb(-places) / 2 * max(len(usages), 1)


def test_floats_are_refused_wherever_money_enters() -> None:
    with pytest.raises(TypeError):
        Tariff("USD", 0.001)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Tariff("USD", Decimal("0.001")).amount(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        vm_tokens(1.5, 7, 5000)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="floating-point"):
        InvoicerSettings(token_prices={"USD": 0.001})


def test_negative_quantities_are_refused() -> None:
    with pytest.raises(ValueError):
        vm_tokens(-1, 7, 5000)
    with pytest.raises(ValueError):
        Tariff("USD", Decimal("-0.001"))
    with pytest.raises(ValueError):
        Tariff("USD", Decimal("0.001")).amount(-1)


def test_tokens_that_break_the_charging_rule_are_refused_not_billed() -> None:
    wrong = vm_usage(1, 744, tokens=5208)  # 744 × 7, past the monthly cap of 5000
    with pytest.raises(PermanentError, match="min"):
        price_usage([wrong], Tariff("USD", Decimal("0.001")))


def test_prices_come_from_json_in_the_environment_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # A JSON number is read as a Decimal, never through a float: 0.1 stays exactly 0.1.
    monkeypatch.setenv("POSTPAY_TOKEN_PRICES", '{"usd": "0.0010", "EUR": 0.1}')
    monkeypatch.setenv("POSTPAY_CURRENCY_MINOR_UNITS", '{"JPY": 0}')
    loaded = InvoicerSettings()
    assert loaded.token_prices == {"USD": Decimal("0.0010"), "EUR": Decimal("0.1")}
    assert all(isinstance(price, Decimal) for price in loaded.token_prices.values())
    assert loaded.currency_minor_units == {"JPY": 0}


@pytest.mark.parametrize(
    ("prices_json", "units_json", "message"),
    [
        ("not json", "{}", "JSON object"),
        ('{"US": "0.001"}', "{}", "three-letter"),
        ('{"USD": "-1"}', "{}", ">= 0"),
        ('{"USD": "NaN"}', "{}", "finite"),
        ('{"USD": "0.001"}', '{"KWD": 3}', "0 to 2"),
    ],
)
def test_bad_price_settings_fail_at_start_not_on_an_invoice(
    monkeypatch: pytest.MonkeyPatch, prices_json: str, units_json: str, message: str
) -> None:
    monkeypatch.setenv("POSTPAY_TOKEN_PRICES", prices_json)
    monkeypatch.setenv("POSTPAY_CURRENCY_MINOR_UNITS", units_json)
    with pytest.raises(ValidationError, match=message):
        InvoicerSettings()


def test_a_currency_without_a_price_is_a_configuration_error_never_a_guess() -> None:
    with pytest.raises(ConfigurationError, match="no token price for currency GBP"):
        tariff_for("GBP", {"USD": Decimal("0.001")}, {})
    tariff = tariff_for("jpy", {"JPY": Decimal("0.15")}, {"JPY": 0})
    assert (tariff.currency, tariff.minor_units, tariff.zero) == ("JPY", 0, Decimal("0"))
