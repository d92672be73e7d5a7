"""Usage collector tables: enrolled customers, fan-out progress, per-customer period records, inbox and outbox.

Revision ID: da0be78cabd4
Revises: -
Create Date: 2026-11-25 18:24:55.142499
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "da0be78cabd4"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_collector_collections",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("whmcs_client_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("solusvm_user_id", sa.BigInteger(), nullable=False),
        sa.Column("vm_count", sa.Integer(), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("invoice_id", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("total", shared.db.Amount(precision=20, scale=6), nullable=True),
        sa.Column("collected_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.Column("settled_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("period", "whmcs_client_id"),
    )
    op.create_index(
        "usage_collector_collections_outcome", "usage_collector_collections", ["period", "outcome"], unique=False
    )
    op.create_table(
        "usage_collector_customers",
        sa.Column("whmcs_client_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("solusvm_user_id", sa.BigInteger(), nullable=False),
        sa.Column("enrolled_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("whmcs_client_id"),
        sa.UniqueConstraint("solusvm_user_id"),
    )
    op.create_index("usage_collector_customers_enrolled_at", "usage_collector_customers", ["enrolled_at"], unique=False)
    op.create_table(
        "usage_collector_fanouts",
        sa.Column("close_event_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("trigger", sa.String(length=10), nullable=False),
        sa.Column("last_client_id", sa.BigInteger(), nullable=False),
        sa.Column("requested", sa.Integer(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("started_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("close_event_id"),
    )
    op.create_index("usage_collector_fanouts_period", "usage_collector_fanouts", ["period"], unique=False)
    op.create_table(
        "usage_collector_inbox",
        sa.Column("handler", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("handler", "event_id"),
    )
    op.create_table(
        "usage_collector_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("producer", sa.String(length=100), nullable=False),
        sa.Column("occurred_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )


def downgrade() -> None:
    op.drop_table("usage_collector_outbox")
    op.drop_table("usage_collector_inbox")
    op.drop_table("usage_collector_fanouts")
    op.drop_table("usage_collector_customers")
    op.drop_table("usage_collector_collections")
