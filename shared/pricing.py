"""Tokens to money, exactly: the one pricing code every part of postpay uses (the invoicer for
invoices, the signup for the month-to-date figures customers see), so the two never disagree.

SolusVM 2 charges each VM ``min(ceil(hours) × tokens_per_hour, tokens_per_month)`` tokens per period;
postpay turns tokens into the client's currency at a configured price per token. Every amount is a
``Decimal``: a float is refused wherever money enters. Each line is rounded HALF_UP to the currency's
minor unit on its own, and the invoice total is the sum of the rounded lines, so the total on the
invoice always equals what its lines add up to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from shared.errors import ConfigurationError, PermanentError
from shared.events.billing import VmUsage
from shared.money import minor_units as currency_minor_units
from shared.money import quantum

HOUR = timedelta(hours=1)
DEFAULT_MINOR_UNITS = 2


def billable_hours(running: timedelta) -> int:
    """Whole hours, rounded up: a VM that ran five minutes pays for one hour."""
    if running < timedelta(0):
        raise ValueError("running time cannot be negative")
    return -((-running) // HOUR)


def vm_tokens(hours: int, tokens_per_hour: int, tokens_per_month: int) -> int:
    """Tokens for one VM in one period: the hourly price, capped by the monthly price."""
    for name, value in (("hours", hours), ("tokens_per_hour", tokens_per_hour), ("tokens_per_month", tokens_per_month)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be a whole number, not {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} cannot be negative")
    return min(hours * tokens_per_hour, tokens_per_month)


def _exact(value: object, what: str) -> Decimal:
    if not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{what} must be finite")
    return value


@dataclass(frozen=True)
class Tariff:
    """What one token costs in one currency, and how finely that currency's amounts are rounded."""

    currency: str
    token_price: Decimal
    minor_units: int = DEFAULT_MINOR_UNITS

    def __post_init__(self) -> None:
        if _exact(self.token_price, "token_price") < 0:
            raise ValueError("a token price cannot be negative")
        if not 0 <= self.minor_units <= 6:
            raise ValueError("minor units must be between 0 and 6")

    @property
    def quantum(self) -> Decimal:
        return quantum(self.minor_units)

    def amount(self, tokens: int) -> Decimal:
        """The price of ``tokens``, rounded HALF_UP to the minor unit."""
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            raise TypeError(f"tokens must be a whole number, not {type(tokens).__name__}")
        if tokens < 0:
            raise ValueError("tokens cannot be negative")
        return (self.token_price * tokens).quantize(self.quantum, rounding=ROUND_HALF_UP)

    @property
    def zero(self) -> Decimal:
        return Decimal(0).quantize(self.quantum)


def tariff_for(currency: str, prices: Mapping[str, Decimal], minor_units: Mapping[str, int]) -> Tariff:
    """The configured tariff of ``currency``, rounded to its ISO 4217 minor unit unless ``minor_units``
    overrides it; never guessed when there is no price."""
    code = currency.strip().upper()
    price = prices.get(code)
    if price is None:
        configured = ", ".join(sorted(prices)) or "none"
        raise ConfigurationError(
            f"no token price for currency {code} (configured: {configured}); set POSTPAY_TOKEN_PRICES"
        )
    return Tariff(code, price, currency_minor_units(code, minor_units))


@dataclass(frozen=True)
class PricedVm:
    vm: VmUsage
    amount: Decimal


@dataclass(frozen=True)
class PricedUsage:
    tariff: Tariff
    vms: tuple[PricedVm, ...]

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.vms), self.tariff.zero)

    @property
    def total_tokens(self) -> int:
        return sum(line.vm.tokens for line in self.vms)


def check_vm_tokens(vm: VmUsage) -> None:
    """Refuse a usage entry whose tokens break the charging rule: it would put a wrong amount on an invoice."""
    expected = vm_tokens(vm.hours, vm.tokens_per_hour, vm.tokens_per_month)
    if vm.tokens != expected:
        raise PermanentError(
            f"VM {vm.server_id}: {vm.tokens} tokens reported, but min({vm.hours} h × {vm.tokens_per_hour}, "
            f"{vm.tokens_per_month}) = {expected}"
        )


def price_usage(vms: Sequence[VmUsage], tariff: Tariff, *, check: bool = True) -> PricedUsage:
    """One priced line per VM, in the order given. Without ``check`` the tokens are priced as reported
    even when they break the charging rule (the invoicer then holds the invoice, with that reason)."""
    priced = []
    for vm in vms:
        if check:
            check_vm_tokens(vm)
        priced.append(PricedVm(vm, tariff.amount(vm.tokens)))
    return PricedUsage(tariff, tuple(priced))
