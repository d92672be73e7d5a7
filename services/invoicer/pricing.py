"""The invoicer's pricing is ``shared.pricing``: the signup prices month-to-date usage with the same
code, so what a customer sees during the month and what the invoice says follow one rule."""

from shared.pricing import (
    DEFAULT_MINOR_UNITS,
    PricedUsage,
    PricedVm,
    Tariff,
    billable_hours,
    check_vm_tokens,
    price_usage,
    tariff_for,
    vm_tokens,
)

__all__ = [
    "DEFAULT_MINOR_UNITS",
    "PricedUsage",
    "PricedVm",
    "Tariff",
    "billable_hours",
    "check_vm_tokens",
    "price_usage",
    "tariff_for",
    "vm_tokens",
]
