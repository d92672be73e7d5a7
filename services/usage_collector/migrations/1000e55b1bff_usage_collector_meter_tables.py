"""Usage collector: what the meter saw (VMs, runs, plans, sweeps), how far it is held whole, the
gaps, and the work items waiting for the meter.

Revision ID: 1000e55b1bff
Revises: da0be78cabd4
Create Date: 2026-12-04 23:36:47.253020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "1000e55b1bff"
down_revision = "da0be78cabd4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_collector_meter_gaps",
        sa.Column("meter_epoch", sa.Uuid(), nullable=False),
        sa.Column("before_sweep", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("starts_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.Column("ends_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("meter_epoch", "before_sweep"),
    )
    op.create_table(
        "usage_collector_meter_plans",
        sa.Column("meter_epoch", sa.Uuid(), nullable=False),
        sa.Column("server_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("sweep", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("effective_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("plan_name", sa.String(length=200), nullable=False),
        sa.Column("tokens_per_hour", sa.BigInteger(), nullable=False),
        sa.Column("tokens_per_month", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("meter_epoch", "server_id", "sweep"),
    )
    op.create_index(
        "usage_collector_meter_plans_server", "usage_collector_meter_plans", ["server_id", "effective_at"], unique=False
    )
    op.create_table(
        "usage_collector_meter_progress",
        sa.Column("meter_epoch", sa.Uuid(), nullable=False),
        sa.Column("contiguous", sa.BigInteger(), nullable=False),
        sa.Column("first_started_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("last_started_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("last_finished_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("meter_epoch"),
    )
    op.create_table(
        "usage_collector_meter_runs",
        sa.Column("meter_epoch", sa.Uuid(), nullable=False),
        sa.Column("server_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("run", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("solusvm_user_id", sa.BigInteger(), nullable=True),
        sa.Column("started_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("start_bound", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("ended_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("end_bound", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("meter_epoch", "server_id", "run"),
    )
    with op.batch_alter_table("usage_collector_meter_runs", schema=None) as batch_op:
        batch_op.create_index("usage_collector_meter_runs_user", ["solusvm_user_id", "started_at"], unique=False)

    op.create_table(
        "usage_collector_meter_sweeps",
        sa.Column("meter_epoch", sa.Uuid(), nullable=False),
        sa.Column("sweep", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("started_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("finished_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("expected", sa.Integer(), nullable=True),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("meter_epoch", "sweep"),
    )
    with op.batch_alter_table("usage_collector_meter_sweeps", schema=None) as batch_op:
        batch_op.create_index("usage_collector_meter_sweeps_started_at", ["started_at"], unique=False)

    op.create_table(
        "usage_collector_meter_vms",
        sa.Column("server_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("uuid", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("solusvm_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.Column("deleted_at", shared.db.UtcTimestamp(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("server_id"),
    )
    op.create_table(
        "usage_collector_meter_waiting",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("whmcs_client_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("solusvm_user_id", sa.BigInteger(), nullable=False),
        sa.Column("starts_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.Column("ends_at", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=10), nullable=False),
        sa.Column("since", shared.db.UtcTimestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("period", "whmcs_client_id"),
    )
    with op.batch_alter_table("usage_collector_meter_waiting", schema=None) as batch_op:
        batch_op.create_index("usage_collector_meter_waiting_ends_at", ["ends_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_collector_meter_waiting", schema=None) as batch_op:
        batch_op.drop_index("usage_collector_meter_waiting_ends_at")

    op.drop_table("usage_collector_meter_waiting")
    op.drop_table("usage_collector_meter_vms")
    with op.batch_alter_table("usage_collector_meter_sweeps", schema=None) as batch_op:
        batch_op.drop_index("usage_collector_meter_sweeps_started_at")

    op.drop_table("usage_collector_meter_sweeps")
    with op.batch_alter_table("usage_collector_meter_runs", schema=None) as batch_op:
        batch_op.drop_index("usage_collector_meter_runs_user")

    op.drop_table("usage_collector_meter_runs")
    op.drop_table("usage_collector_meter_progress")
    op.drop_index("usage_collector_meter_plans_server", table_name="usage_collector_meter_plans")
    op.drop_table("usage_collector_meter_plans")
    op.drop_table("usage_collector_meter_gaps")
