"""Invoicer: an "uncertain since" instant on the ledger, held invoices, paused periods and their audit.

Revision ID: 9d4f1a2b6c83
Revises: 514253072d9e
Create Date: 2026-12-04 23:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "9d4f1a2b6c83"
down_revision = "514253072d9e"
branch_labels = None
depends_on = None

Timestamp = shared.db.UtcTimestamp(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("invoicer_ledger") as batch:
        batch.add_column(sa.Column("uncertain_since", Timestamp, nullable=True))
    op.create_table(
        "invoicer_holds",
        sa.Column("whmcs_client_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", shared.db.Amount(precision=20, scale=6), nullable=False),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("starts_in", sa.String(length=64), nullable=True),
        sa.Column("ends_in", sa.String(length=64), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("decided_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("whmcs_client_id", "period"),
    )
    op.create_index("invoicer_holds_period_status", "invoicer_holds", ["period", "status"])
    op.create_table(
        "invoicer_period_pauses",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("paused_at", Timestamp, nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("seen", sa.Integer(), nullable=False),
        sa.Column("resumed_at", Timestamp, nullable=True),
        sa.Column("resumed_by", sa.String(length=200), nullable=True),
        sa.Column("resume_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("period"),
    )
    op.create_table(
        "invoicer_hold_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("whmcs_client_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_invoicer_hold_audit_period", "invoicer_hold_audit", ["period"])


def downgrade() -> None:
    op.drop_index("ix_invoicer_hold_audit_period", table_name="invoicer_hold_audit")
    op.drop_table("invoicer_hold_audit")
    op.drop_table("invoicer_period_pauses")
    op.drop_index("invoicer_holds_period_status", table_name="invoicer_holds")
    op.drop_table("invoicer_holds")
    with op.batch_alter_table("invoicer_ledger") as batch:
        batch.drop_column("uncertain_since")
