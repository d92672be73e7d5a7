"""What postpay's operator tools may use of the provisioner (the only module of it postpay/ imports): the
customers it tied to SolusVM 2 users, the account state it last applied to each, and what a standing check
would decide now (``postpay accounts sync --dry-run``). Read-only."""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.provisioner.settings import ProvisionerSettings
from services.provisioner.standing import Decision
from services.provisioner.standing_check import Preview, preview_standing, today_in
from services.provisioner.store import (
    Account,
    Customer,
    accounts_page,
    customer_of_user,
    customers_page,
    get_account,
    get_customer,
    invoice_ids_of,
    tables,
)

__all__ = [
    "Account",
    "Customer",
    "Decision",
    "Preview",
    "ProvisionerSettings",
    "account",
    "accounts_page",
    "customer",
    "customer_of_user",
    "customers_page",
    "invoice_ids_of",
    "preview_standing",
    "tables",
    "today_in",
]


def customer(session: Session, client_id: int) -> Customer | None:
    return get_customer(session, client_id)


def account(session: Session, client_id: int) -> Account | None:
    return get_account(session, client_id)
