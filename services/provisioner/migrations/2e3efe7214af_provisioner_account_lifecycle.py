"""provisioner account lifecycle: account states, postpay's invoices, accounts-sync fan-outs

Revision ID: 2e3efe7214af
Revises: f39f445f675e
Create Date: 2026-12-03 08:14:45
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "2e3efe7214af"
down_revision = "f39f445f675e"
branch_labels = None
depends_on = None

Timestamp = shared.db.UtcTimestamp(timezone=True)


def upgrade() -> None:
    op.create_table(
        "provisioner_accounts",
        sa.Column("whmcs_client_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("overdue_invoice_ids", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("unconfirmed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("checked_at", Timestamp, nullable=True),
        sa.Column("changed_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("whmcs_client_id"),
    )
    op.create_index("provisioner_accounts_status", "provisioner_accounts", ["status"])
    op.create_table(
        "provisioner_invoices",
        sa.Column("invoice_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("whmcs_client_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("recorded_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("invoice_id"),
    )
    op.create_index("ix_provisioner_invoices_whmcs_client_id", "provisioner_invoices", ["whmcs_client_id"])
    op.create_table(
        "provisioner_sync_fanouts",
        sa.Column("sync_event_id", sa.Uuid(), nullable=False),
        sa.Column("as_of", Timestamp, nullable=False),
        sa.Column("last_client_id", sa.Integer(), nullable=False),
        sa.Column("requested", sa.Integer(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("sync_event_id"),
    )


def downgrade() -> None:
    op.drop_table("provisioner_sync_fanouts")
    op.drop_index("ix_provisioner_invoices_whmcs_client_id", table_name="provisioner_invoices")
    op.drop_table("provisioner_invoices")
    op.drop_index("provisioner_accounts_status", table_name="provisioner_accounts")
    op.drop_table("provisioner_accounts")
