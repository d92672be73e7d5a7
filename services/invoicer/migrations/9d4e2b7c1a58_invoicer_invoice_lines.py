"""Invoicer: the provenance of every invoice line (usage figures, price, rounding)

Revision ID: 9d4e2b7c1a58
Revises: 9d4f1a2b6c83
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "9d4e2b7c1a58"
down_revision = "9d4f1a2b6c83"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoicer_invoice_lines",
        sa.Column("invoice_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("whmcs_client_id", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("run_key", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=True),
        sa.Column("vm_name", sa.String(length=200), nullable=True),
        sa.Column("plan_name", sa.String(length=200), nullable=True),
        sa.Column("hours", sa.Integer(), nullable=True),
        sa.Column("tokens_per_hour", sa.Integer(), nullable=True),
        sa.Column("tokens_per_month", sa.Integer(), nullable=True),
        sa.Column("tokens", sa.BigInteger(), nullable=True),
        sa.Column("capped", sa.Boolean(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("token_price", sa.String(length=50), nullable=True),
        sa.Column("minor_units", sa.Integer(), nullable=False),
        sa.Column("unrounded", sa.String(length=60), nullable=True),
        sa.Column("amount", shared.db.Amount(precision=20, scale=6), nullable=False),
        sa.Column("recorded_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", "position"),
    )
    with op.batch_alter_table("invoicer_invoice_lines") as batch_op:
        batch_op.create_index("ix_invoicer_invoice_lines_whmcs_client_id", ["whmcs_client_id"], unique=False)
        batch_op.create_index("ix_invoicer_invoice_lines_period", ["period"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("invoicer_invoice_lines") as batch_op:
        batch_op.drop_index("ix_invoicer_invoice_lines_period")
        batch_op.drop_index("ix_invoicer_invoice_lines_whmcs_client_id")
    op.drop_table("invoicer_invoice_lines")
