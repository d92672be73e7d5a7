"""What postpay's operator tools may use of the provisioner: the customers it tied to SolusVM 2 users and
the account state it last applied to each. Read-only."""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.provisioner.store import (
    Account,
    Customer,
    accounts_page,
    customer_of_user,
    get_account,
    get_customer,
    invoice_ids_of,
    tables,
)

__all__ = ["Account", "Customer", "account", "accounts_page", "customer", "customer_of_user", "invoice_ids_of",
           "tables"]


def customer(session: Session, client_id: int) -> Customer | None:
    return get_customer(session, client_id)


def account(session: Session, client_id: int) -> Account | None:
    return get_account(session, client_id)
