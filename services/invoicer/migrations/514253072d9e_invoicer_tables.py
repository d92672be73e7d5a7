"""Invoicer tables: the (client, period) ledger that guards against a second invoice, inbox and outbox.

Revision ID: 514253072d9e
Revises: -
Create Date: 2026-11-25 18:24:56.742797
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "514253072d9e"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoicer_inbox",
        sa.Column("handler", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("handler", "event_id"),
    )
    op.create_table(
        "invoicer_ledger",
        sa.Column("whmcs_client_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("run_key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("total", shared.db.Amount(precision=20, scale=6), nullable=True),
        sa.Column("line_count", sa.Integer(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("created_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("whmcs_client_id", "period"),
        sa.UniqueConstraint("run_key"),
    )
    op.create_table(
        "invoicer_outbox",
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
    op.drop_table("invoicer_outbox")
    op.drop_table("invoicer_ledger")
    op.drop_table("invoicer_inbox")
