"""What a customer's standing in WHMCS means for their SolusVM 2 user. Pure: no I/O, no clock.

The rule, in order:
1. the WHMCS client is Closed, or gone → the user is **locked** (Inactive is not closed: WHMCS marks
   clients without products Inactive on its own, and post-pay customers have no WHMCS products);
2. a postpay invoice is still owed ``grace_days`` or more days after its due date, and the customer is
   not on the never-suspend list → **suspended**;
3. otherwise → **active**.

The decision is level-triggered: it says where the user should be now, whatever happened before, and
compares that with what was last recorded. Deciding again from the same standing therefore changes
nothing, which is what makes repeated ticks and redelivered checks harmless.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from shared.events.accounts import AccountStatus

# Owed means the customer still has to pay: "Payment Pending" is a payment on its way, "Draft" was
# never sent, "Paid", "Cancelled" and "Refunded" are settled.
OWED_STATUSES = frozenset({"unpaid", "collections"})

# The invoicer writes "postpay run key: [postpay:<client id>:<YYYY-MM>]" into the notes of every invoice
# it creates (services/invoicer/invoice_document.py; a test keeps the two in step). Recognising it lets
# an invoice count as postpay's even when its InvoiceCreated event never reached this service.
_RUN_KEY_IN_NOTES = re.compile(r"\[postpay:(\d+):\d{4}-\d{2}\]")


def is_postpay_notes(notes: str, client_id: int) -> bool:
    """Whether invoice notes carry a postpay run key for this client."""
    return any(int(found) == client_id for found in _RUN_KEY_IN_NOTES.findall(notes or ""))


@dataclass(frozen=True)
class PostpayInvoice:
    """One of the client's postpay invoices as WHMCS shows it now."""

    invoice_id: int
    status: str
    due_date: date | None
    total: Decimal
    currency: str = ""

    @property
    def owed(self) -> bool:
        return self.status.strip().lower() in OWED_STATUSES

    def days_overdue(self, today: date) -> int:
        return (today - self.due_date).days if self.due_date is not None else 0


@dataclass(frozen=True)
class Standing:
    """What WHMCS says about the client. ``client_status`` None: the client does not exist (deleted);
    then nothing is known about its invoices either."""

    client_status: str | None
    email: str | None
    invoices: tuple[PostpayInvoice, ...] = ()

    @property
    def exists(self) -> bool:
        return self.client_status is not None

    @property
    def closed(self) -> bool:
        return self.client_status is None or self.client_status.strip().lower() == "closed"


@dataclass(frozen=True)
class Recorded:
    """What the provisioner last applied to the SolusVM 2 user. ``unconfirmed``: a write was sent
    whose outcome is unknown, so the target is sent again even if it looks unchanged."""

    status: AccountStatus
    overdue_invoice_ids: tuple[int, ...]
    email: str
    unconfirmed: bool = False


@dataclass(frozen=True)
class Policy:
    grace_days: int
    never_suspend: bool = False


@dataclass(frozen=True)
class Decision:
    status: AccountStatus
    previous_status: AccountStatus
    overdue_ids: tuple[int, ...]
    overdue: tuple[PostpayInvoice, ...]
    newly_overdue: tuple[PostpayInvoice, ...]
    # (invoice id, its status now, or "missing" when WHMCS no longer lists it)
    no_longer_overdue: tuple[tuple[int, str], ...]
    new_email: str | None
    previous_email: str
    reassert: bool
    reason: str

    @property
    def status_changed(self) -> bool:
        return self.status != self.previous_status

    @property
    def changed(self) -> bool:
        """Something to record (and announce): the status, the overdue set or the email."""
        return self.status_changed or bool(self.newly_overdue or self.no_longer_overdue) or self.new_email is not None

    @property
    def writes_upstream(self) -> bool:
        return self.status_changed or self.new_email is not None or self.reassert


def decide(recorded: Recorded, standing: Standing, policy: Policy, today: date) -> Decision:
    if standing.exists:
        overdue = tuple(
            sorted(
                (
                    invoice
                    for invoice in standing.invoices
                    if invoice.owed
                    and invoice.due_date is not None
                    and invoice.days_overdue(today) >= policy.grace_days
                ),
                key=lambda invoice: invoice.invoice_id,
            )
        )
        overdue_ids = tuple(invoice.invoice_id for invoice in overdue)
    else:
        # A deleted client's invoices cannot be read: keep what was known.
        overdue, overdue_ids = (), recorded.overdue_invoice_ids
    status, reason = _target(standing, policy, overdue, today)
    known = set(recorded.overdue_invoice_ids)
    newly_overdue = tuple(invoice for invoice in overdue if invoice.invoice_id not in known)
    now_by_id = {invoice.invoice_id: invoice.status for invoice in standing.invoices}
    no_longer = tuple(
        (invoice_id, now_by_id.get(invoice_id, "missing")) for invoice_id in sorted(known - set(overdue_ids))
    )
    email = (standing.email or "").strip()
    new_email = email if email and email != recorded.email else None
    return Decision(
        status=status,
        previous_status=recorded.status,
        overdue_ids=overdue_ids,
        overdue=overdue,
        newly_overdue=newly_overdue,
        no_longer_overdue=no_longer,
        new_email=new_email,
        previous_email=recorded.email,
        reassert=recorded.unconfirmed,
        reason=reason,
    )


def _target(
    standing: Standing, policy: Policy, overdue: tuple[PostpayInvoice, ...], today: date
) -> tuple[AccountStatus, str]:
    if not standing.exists:
        return "locked", "the WHMCS client no longer exists"
    if standing.closed:
        return "locked", "the WHMCS client is Closed"
    if overdue and policy.never_suspend:
        return "active", f"{_describe(overdue, today)}, but the client is on the never-suspend list"
    if overdue:
        return "suspended", f"{_describe(overdue, today)} (grace {policy.grace_days} days)"
    return "active", f"no postpay invoice is unpaid {policy.grace_days} days after its due date"


def _describe(overdue: tuple[PostpayInvoice, ...], today: date) -> str:
    parts = [
        f"invoice #{invoice.invoice_id} is {invoice.days_overdue(today)} days past its due date {invoice.due_date}"
        for invoice in overdue[:3]
    ]
    more = f" and {len(overdue) - 3} more" if len(overdue) > 3 else ""
    return "; ".join(parts) + more


def recorded_after(recorded: Recorded, decision: Decision, email_applied: bool = True) -> Recorded:
    """What is on record once ``decision`` was applied (the next check starts from this)."""
    email = decision.new_email if decision.new_email is not None and email_applied else recorded.email
    return Recorded(decision.status, decision.overdue_ids, email, unconfirmed=False)
