"""signup: the client-area panel's view of each customer's account state (signup_accounts)

Revision ID: 4f6b2c8d1e07
Revises: b8923a5657e0
Create Date: 2026-12-03 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "4f6b2c8d1e07"
down_revision = "b8923a5657e0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signup_accounts",
        sa.Column("whmcs_client_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("overdue_invoice_ids", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("whmcs_client_id"),
    )


def downgrade() -> None:
    op.drop_table("signup_accounts")
