"""signup: the customer's currency and country, and the figures the client area shows

Adds to signup_signups the currency and country chosen at registration and the WHMCS client's own
currency; and the tables of postpay's invoices (signup_invoices) and of the month-to-date usage
(signup_usage), kept from events. Only additions: a previous version runs beside it unharmed.

Revision ID: 5d1e8a3c7b92
Revises: 9c3e5a7d2f14
Create Date: 2026-12-05 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "5d1e8a3c7b92"
down_revision = "9c3e5a7d2f14"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35+ drops columns too): rebuilding signup_signups, as a batch would on
    # SQLite, trips the foreign keys of the registrations and links that point at it.
    op.add_column("signup_signups", sa.Column("currency", sa.String(length=3), nullable=True))
    op.add_column("signup_signups", sa.Column("country", sa.String(length=2), nullable=True))
    op.add_column("signup_signups", sa.Column("billing_currency", sa.String(length=3), nullable=True))
    op.create_table(
        "signup_invoices",
        sa.Column("invoice_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("whmcs_client_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("total", shared.db.Amount(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("settled_status", sa.String(length=32), nullable=True),
        sa.Column("updated_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("invoice_id"),
    )
    op.create_index("ix_signup_invoices_whmcs_client_id", "signup_invoices", ["whmcs_client_id"])
    op.create_table(
        "signup_usage",
        sa.Column("whmcs_client_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("requested_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("period", sa.String(length=7), nullable=True),
        sa.Column("starts_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("as_of", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("vms", sa.Text(), nullable=True),
        sa.Column("total_tokens", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("whmcs_client_id"),
    )


def downgrade() -> None:
    op.drop_table("signup_usage")
    op.drop_index("ix_signup_invoices_whmcs_client_id", table_name="signup_invoices")
    op.drop_table("signup_invoices")
    for column in ("billing_currency", "country", "currency"):
        op.drop_column("signup_signups", column)
