"""Events of the month-to-date usage customers see in the client area (signup and usage collector).

    UsageToDateRequested --usage_collector--> (the usage so far, from the configured source)
        --> UsageToDateReported --signup--> (the client-area panel and the account page)

The signup asks when its figure is older than it may show; the usage collector, which owns where usage
comes from (the SolusVM 2 endpoint or the meter's runs), answers with the same rules it bills by. No
service reads the other's tables, and a page view never waits on SolusVM 2: it shows the newest figure
the signup holds, with its time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from shared.events.base import Event, UtcDateTime
from shared.events.billing import VmUsage
from shared.events.fields import ClientId, PeriodKey, SolusUserId, TimeZoneName


class UsageToDateRequested(Event):
    """The signup asks for a customer's usage from ``starts_at`` (the billing month's start) until now.
    Only the WHMCS client is named: the usage collector looks its SolusVM 2 user up itself, so a request
    cannot point anyone's figures at another user."""

    producers = ("signup",)

    whmcs_client_id: ClientId
    period: PeriodKey
    starts_at: UtcDateTime
    timezone: TimeZoneName


class UsageToDateReported(Event):
    """A customer's usage from ``starts_at`` until ``as_of`` (now, or as far as the meter has seen),
    one entry per VM that ran, computed by the billing rules (hours rounded up, the monthly cap)."""

    producers = ("usage_collector",)

    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    period: PeriodKey
    starts_at: UtcDateTime
    as_of: UtcDateTime
    source: Literal["endpoint", "meter"]
    vms: tuple[VmUsage, ...] = Field(max_length=500)
    total_tokens: int = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> UsageToDateReported:
        if self.as_of < self.starts_at:
            raise ValueError("as_of must not be before starts_at")
        if self.total_tokens != sum(vm.tokens for vm in self.vms):
            raise ValueError("total_tokens must equal the sum of the VMs' tokens")
        return self
