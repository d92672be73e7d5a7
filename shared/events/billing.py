"""Events of the month close (scheduler, usage collector, invoicer)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events.base import OPERATOR, Event, Money, UtcDateTime
from shared.events.fields import ClientId, PeriodKey, ShortText, SolusUserId, TimeZoneName
from shared.periods import BillingPeriod

Trigger = Literal["schedule", "manual", "replay"]


class PeriodWindow(Event, abstract=True):
    """Fields every period-scoped event repeats, so each can be handled on its own."""

    period: PeriodKey
    starts_at: UtcDateTime
    ends_at: UtcDateTime
    timezone: TimeZoneName

    @model_validator(mode="after")
    def _window_is_forward(self) -> PeriodWindow:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def billing_period(self) -> BillingPeriod:
        """The period, checked against the window carried with it: usage fetched for one window and
        invoiced as another month would bill the wrong hours. Raises ``ValueError`` on a mismatch."""
        period = BillingPeriod.parse(self.period, self.timezone)
        if (period.starts_at, period.ends_at) != (self.starts_at, self.ends_at):
            raise ValueError(
                f"the window [{self.starts_at}, {self.ends_at}) is not {self.period} in {self.timezone} "
                f"[{period.starts_at}, {period.ends_at})"
            )
        return period


def window_fields(period: BillingPeriod) -> dict[str, Any]:
    """The fields every period-scoped event carries, for ``period``."""
    return {"period": period.key, "starts_at": period.starts_at, "ends_at": period.ends_at, "timezone": period.timezone}


class BillingPeriodClosed(PeriodWindow):
    """A billing month has ended (or an operator replays one): collect and invoice it.

    ``only_client_ids`` narrows a replay to some customers; the scheduler never sets it.
    """

    producers = ("scheduler", OPERATOR)

    trigger: Trigger = "schedule"
    only_client_ids: tuple[ClientId, ...] | None = None


class CustomerUsageRequested(PeriodWindow):
    """One customer's share of a period close: a work item that retries and parks on its own."""

    producers = ("usage_collector",)

    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    trigger: Trigger = "schedule"


class VmUsage(BaseModel):
    """One VM's billable use in a period, as SolusVM 2 reported it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server_id: int = Field(gt=0)
    uuid: str = Field(default="", max_length=64)
    name: ShortText
    plan_id: int = Field(ge=0)
    plan_name: ShortText
    hours: int = Field(ge=0)
    tokens_per_hour: int = Field(ge=0)
    tokens_per_month: int = Field(ge=0)
    tokens: int = Field(ge=0)
    created_at: UtcDateTime | None = None
    deleted_at: UtcDateTime | None = None


class UsageCollected(PeriodWindow):
    """A customer's usage for a period, one entry per VM that ran in it."""

    producers = ("usage_collector",)

    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    vms: tuple[VmUsage, ...]
    total_tokens: int = Field(ge=0)
    trigger: Trigger = "schedule"

    @model_validator(mode="after")
    def _total_is_sum(self) -> UsageCollected:
        if self.total_tokens != sum(vm.tokens for vm in self.vms):
            raise ValueError("total_tokens must equal the sum of the VMs' tokens")
        return self


class InvoiceCreated(Event):
    """The WHMCS invoice for a (client, period) exists."""

    producers = ("invoicer",)

    whmcs_client_id: ClientId
    period: PeriodKey
    invoice_id: int = Field(gt=0)
    currency: str = Field(min_length=3, max_length=3)
    total: Money
    line_count: int = Field(ge=0)
    due_date: date
    run_key: str = Field(min_length=1, max_length=200)


class NothingToBill(Event):
    """A customer had no billable usage in a period; no invoice was created."""

    producers = ("invoicer",)

    whmcs_client_id: ClientId
    period: PeriodKey
