"""Money helpers every part of postpay reads the same way: a currency's minor unit, and how an amount
of it prints.

A currency's minor unit (how many decimals its amounts carry: 2 for USD, 0 for JPY) comes from ISO
4217, as published by its maintenance agency and shipped by the ``iso4217`` package; an operator's
setting only overrides it. WHMCS stores invoice amounts with two decimals, so a currency ISO gives three
or four (KWD, BHD, CLF) is rounded to two, the finest amount an invoice can carry, rather than rounded
twice. A code ISO 4217 does not know (WHMCS lets an administrator define any) keeps two.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

import iso4217

WHMCS_DECIMALS = 2
UNKNOWN_CURRENCY_DECIMALS = 2


def iso_minor_units(code: str) -> int | None:
    """The ISO 4217 minor unit of ``code``, or None where the standard has none (unknown code, gold)."""
    try:
        return iso4217.Currency(code.strip().upper()).exponent
    except ValueError:
        return None


def minor_units(code: str, overrides: Mapping[str, int] | None = None) -> int:
    """Decimals an invoice amount in ``code`` is rounded to: the override if configured, else ISO 4217
    (at most what WHMCS stores), else 2."""
    upper = code.strip().upper()
    if overrides and upper in overrides:
        return overrides[upper]
    iso = iso_minor_units(upper)
    return UNKNOWN_CURRENCY_DECIMALS if iso is None else min(iso, WHMCS_DECIMALS)


def quantum(places: int) -> Decimal:
    return Decimal(1).scaleb(-places)


def format_money(amount: Decimal, currency: str, overrides: Mapping[str, int] | None = None) -> str:
    """``amount`` with exactly the currency's decimals (``11`` yen, ``5.00`` dollars), for people to read."""
    places = minor_units(currency, overrides)
    return format(amount.quantize(quantum(places), rounding=ROUND_HALF_UP), "f")
