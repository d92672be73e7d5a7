"""Events of the account lifecycle: each SolusVM 2 user follows the customer's standing in WHMCS.

    AccountsSyncRequested --provisioner--> one CustomerStandingCheckRequested per enrolled customer
    CustomerStandingCheckRequested --provisioner--> (SolusVM 2 user status and email set) and, for
        what changed: UserSuspended / UserReactivated / UserLocked / InvoiceOverdue / InvoicePaid /
        CustomerEmailChanged --signup--> (the client-area panel), --provisioner--> (customer emails)

The checks are level-triggered: each reads the whole standing afresh and converges on it, so a lost,
repeated or late check never leaves a user in the wrong state. Every change event carries the
customer's ``standing`` after the change with a ``revision`` that grows with each change: a consumer
keeps the highest revision it saw, so events that arrive out of order cannot roll its view back.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import OPERATOR, Event, Money, UtcDateTime
from shared.events.fields import ClientId, EmailAddress, ShortText, SolusUserId, TimeZoneName

AccountStatus = Literal["active", "suspended", "locked"]
InvoiceId = Annotated[int, Field(gt=0, description="WHMCS invoice id")]
SyncTrigger = Literal["schedule", "manual"]


class AccountStanding(BaseModel):
    """Where a customer stands after a change, as the provisioner recorded it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: AccountStatus
    overdue_invoice_ids: tuple[InvoiceId, ...] = ()
    revision: int = Field(ge=1, description="Grows by one with every recorded change of this customer.")


class OverdueInvoice(BaseModel):
    """A postpay invoice past its due date and the grace days, as a suspension email names it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    invoice_id: InvoiceId
    due_date: date
    total: Money
    currency: str = Field(default="", max_length=3)


class AccountsSyncRequested(Event):
    """The daily tick (or an operator) asks every enrolled customer's standing to be checked.

    ``timezone`` is the billing time zone: ``as_of`` read there is the day invoices are overdue on.
    ``only_client_ids`` narrows an operator's sync to some customers; the tick never sets it.
    """

    producers = ("scheduler", OPERATOR)

    as_of: UtcDateTime
    timezone: TimeZoneName = "UTC"
    trigger: SyncTrigger = "schedule"
    only_client_ids: tuple[ClientId, ...] | None = None


class CustomerStandingCheckRequested(Event):
    """One customer's share of an accounts sync: a work item that retries and parks on its own."""

    producers = ("provisioner",)

    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    as_of: UtcDateTime
    timezone: TimeZoneName = "UTC"


class InvoiceOverdue(Event):
    """A postpay invoice is still unpaid the configured number of days after its due date."""

    producers = ("provisioner",)

    whmcs_client_id: ClientId
    invoice_id: InvoiceId
    due_date: date
    days_overdue: int = Field(ge=0)
    standing: AccountStanding


class InvoicePaid(Event):
    """A postpay invoice that was overdue no longer is: ``status`` is its WHMCS status now ("Paid",
    "Cancelled", ..., "missing" when WHMCS no longer lists it, "Unpaid" when its due date was moved)."""

    producers = ("provisioner",)

    whmcs_client_id: ClientId
    invoice_id: InvoiceId
    status: ShortText = "Paid"
    standing: AccountStanding


class UserSuspended(Event):
    """The SolusVM 2 user is suspended until the overdue invoices are paid."""

    producers = ("provisioner",)

    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    email: EmailAddress
    overdue_invoices: tuple[OverdueInvoice, ...] = Field(min_length=1)
    suspended_at: UtcDateTime
    standing: AccountStanding


class UserReactivated(Event):
    """The SolusVM 2 user is active again (every overdue invoice paid, or the client reopened)."""

    producers = ("provisioner",)

    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    email: EmailAddress
    previous_status: Literal["suspended", "locked"]
    settled_invoice_ids: tuple[InvoiceId, ...] = ()
    reactivated_at: UtcDateTime
    standing: AccountStanding


class UserLocked(Event):
    """The WHMCS client is closed or deleted: the SolusVM 2 user is locked (its usage so far is still
    invoiced at the month's close)."""

    producers = ("provisioner",)

    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    reason: ShortText
    locked_at: UtcDateTime
    standing: AccountStanding


class CustomerEmailChanged(Event):
    """The client's email changed in WHMCS, and the SolusVM 2 user's email now follows it."""

    producers = ("provisioner",)

    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    email: EmailAddress
    previous_email: ShortText = ""
    standing: AccountStanding
