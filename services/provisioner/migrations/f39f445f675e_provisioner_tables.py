"""provisioner tables: customers (and the provisioner inbox and outbox)

Revision ID: f39f445f675e
Revises:
Create Date: 2026-11-25 18:26:11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "f39f445f675e"
down_revision = None
branch_labels = None
depends_on = None

Timestamp = shared.db.UtcTimestamp(timezone=True)


def upgrade() -> None:
    op.create_table(
        "provisioner_inbox",
        sa.Column("handler", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("handler", "event_id"),
    )
    op.create_table(
        "provisioner_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("producer", sa.String(length=100), nullable=False),
        sa.Column("occurred_at", Timestamp, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Timestamp, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_table(
        "provisioner_customers",
        sa.Column("whmcs_client_id", sa.Integer(), nullable=False),
        sa.Column("solusvm_user_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("signup_id", sa.Uuid(), nullable=False),
        sa.Column("provisioned_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("whmcs_client_id"),
        sa.UniqueConstraint("solusvm_user_id"),
    )


def downgrade() -> None:
    op.drop_table("provisioner_customers")
    op.drop_table("provisioner_outbox")
    op.drop_table("provisioner_inbox")
