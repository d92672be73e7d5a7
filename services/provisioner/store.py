"""The provisioner's tables.

``provisioner_customers``      the customers it provisioned, with the email their SolusVM 2 user has
``provisioner_accounts``       per customer, the account state last applied to SolusVM 2 (status,
                               overdue invoices) and the standing checks' optimistic-locking ``version``
``provisioner_invoices``       postpay's WHMCS invoices, from the invoicer's InvoiceCreated events
``provisioner_sync_fanouts``   how far each accounts sync's fan-out has come (resumed after a crash)
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Date, Index, Integer, String, Table, Text, Uuid, select, update
from sqlalchemy.orm import Session

from shared.db import UtcTimestamp, insert_on_conflict, rows_changed
from shared.events.accounts import AccountStatus
from shared.service import ServiceTables

tables = ServiceTables("provisioner")

customers = Table(
    "provisioner_customers",
    tables.metadata,
    Column("whmcs_client_id", Integer, primary_key=True),
    Column("solusvm_user_id", Integer, nullable=False, unique=True),
    Column("email", String(254), nullable=False),
    Column("signup_id", Uuid, nullable=False),
    Column("provisioned_at", UtcTimestamp, nullable=False),
)

accounts = Table(
    "provisioner_accounts",
    tables.metadata,
    Column("whmcs_client_id", Integer, primary_key=True, autoincrement=False),
    Column("status", String(16), nullable=False),
    Column("overdue_invoice_ids", Text, nullable=False),
    # ``revision`` counts recorded changes (events carry it); ``version`` counts every write, so two
    # checks of one customer racing each other cannot both commit what they each decided.
    Column("revision", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("unconfirmed", Boolean, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("note", String(500), nullable=True),
    Column("checked_at", UtcTimestamp, nullable=True),
    Column("changed_at", UtcTimestamp, nullable=True),
    Index("provisioner_accounts_status", "status"),
)

invoices = Table(
    "provisioner_invoices",
    tables.metadata,
    Column("invoice_id", BigInteger, primary_key=True, autoincrement=False),
    Column("whmcs_client_id", Integer, nullable=False, index=True),
    Column("period", String(7), nullable=False),
    Column("due_date", Date, nullable=False),
    Column("recorded_at", UtcTimestamp, nullable=False),
)

sync_fanouts = Table(
    "provisioner_sync_fanouts",
    tables.metadata,
    Column("sync_event_id", Uuid, primary_key=True),
    Column("as_of", UtcTimestamp, nullable=False),
    Column("last_client_id", Integer, nullable=False),
    Column("requested", Integer, nullable=False),
    Column("finished", Boolean, nullable=False),
    Column("started_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
)


# -- customers ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Customer:
    whmcs_client_id: int
    solusvm_user_id: int
    email: str
    signup_id: uuid.UUID
    provisioned_at: datetime


def _customer(row: Any) -> Customer | None:
    if row is None:
        return None
    return Customer(row.whmcs_client_id, row.solusvm_user_id, row.email, row.signup_id, row.provisioned_at)


def get_customer(session: Session, whmcs_client_id: int) -> Customer | None:
    return _customer(session.execute(select(customers).where(customers.c.whmcs_client_id == whmcs_client_id)).first())


def customer_of_user(session: Session, solusvm_user_id: int) -> Customer | None:
    return _customer(session.execute(select(customers).where(customers.c.solusvm_user_id == solusvm_user_id)).first())


def add_customer(session: Session, customer: Customer) -> None:
    session.execute(
        customers.insert().values(
            whmcs_client_id=customer.whmcs_client_id,
            solusvm_user_id=customer.solusvm_user_id,
            email=customer.email,
            signup_id=customer.signup_id,
            provisioned_at=customer.provisioned_at,
        )
    )


def customers_page(session: Session, *, after: int, limit: int, only: list[int] | None = None) -> list[Customer]:
    """The next ``limit`` customers by client id after ``after`` (keyset paging: flat memory, no OFFSET)."""
    query = select(customers).where(customers.c.whmcs_client_id > after)
    if only is not None:
        query = query.where(customers.c.whmcs_client_id.in_(only))
    rows = session.execute(query.order_by(customers.c.whmcs_client_id).limit(limit))
    return [customer for row in rows if (customer := _customer(row)) is not None]


def set_customer_email(session: Session, whmcs_client_id: int, email: str) -> None:
    session.execute(update(customers).where(customers.c.whmcs_client_id == whmcs_client_id).values(email=email))


# -- accounts ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Account:
    whmcs_client_id: int
    status: AccountStatus
    overdue_invoice_ids: tuple[int, ...]
    revision: int
    version: int
    unconfirmed: bool
    reason: str
    note: str | None
    checked_at: datetime | None
    changed_at: datetime | None


def new_account(whmcs_client_id: int) -> Account:
    """A customer nobody checked yet: provisioned active, nothing overdue."""
    return Account(whmcs_client_id, "active", (), 0, 0, False, "provisioned", None, None, None)


def _account(row: Any) -> Account:
    return Account(
        whmcs_client_id=row.whmcs_client_id,
        status=row.status,
        overdue_invoice_ids=tuple(json.loads(row.overdue_invoice_ids)),
        revision=row.revision,
        version=row.version,
        unconfirmed=row.unconfirmed,
        reason=row.reason,
        note=row.note,
        checked_at=row.checked_at,
        changed_at=row.changed_at,
    )


def get_account(session: Session, whmcs_client_id: int) -> Account | None:
    row = session.execute(select(accounts).where(accounts.c.whmcs_client_id == whmcs_client_id)).first()
    return _account(row) if row is not None else None


def ensure_account(session: Session, whmcs_client_id: int) -> Account:
    """The customer's account row, created as :func:`new_account` on first sight."""
    fresh = new_account(whmcs_client_id)
    session.execute(
        insert_on_conflict(session, accounts)
        .values(
            whmcs_client_id=whmcs_client_id,
            status=fresh.status,
            overdue_invoice_ids="[]",
            revision=0,
            version=0,
            unconfirmed=False,
            reason=fresh.reason,
        )
        .on_conflict_do_nothing(index_elements=[accounts.c.whmcs_client_id])
    )
    account = get_account(session, whmcs_client_id)
    assert account is not None
    return account


def mark_unconfirmed(session: Session, whmcs_client_id: int, *, version: int) -> bool:
    """Say a write to SolusVM 2 is under way (committed before it is sent); False when another check
    wrote the row since ``version`` was read."""
    result = session.execute(
        update(accounts)
        .where(accounts.c.whmcs_client_id == whmcs_client_id, accounts.c.version == version)
        .values(unconfirmed=True, version=version + 1)
    )
    return bool(rows_changed(result))


def record_check(
    session: Session,
    whmcs_client_id: int,
    *,
    version: int,
    now: datetime,
    changed: bool,
    status: AccountStatus,
    overdue_invoice_ids: tuple[int, ...],
    reason: str,
    note: str | None,
    confirmed: bool,
) -> int | None:
    """Record a check's outcome; returns the revision now on record, or None when another check wrote
    the row since ``version`` was read (the caller must try again)."""
    values: dict[str, Any] = {
        "version": version + 1,
        "checked_at": now,
        "reason": reason[:500],
        "note": note[:500] if note else None,
    }
    if confirmed:
        values["unconfirmed"] = False
    if changed:
        values.update(
            status=status,
            overdue_invoice_ids=json.dumps(list(overdue_invoice_ids)),
            revision=accounts.c.revision + 1,
            changed_at=now,
        )
    statement = (
        update(accounts)
        .where(accounts.c.whmcs_client_id == whmcs_client_id, accounts.c.version == version)
        .values(**values)
        .returning(accounts.c.revision)
    )
    row = session.execute(statement).first()
    return int(row.revision) if row is not None else None


def accounts_page(
    session: Session, *, after: int, limit: int, status: str | None = None
) -> list[tuple[Customer, Account]]:
    query = (
        select(
            customers,
            accounts.c.status,
            accounts.c.overdue_invoice_ids,
            accounts.c.revision,
            accounts.c.version,
            accounts.c.unconfirmed,
            accounts.c.reason,
            accounts.c.note,
            accounts.c.checked_at,
            accounts.c.changed_at,
        )
        .join(accounts, accounts.c.whmcs_client_id == customers.c.whmcs_client_id)
        .where(customers.c.whmcs_client_id > after)
        .order_by(customers.c.whmcs_client_id)
        .limit(limit)
    )
    if status is not None:
        query = query.where(accounts.c.status == status)
    return [(customer, _account(row)) for row in session.execute(query) if (customer := _customer(row))]


# -- invoices ----------------------------------------------------------------------------------------
def record_invoice(
    session: Session, *, invoice_id: int, client_id: int, period: str, due_date: date, now: datetime
) -> None:
    session.execute(
        insert_on_conflict(session, invoices)
        .values(invoice_id=invoice_id, whmcs_client_id=client_id, period=period, due_date=due_date, recorded_at=now)
        .on_conflict_do_nothing(index_elements=[invoices.c.invoice_id])
    )


def invoice_ids_of(session: Session, client_id: int) -> set[int]:
    return set(session.execute(select(invoices.c.invoice_id).where(invoices.c.whmcs_client_id == client_id)).scalars())


# -- sync fan-outs -----------------------------------------------------------------------------------
def start_sync_fanout(session: Session, sync_event_id: uuid.UUID, as_of: datetime, now: datetime) -> tuple[int, bool]:
    """(last client id requested, finished) of this sync's fan-out, created on first sight."""
    session.execute(
        insert_on_conflict(session, sync_fanouts)
        .values(
            sync_event_id=sync_event_id,
            as_of=as_of,
            last_client_id=0,
            requested=0,
            finished=False,
            started_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[sync_fanouts.c.sync_event_id])
    )
    row = session.execute(select(sync_fanouts).where(sync_fanouts.c.sync_event_id == sync_event_id)).one()
    return int(row.last_client_id), bool(row.finished)


def advance_sync_fanout(
    session: Session, sync_event_id: uuid.UUID, *, last_client_id: int, added: int, finished: bool, now: datetime
) -> None:
    session.execute(
        update(sync_fanouts)
        .where(sync_fanouts.c.sync_event_id == sync_event_id)
        .values(
            last_client_id=last_client_id, requested=sync_fanouts.c.requested + added, finished=finished, updated_at=now
        )
    )
