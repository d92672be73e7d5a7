"""What the signup keeps, from events, to show a customer their account: postpay's invoices and the
month-to-date usage. Its own tables (no service reads another's):

``signup_invoices``  every invoice postpay created (``InvoiceCreated``), and what became of an overdue
                     one (``InvoicePaid``): the panel's list of latest invoices with their pay links.
``signup_usage``     the newest month-to-date usage per client (``UsageToDateReported``), and when it
                     was last asked for, so a busy panel asks at most once in a while.

Both are upserts (their handlers are in handlers.py) that only ever move forward, so events arriving late, twice or out of order
leave the newest figures in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, Date, Integer, String, Table, Text, select, update
from sqlalchemy.orm import Session

from services.signup.schema import metadata
from shared.db import Amount, UtcTimestamp, insert_on_conflict, rows_changed
from shared.events.accounts import InvoicePaid
from shared.events.billing import InvoiceCreated, VmUsage
from shared.events.usage import UsageToDateReported

invoices = Table(
    "signup_invoices",
    metadata,
    Column("invoice_id", Integer, primary_key=True, autoincrement=False),
    Column("whmcs_client_id", Integer, nullable=False, index=True),
    Column("period", String(7), nullable=True),
    Column("currency", String(3), nullable=True),
    Column("total", Amount, nullable=True),
    Column("due_date", Date, nullable=True),
    # The WHMCS status an overdue invoice moved to ("Paid", "Cancelled"...); unset while nothing said.
    Column("settled_status", String(32), nullable=True),
    Column("updated_at", UtcTimestamp, nullable=False),
)

usage = Table(
    "signup_usage",
    metadata,
    Column("whmcs_client_id", Integer, primary_key=True, autoincrement=False),
    Column("requested_at", UtcTimestamp, nullable=True),
    Column("period", String(7), nullable=True),
    Column("starts_at", UtcTimestamp, nullable=True),
    Column("as_of", UtcTimestamp, nullable=True),
    Column("source", String(16), nullable=True),
    Column("vms", Text, nullable=True),
    Column("total_tokens", BigInteger, nullable=True),
)


@dataclass(frozen=True)
class InvoiceRow:
    invoice_id: int
    period: str | None
    currency: str | None
    total: Decimal | None
    due_date: date | None
    settled_status: str | None


@dataclass(frozen=True)
class UsageRow:
    period: str
    starts_at: datetime
    as_of: datetime
    source: str
    vms: tuple[VmUsage, ...]


def save_invoice(session: Session, event: InvoiceCreated | InvoicePaid, now: datetime) -> None:
    """An invoice postpay created, or an overdue one that is not owed any more."""
    if isinstance(event, InvoiceCreated):
        values: dict[str, Any] = {
            "period": event.period,
            "currency": event.currency,
            "total": event.total,
            "due_date": event.due_date,
        }
    else:
        values = {"settled_status": event.status[:32]}
    statement = insert_on_conflict(session, invoices).values(
        invoice_id=event.invoice_id, whmcs_client_id=event.whmcs_client_id, updated_at=now, **values
    )
    session.execute(
        statement.on_conflict_do_update(index_elements=[invoices.c.invoice_id], set_={**values, "updated_at": now})
    )


def save_usage(session: Session, event: UsageToDateReported) -> None:
    """Keep the newest month-to-date figure of the client (a later month's, or a later time's)."""
    values = {
        "period": event.period,
        "starts_at": event.starts_at,
        "as_of": event.as_of,
        "source": event.source,
        "vms": json.dumps([vm.model_dump(mode="json") for vm in event.vms]),
        "total_tokens": event.total_tokens,
    }
    statement = insert_on_conflict(session, usage).values(whmcs_client_id=event.whmcs_client_id, **values)
    newer = usage.c.as_of.is_(None) | (usage.c.as_of < event.as_of)
    session.execute(statement.on_conflict_do_update(index_elements=[usage.c.whmcs_client_id], set_=values, where=newer))


def latest_invoices(session: Session, whmcs_client_id: int, limit: int) -> list[InvoiceRow]:
    query = (
        select(invoices)
        .where(invoices.c.whmcs_client_id == whmcs_client_id, invoices.c.period.is_not(None))
        .order_by(invoices.c.period.desc(), invoices.c.invoice_id.desc())
        .limit(limit)
    )
    return [
        InvoiceRow(r.invoice_id, r.period, r.currency, r.total, r.due_date, r.settled_status)
        for r in session.execute(query)
    ]


def usage_of(session: Session, whmcs_client_id: int) -> tuple[UsageRow | None, datetime | None]:
    """The client's newest month-to-date figure (None before the first), and when it was last asked for."""
    row = session.execute(select(usage).where(usage.c.whmcs_client_id == whmcs_client_id)).first()
    if row is None:
        return None, None
    if row.as_of is None:
        return None, row.requested_at
    vms = tuple(VmUsage.model_validate(item) for item in json.loads(row.vms or "[]"))
    return UsageRow(row.period, row.starts_at, row.as_of, row.source, vms), row.requested_at


def claim_request(session: Session, whmcs_client_id: int, now: datetime, not_before: datetime) -> bool:
    """Note that the client's figure is being asked for now; False when it was asked for after
    ``not_before`` already (another view, another replica), so one request serves them all."""
    session.execute(
        insert_on_conflict(session, usage)
        .values(whmcs_client_id=whmcs_client_id)
        .on_conflict_do_nothing(index_elements=[usage.c.whmcs_client_id])
    )
    result = session.execute(
        update(usage)
        .where(
            usage.c.whmcs_client_id == whmcs_client_id,
            usage.c.requested_at.is_(None) | (usage.c.requested_at <= not_before),
        )
        .values(requested_at=now)
    )
    return bool(rows_changed(result))
