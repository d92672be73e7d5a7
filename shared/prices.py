"""The token price list, one setting (``POSTPAY_TOKEN_PRICES``) read the same way by every service.

The landing page shows these prices and the invoicer bills with them, so both must read the same value
with the same default: a JSON object of currency code to price, every price an exact ``Decimal``.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_settings import NoDecode

_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")

DEFAULT_TOKEN_PRICES = {"USD": Decimal("0.0010"), "EUR": Decimal("0.0009")}


def parse_token_prices(value: Any) -> dict[str, Decimal]:
    """``{"USD": "0.0010"}`` from JSON or a mapping; a JSON number is read as a decimal literal, never
    through a float, and anything that is not a finite price >= 0 is refused with the currency named."""
    return parse_amounts(value, "token price", example='{"USD": "0.0010"}')


def parse_amounts(value: Any, what: str, *, example: str) -> dict[str, Decimal]:
    """A JSON object (or mapping) of currency code to an exact amount >= 0, e.g. token prices or limits."""
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_float=Decimal, parse_int=Decimal)
        except ValueError as exc:
            raise ValueError(f"{what}s must be a JSON object such as {example}: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what}s must be a JSON object of currency code to amount, e.g. {example}")
    prices: dict[str, Decimal] = {}
    for code, price in value.items():
        upper = str(code).strip().upper()
        if not _CURRENCY_CODE.match(upper):
            raise ValueError(f"{code!r} is not a three-letter currency code")
        if isinstance(price, float):
            raise ValueError(f"the {upper} {what} must be a decimal string, not a floating-point number")
        if isinstance(price, bool):
            raise ValueError(f"the {upper} {what} must be a decimal string, not true or false")
        try:
            decimal = price if isinstance(price, Decimal) else Decimal(str(price))
        except InvalidOperation:
            raise ValueError(f"the {upper} {what} is not a number: {price!r}") from None
        if not decimal.is_finite() or decimal < 0:
            raise ValueError(f"the {upper} {what} must be a finite number >= 0, not {price!r}")
        prices[upper] = decimal
    return prices


TokenPrices = Annotated[dict[str, Decimal], NoDecode, BeforeValidator(parse_token_prices)]


def token_prices_field() -> Any:
    return Field(
        default_factory=lambda: dict(DEFAULT_TOKEN_PRICES),
        description=(
            'Price of one SolusVM 2 token per WHMCS currency code, as JSON: {"USD": "0.0010", "EUR": "0.0009"}. '
            "The landing page shows these; a client whose currency is missing is not invoiced: "
            "the work is parked with that reason."
        ),
    )
