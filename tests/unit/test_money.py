"""Currency minor units come from ISO 4217, an operator's setting only overriding them; amounts print
with exactly their currency's decimals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.invoicer.pricing import tariff_for
from shared.money import format_money, iso_minor_units, minor_units

# From ISO 4217 list one (the maintenance agency's table), written out by hand.
ISO_4217 = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "HUF": 2,
    "INR": 2,
    "JPY": 0,
    "KRW": 0,
    "ISK": 0,
    "CLP": 0,
    "VND": 0,
    "UGX": 0,
    "XOF": 0,
    "PYG": 0,
    "BHD": 3,
    "KWD": 3,
    "JOD": 3,
    "OMR": 3,
    "TND": 3,
    "IQD": 3,
    "LYD": 3,
    "CLF": 4,
    "UYW": 4,
}


@pytest.mark.parametrize(("code", "places"), sorted(ISO_4217.items()))
def test_minor_units_are_those_of_iso_4217(code: str, places: int) -> None:
    assert iso_minor_units(code) == places
    assert iso_minor_units(code.lower()) == places


def test_an_invoice_is_rounded_to_the_iso_unit_at_most_to_the_cents_whmcs_stores() -> None:
    assert minor_units("JPY") == 0 and minor_units("USD") == 2
    # WHMCS keeps two decimals: a dinar amount is rounded once, to what the invoice can carry.
    assert minor_units("KWD") == 2 and minor_units("CLF") == 2
    # Not in ISO 4217 (a WHMCS administrator may define any code), or without a minor unit (gold).
    assert iso_minor_units("XBT") is None and minor_units("XBT") == 2
    assert iso_minor_units("XAU") is None and minor_units("XAU") == 2


def test_the_setting_overrides_iso() -> None:
    assert minor_units("JPY", {"JPY": 2}) == 2
    assert minor_units("usd", {"USD": 0}) == 0
    assert minor_units("EUR", {"JPY": 2}) == 2


def test_a_tariff_without_an_override_rounds_yen_to_whole_yen() -> None:
    tariff = tariff_for("JPY", {"JPY": Decimal("0.15")}, {})
    assert tariff.amount(70) == Decimal("11")  # 10.50 half up, not 10.50
    assert tariff_for("JPY", {"JPY": Decimal("0.15")}, {"JPY": 2}).amount(70) == Decimal("10.50")


def test_amounts_print_in_their_currencys_precision() -> None:
    assert format_money(Decimal("11.000000"), "JPY") == "11"
    assert format_money(Decimal("5.000000"), "USD") == "5.00"
    assert format_money(Decimal("0.5"), "JPY", {"JPY": 2}) == "0.50"
