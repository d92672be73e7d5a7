"""Events of the month close (scheduler, usage collector, invoicer)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from shared.errors import PermanentError
from shared.events.base import OPERATOR, Event, Money, UtcDateTime
from shared.events.fields import ClientId, PeriodKey, ShortText, SolusUserId, TimeZoneName
from shared.events.metering import MeteringProvenance
from shared.periods import BillingPeriod

Trigger = Literal["schedule", "manual", "replay"]


class PeriodWindow(Event, abstract=True):
    """Fields every period-scoped event repeats, so each can be handled on its own."""

    period: PeriodKey
    starts_at: UtcDateTime
    ends_at: UtcDateTime
    timezone: TimeZoneName
    # Set only for the month after a change of billing time zone (see shared.periods): the zone whose
    # local midnight the window starts or ends at instead of ``timezone``'s.
    starts_in: TimeZoneName | None = None
    ends_in: TimeZoneName | None = None

    @model_validator(mode="after")
    def _window_is_forward(self) -> PeriodWindow:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    @model_serializer(mode="wrap")
    def _without_unshifted_zones(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        # Consumers that predate zone changes read these events too: send the fields only when set.
        return _drop_unset_shifts(handler(self))

    def billing_period(self) -> BillingPeriod:
        """The period, checked against the window carried with it: usage fetched for one window and
        invoiced as another month would bill the wrong hours. Raises ``ValueError`` on a mismatch."""
        period = BillingPeriod.parse(self.period, self.timezone).between(self.starts_in, self.ends_in)
        if (period.starts_at, period.ends_at) != (self.starts_at, self.ends_at):
            raise ValueError(
                f"the window [{self.starts_at}, {self.ends_at}) is not {self.period} in {self.timezone} "
                f"[{period.starts_at}, {period.ends_at})"
            )
        return period


def period_of(event: PeriodWindow) -> BillingPeriod:
    """The event's period, for a handler: a window that is not its period cannot be fixed by retrying,
    so it is a ``PermanentError`` (the message is parked with the reason, not retried)."""
    try:
        return event.billing_period()
    except ValueError as exc:
        raise PermanentError(str(exc)) from exc


def _drop_unset_shifts(data: Any) -> Any:
    if isinstance(data, dict):
        for name in ("starts_in", "ends_in"):
            if name in data and data[name] is None:
                del data[name]
    return data


def window_fields(period: BillingPeriod) -> dict[str, Any]:
    """The fields every period-scoped event carries, for ``period``."""
    fields = {
        "period": period.key,
        "starts_at": period.starts_at,
        "ends_at": period.ends_at,
        "timezone": period.timezone,
    }
    shifts = {"starts_in": period.starts_in, "ends_in": period.ends_in}
    return fields | {name: value for name, value in shifts.items() if value is not None}


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
    # The first and the last instant the VM ran inside the period (clipped to it), for the invoice line.
    # Optional and left off the wire when unset: a usage without them is the message it was before.
    ran_from: UtcDateTime | None = None
    ran_until: UtcDateTime | None = None

    @model_validator(mode="after")
    def _ran_forward(self) -> VmUsage:
        if (self.ran_from is None) != (self.ran_until is None):
            raise ValueError("ran_from and ran_until come together")
        if self.ran_from is not None and self.ran_until is not None and self.ran_until < self.ran_from:
            raise ValueError("ran_until must not be before ran_from")
        return self

    @model_serializer(mode="wrap")
    def _without_unset_run_dates(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in ("ran_from", "ran_until"):
                if name in data and data[name] is None:
                    del data[name]
        return data


class UsageCollected(PeriodWindow):
    """A customer's usage for a period, one entry per VM that ran in it.

    ``source`` and ``metering`` say where it came from (provenance only: the invoicer prices both the
    same). They are optional and left off the wire when they hold their defaults, so a usage from the
    endpoint is the same message it was before the meter existed, and an invoicer not yet upgraded
    still reads it.
    """

    producers = ("usage_collector",)

    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    vms: tuple[VmUsage, ...]
    total_tokens: int = Field(ge=0)
    trigger: Trigger = "schedule"
    source: Literal["endpoint", "meter"] = "endpoint"
    metering: MeteringProvenance | None = None

    @model_validator(mode="after")
    def _total_is_sum(self) -> UsageCollected:
        if self.total_tokens != sum(vm.tokens for vm in self.vms):
            raise ValueError("total_tokens must equal the sum of the VMs' tokens")
        if (self.source == "meter") != (self.metering is not None):
            raise ValueError("a metered usage carries its metering provenance, and only a metered one")
        return self

    @model_serializer(mode="wrap")
    def _without_default_provenance(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = _drop_unset_shifts(handler(self))
        if isinstance(data, dict):
            if data.get("source") == "endpoint":
                del data["source"]
            if data.get("metering", 0) is None:
                del data["metering"]
        return data


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


class InvoiceReleased(Event):
    """An operator released a held invoice of a (client, period), or resumed its paused period: invoice
    it as it was computed (the invoicer kept it). Written by ``postpay holds release|resume``."""

    # Written into the invoicer's outbox, which the invoicer's relay ships.
    producers = ("invoicer",)

    whmcs_client_id: ClientId
    period: PeriodKey
