"""Settings customers are told about, declared once for every service that reads them.

The invoicer decides an invoice's due date, the provisioner when an unpaid one suspends, the scheduler
the billing time zone; the signup shows all of them on its pages. Each is one ``POSTPAY_*`` variable,
and these factories give every reader the same default, bounds and description (a unit test compares
them with the deciding service's own field), so the landing page never promises other terms than the
ones applied.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.periods import zone

DUE_DAYS_DESCRIPTION = "Days from the invoice date to its due date."
GRACE_DAYS_DESCRIPTION = (
    "Days a postpay invoice may stay unpaid after its due date: on the first daily check that finds "
    "it unpaid this many days after, the customer's SolusVM 2 user is suspended."
)
INVOICE_URL_DESCRIPTION = (
    "Where a customer pays a WHMCS invoice, linked from suspension emails and the signup site's account page; "
    "{invoice_id} is replaced."
)
BILLING_TIMEZONE_DESCRIPTION = (
    "IANA time zone the billing months are calendar months in (e.g. Europe/Berlin): a period is "
    "[1st 00:00, next 1st 00:00) local time."
)


def invoice_due_days_field() -> Any:
    return Field(default=14, ge=0, le=365, description=DUE_DAYS_DESCRIPTION)


def grace_days_field() -> Any:
    return Field(default=14, ge=1, le=365, description=GRACE_DAYS_DESCRIPTION)


def invoice_url_field() -> Any:
    return Field(default="http://127.0.0.1:8482/viewinvoice.php?id={invoice_id}", description=INVOICE_URL_DESCRIPTION)


def billing_timezone_field() -> Any:
    return Field(default="UTC", description=BILLING_TIMEZONE_DESCRIPTION)


def check_invoice_url(value: str) -> str:
    if "{invoice_id}" not in value:
        raise ValueError("the invoice URL must contain {invoice_id}")
    return value


def check_zone(value: str) -> str:
    zone(value)
    return value
