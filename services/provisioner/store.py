"""The provisioner's own record of the customers it provisioned (``provisioner_customers``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Integer, String, Table, Uuid, select
from sqlalchemy.orm import Session

from shared.db import UtcTimestamp
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


@dataclass(frozen=True)
class Customer:
    whmcs_client_id: int
    solusvm_user_id: int
    email: str
    signup_id: uuid.UUID
    provisioned_at: datetime


def get_customer(session: Session, whmcs_client_id: int) -> Customer | None:
    row = session.execute(select(customers).where(customers.c.whmcs_client_id == whmcs_client_id)).first()
    if row is None:
        return None
    return Customer(row.whmcs_client_id, row.solusvm_user_id, row.email, row.signup_id, row.provisioned_at)


def customer_of_user(session: Session, solusvm_user_id: int) -> Customer | None:
    row = session.execute(select(customers).where(customers.c.solusvm_user_id == solusvm_user_id)).first()
    if row is None:
        return None
    return Customer(row.whmcs_client_id, row.solusvm_user_id, row.email, row.signup_id, row.provisioned_at)


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
