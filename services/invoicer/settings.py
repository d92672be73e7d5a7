"""How usage becomes an invoice: token prices per currency and the WHMCS invoice options."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode

from shared.prices import TokenPrices, parse_amounts, token_prices_field
from shared.settings import SETTINGS_CONFIG

_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
# WHMCS keeps invoice amounts with two decimals: a finer minor unit would be rounded again there.
MAX_MINOR_UNITS = 2

AmountsByCurrency = Annotated[
    dict[str, Decimal],
    NoDecode,
    BeforeValidator(lambda value: parse_amounts(value, "amount", example='{"USD": "10000"}')),
]


def _json_object(value: Any, what: str) -> Any:
    """Read a JSON object from the environment with its numbers as exact Decimals, never floats."""
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_float=Decimal, parse_int=Decimal)
        except json.JSONDecodeError as exc:
            raise ValueError(f'{what} must be a JSON object, e.g. {{"USD": "0.0010"}}') from exc
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a mapping of currency code to value")
    return value


def _currency_codes(mapping: dict[str, Any]) -> dict[str, Any]:
    normalised = {}
    for code, value in mapping.items():
        upper = str(code).strip().upper()
        if not _CURRENCY_CODE.match(upper):
            raise ValueError(f"{code!r} is not a three-letter currency code")
        normalised[upper] = value
    return normalised


class InvoicerSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    token_prices: TokenPrices = token_prices_field()
    currency_minor_units: Annotated[dict[str, int], NoDecode] = Field(
        default={},
        description=(
            'Decimal places each invoice line is rounded to (HALF_UP), per currency, as JSON: {"XYZ": 0}; '
            "only to override ISO 4217, which gives every currency not listed its minor unit (JPY 0, USD 2; "
            "at most 2, the precision WHMCS stores; a code ISO 4217 does not know: 2). At most 2."
        ),
    )
    invoice_due_days: int = Field(default=14, ge=0, le=365, description="Days from the invoice date to its due date.")
    invoice_send_email: bool = Field(
        default=True, description='Ask WHMCS to send the "Invoice Created" email with each invoice.'
    )
    invoice_payment_method: str | None = Field(
        default=None,
        description="WHMCS payment gateway system name for the invoices (e.g. mailin); unset: the client's default.",
    )
    invoice_items_taxed: bool = Field(
        default=False, description="Mark every invoice line as taxable, so WHMCS applies its tax rules."
    )
    invoice_zero_usage: bool = Field(
        default=False,
        description=(
            "Create an invoice for 0.00 when a customer had no billable usage; by default such a customer "
            "is only recorded as having nothing to bill."
        ),
    )

    whmcs_uncertain_quiet_seconds: float = Field(
        default=600.0,
        ge=1,
        description=(
            "After CreateInvoice's outcome was lost (timeout, dropped connection, 5xx), seconds to wait before "
            "looking the invoice up by its run key and, if it is not there, creating it: longer than WHMCS may "
            "take to finish a request (its PHP max_execution_time), so an invoice it is still writing is found."
        ),
    )
    whmcs_uncertain_max_attempts: int = Field(
        default=12,
        ge=1,
        description=(
            "CreateInvoice attempts per client and month whose outcome may be lost before a lost one counts as a "
            "failed delivery (retried, then parked): until then each is settled by the look-up after the quiet "
            "time, without using up the delivery's retries."
        ),
    )
    invoice_hold_above: AmountsByCurrency = Field(
        default={},
        description=(
            'Hold an invoice whose total is above this, per currency, as JSON: {"USD": "10000"}. A currency not '
            "listed is held above the price of POSTPAY_INVOICE_HOLD_ABOVE_TOKENS tokens."
        ),
    )
    invoice_hold_above_tokens: int = Field(
        default=10_000_000,
        ge=1,
        description=(
            "For a currency without POSTPAY_INVOICE_HOLD_ABOVE: hold an invoice above the price of this many tokens."
        ),
    )
    invoice_hold_growth_factor: Decimal = Field(
        default=Decimal(5),
        ge=1,
        description="Hold an invoice above this many times the client's largest earlier invoice in its currency.",
    )
    invoice_hold_growth_floor: AmountsByCurrency = Field(
        default={},
        description=(
            'Per currency, as JSON ({"USD": "50"}): an invoice at or below this is never held by the growth rule '
            "alone (a partial first month followed by a full one); unset: the rule applies to every amount."
        ),
    )
    invoice_hold_pause_share: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description=(
            "Pause the rest of a period when more than this share of its customers seen so far are held (one "
            "upstream bug must not bill everyone); an operator resumes it with postpay holds resume."
        ),
    )
    invoice_hold_pause_minimum: int = Field(
        default=10,
        ge=1,
        description="Holds a period needs before the pause share applies (one early hold is not a pattern).",
    )

    @property
    def uncertain_quiet(self) -> timedelta:
        return timedelta(seconds=self.whmcs_uncertain_quiet_seconds)

    @field_validator("currency_minor_units", mode="before")
    @classmethod
    def _read_minor_units(cls, value: Any) -> Any:
        units = _currency_codes(_json_object(value, "currency_minor_units"))
        for code, places in units.items():
            if isinstance(places, Decimal) and places == places.to_integral_value():
                places = int(places)
            if not isinstance(places, int) or isinstance(places, bool) or not 0 <= places <= MAX_MINOR_UNITS:
                raise ValueError(f"the {code} minor unit must be a whole number from 0 to {MAX_MINOR_UNITS}")
            units[code] = places
        return units
