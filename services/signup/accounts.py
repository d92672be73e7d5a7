"""The client-area panel's view of each customer's account state (``signup_accounts``).

The provisioner decides and announces; this keeps the newest announcement per customer, for the
panel: "Suspended — pay invoice #123 to reactivate" or "locked". Every standing event carries the
standing after its change with a revision, and a row only ever moves to a higher revision, so events
that arrive late or twice (a retry, a redelivery) cannot roll the panel back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Integer, String, Table, Text, select
from sqlalchemy.orm import Session

from services.signup.schema import metadata
from shared.db import Database, UtcTimestamp, insert_on_conflict
from shared.events.accounts import AccountStanding, AccountStatus

accounts = Table(
    "signup_accounts",
    metadata,
    Column("whmcs_client_id", Integer, primary_key=True, autoincrement=False),
    Column("status", String(16), nullable=False),
    Column("overdue_invoice_ids", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
)


@dataclass(frozen=True)
class AccountView:
    status: AccountStatus
    overdue_invoice_ids: tuple[int, ...]
    revision: int


def save_standing(session: Session, whmcs_client_id: int, standing: AccountStanding, now: datetime) -> bool:
    """Keep ``standing`` unless a newer one is on record already; whether it was kept."""
    values = {
        "status": standing.status,
        "overdue_invoice_ids": json.dumps(list(standing.overdue_invoice_ids)),
        "revision": standing.revision,
        "updated_at": now,
    }
    insert: Any = insert_on_conflict(session, accounts)
    statement = insert.values(whmcs_client_id=whmcs_client_id, **values).on_conflict_do_update(
        index_elements=[accounts.c.whmcs_client_id],
        set_=values,
        where=accounts.c.revision < standing.revision,
    )
    return session.execute(statement.returning(accounts.c.revision)).first() is not None


def account_view(session: Session, whmcs_client_id: int) -> AccountView | None:
    row = session.execute(select(accounts).where(accounts.c.whmcs_client_id == whmcs_client_id)).first()
    if row is None:
        return None
    return AccountView(row.status, tuple(json.loads(row.overdue_invoice_ids)), row.revision)


def account_of(db: Database, whmcs_client_id: int) -> AccountView | None:
    with db.transaction() as session:
        return account_view(session, whmcs_client_id)
