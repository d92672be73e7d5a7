"""Scheduler: each closed period records its window (start, end and the zones of their local midnights).

Revision ID: 3b7e2c91d4a6
Revises: 7c1d0a9e4b52
Create Date: 2026-12-04 23:30:00

Periods closed before this revision were closed as calendar months in the zone recorded with them, so
their windows are computed from that zone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db
from shared.periods import BillingPeriod

revision = "3b7e2c91d4a6"
down_revision = "7c1d0a9e4b52"
branch_labels = None
depends_on = None

Timestamp = shared.db.UtcTimestamp(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("scheduler_closed_periods") as batch:
        batch.add_column(sa.Column("starts_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("ends_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("starts_in", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("ends_in", sa.String(length=64), nullable=True))
    table = sa.table(
        "scheduler_closed_periods",
        sa.column("period", sa.String),
        sa.column("timezone", sa.String),
        sa.column("starts_at", Timestamp),
        sa.column("ends_at", Timestamp),
    )
    connection = op.get_bind()
    for key, timezone in connection.execute(sa.select(table.c.period, table.c.timezone)).all():
        period = BillingPeriod.parse(key, timezone)
        connection.execute(
            table.update().where(table.c.period == key).values(starts_at=period.starts_at, ends_at=period.ends_at)
        )
    with op.batch_alter_table("scheduler_closed_periods") as batch:
        batch.alter_column("starts_at", existing_type=Timestamp, nullable=False)
        batch.alter_column("ends_at", existing_type=Timestamp, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("scheduler_closed_periods") as batch:
        batch.drop_column("ends_in")
        batch.drop_column("starts_in")
        batch.drop_column("ends_at")
        batch.drop_column("starts_at")
