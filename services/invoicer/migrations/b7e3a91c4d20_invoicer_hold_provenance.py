"""Invoicer: a hold keeps its usage's provenance sentence and its pricing, so a release writes the same
notes and line provenance as an invoice created directly

Revision ID: b7e3a91c4d20
Revises: 9d4e2b7c1a58
Create Date: 2026-12-14 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b7e3a91c4d20"
down_revision = "9d4e2b7c1a58"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: holds kept before this release have neither, and are released as before.
    with op.batch_alter_table("invoicer_holds") as batch:
        batch.add_column(sa.Column("provenance", sa.Text(), nullable=True))
        batch.add_column(sa.Column("pricing", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoicer_holds") as batch:
        batch.drop_column("pricing")
        batch.drop_column("provenance")
