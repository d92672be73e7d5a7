"""A server's usage for a test, built in one place: what a test does not care about takes a plain value,
and the tokens follow from the hours as SolusVM 2 charges them unless a test says otherwise."""

from __future__ import annotations

from typing import Any

from shared.events.billing import VmUsage
from shared.pricing import vm_tokens


def vm_usage(
    server_id: int = 1,
    hours: int = 0,
    *,
    tokens_per_hour: int = 7,
    tokens_per_month: int = 5000,
    tokens: int | None = None,
    name: str = "vps",
    plan_id: int = 1,
    plan_name: str = "S",
    **more: Any,
) -> VmUsage:
    """``tokens`` defaults to what SolusVM 2 charges for the hours (``shared.pricing.vm_tokens``)."""
    return VmUsage(
        server_id=server_id,
        name=name,
        plan_id=plan_id,
        plan_name=plan_name,
        hours=hours,
        tokens_per_hour=tokens_per_hour,
        tokens_per_month=tokens_per_month,
        tokens=vm_tokens(hours, tokens_per_hour, tokens_per_month) if tokens is None else tokens,
        **more,
    )
