"""Scheduler tables: closed periods, every close or replay emitted, the install anchor, inbox and outbox.

Revision ID: 002d5827939c
Revises: -
Create Date: 2026-11-25 18:24:53.353305
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "002d5827939c"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_anchor",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("first_period", sa.String(length=7), nullable=False),
        sa.Column("recorded_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "scheduler_closed_periods",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("trigger", sa.String(length=10), nullable=False),
        sa.Column("closed_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("period"),
    )
    op.create_table(
        "scheduler_emissions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("trigger", sa.String(length=10), nullable=False),
        sa.Column("client_ids", sa.Text(), nullable=True),
        sa.Column("emitted_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_scheduler_emissions_event_id", "scheduler_emissions", ["event_id"], unique=False)
    op.create_index("ix_scheduler_emissions_period", "scheduler_emissions", ["period"], unique=False)
    op.create_table(
        "scheduler_inbox",
        sa.Column("handler", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("handler", "event_id"),
    )
    op.create_table(
        "scheduler_outbox",
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
    op.drop_table("scheduler_outbox")
    op.drop_table("scheduler_inbox")
    op.drop_table("scheduler_emissions")
    op.drop_table("scheduler_closed_periods")
    op.drop_table("scheduler_anchor")
