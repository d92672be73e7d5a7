"""Events of the account lifecycle: each SolusVM 2 user follows the customer's standing in WHMCS."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from shared.events.base import Event, UtcDateTime
from shared.events.fields import ClientId, EmailAddress, ShortText, SolusUserId


class AccountsSyncRequested(Event):
    """The daily tick (or an operator) asks every enrolled customer's standing to be checked."""

    as_of: UtcDateTime


class CustomerStandingCheckRequested(Event):
    """One customer's share of an accounts sync."""

    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    as_of: UtcDateTime


class InvoiceOverdue(Event):
    """A postpay invoice is still unpaid the configured number of days after its due date."""

    whmcs_client_id: ClientId
    invoice_id: int = Field(gt=0)
    due_date: date
    days_overdue: int = Field(ge=0)


class InvoicePaid(Event):
    """A postpay invoice is paid (or otherwise no longer owed)."""

    whmcs_client_id: ClientId
    invoice_id: int = Field(gt=0)
    status: ShortText = "Paid"


class UserSuspended(Event):
    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    overdue_invoice_ids: tuple[int, ...]
    suspended_at: UtcDateTime


class UserReactivated(Event):
    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    reactivated_at: UtcDateTime


class UserLocked(Event):
    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    reason: ShortText
    locked_at: UtcDateTime


class CustomerEmailChanged(Event):
    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    email: EmailAddress
