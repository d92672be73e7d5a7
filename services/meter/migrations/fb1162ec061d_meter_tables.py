"""Meter tables: the cursor (epoch, last sweep, activity-log read mark), what it knows of each VM,
logged creations of VMs not listed yet, inbox and outbox.

Revision ID: fb1162ec061d
Revises: -
Create Date: 2026-12-04 23:36:46.126066
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "fb1162ec061d"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meter_cursor",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.Uuid(), nullable=False),
        sa.Column("sweep", sa.BigInteger(), nullable=False),
        sa.Column("started_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("finished_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("log_marks", sa.Text(), nullable=False),
        sa.Column("updated_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "meter_inbox",
        sa.Column("handler", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("handler", "event_id"),
    )
    op.create_table(
        "meter_outbox",
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
    op.create_table(
        "meter_pending_creations",
        sa.Column("server_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.Column("uuid", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("plan_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("server_id"),
    )
    op.create_table(
        "meter_vms",
        sa.Column("server_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("uuid", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("plan_name", sa.String(length=200), nullable=False),
        sa.Column("tokens_per_hour", sa.BigInteger(), nullable=False),
        sa.Column("tokens_per_month", sa.BigInteger(), nullable=False),
        sa.Column("running", sa.Boolean(), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("server_id"),
    )
    with op.batch_alter_table("meter_vms", schema=None) as batch_op:
        batch_op.create_index("meter_vms_deleted", ["deleted"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("meter_vms", schema=None) as batch_op:
        batch_op.drop_index("meter_vms_deleted")

    op.drop_table("meter_vms")
    op.drop_table("meter_pending_creations")
    op.drop_table("meter_outbox")
    op.drop_table("meter_inbox")
    op.drop_table("meter_cursor")
