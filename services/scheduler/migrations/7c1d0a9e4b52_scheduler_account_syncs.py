"""Scheduler: every accounts sync requested (one per billing day by the tick, and operators' own).

Revision ID: 7c1d0a9e4b52
Revises: 002d5827939c
Create Date: 2026-12-03 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "7c1d0a9e4b52"
down_revision = "002d5827939c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_account_syncs",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=10), nullable=False),
        sa.Column("requested_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_scheduler_account_syncs_day", "scheduler_account_syncs", ["day"])


def downgrade() -> None:
    op.drop_index("ix_scheduler_account_syncs_day", table_name="scheduler_account_syncs")
    op.drop_table("scheduler_account_syncs")
