"""Invoicer: a line's hours and tokens per hour and per month as wide as the usage's (64-bit)

An absurd plan (a billion tokens an hour, 10^15 a month: exactly what holds exist for) overflowed the
32-bit columns, so the provenance of its invoice could not be recorded once released.

Revision ID: c2f8d05e6a17
Revises: b7e3a91c4d20
Create Date: 2026-12-14 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c2f8d05e6a17"
down_revision = "b7e3a91c4d20"
branch_labels = None
depends_on = None

COLUMNS = ("hours", "tokens_per_hour", "tokens_per_month")


def upgrade() -> None:
    with op.batch_alter_table("invoicer_invoice_lines") as batch:
        for name in COLUMNS:
            batch.alter_column(name, existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("invoicer_invoice_lines") as batch:
        for name in COLUMNS:
            batch.alter_column(name, existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True)
