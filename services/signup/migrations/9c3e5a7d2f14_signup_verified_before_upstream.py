"""signup: nothing upstream before the email is verified; registrations, revoked links, panel nonces

The WHMCS client is now created (or linked) after the email is verified, so the first stage is
``awaiting_verification`` and ``creating_client`` is gone: rows still in it (registered, client not
created, email not verified) move to ``awaiting_verification``. Every registration is kept in
``signup_registrations`` (each existing signup's under its own id, which its registrant already holds);
a newer registration of a pending address replaces the older one. Links can be revoked. The WHMCS
hook's nonces are remembered for the freshness window.

Revision ID: 9c3e5a7d2f14
Revises: 4f6b2c8d1e07
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "9c3e5a7d2f14"
down_revision = "4f6b2c8d1e07"
branch_labels = None
depends_on = None

Timestamp = shared.db.UtcTimestamp(timezone=True)


def upgrade() -> None:
    op.add_column("signup_signups", sa.Column("registration_id", sa.Uuid(), nullable=True))
    op.add_column("signup_links", sa.Column("revoked_at", Timestamp, nullable=True))
    op.create_table(
        "signup_registrations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("signup_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["signup_id"], ["signup_signups.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_signup_registrations_signup_id", "signup_registrations", ["signup_id"])
    op.create_table(
        "signup_panel_nonces",
        sa.Column("nonce_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("nonce_hash"),
    )
    op.create_index("signup_panel_nonces_expiry", "signup_panel_nonces", ["expires_at"])
    op.execute("UPDATE signup_signups SET stage = 'awaiting_verification' WHERE stage = 'creating_client'")
    op.execute(
        "INSERT INTO signup_registrations (id, signup_id, created_at) SELECT id, id, created_at FROM signup_signups"
    )
    op.execute("UPDATE signup_signups SET registration_id = id")


def downgrade() -> None:
    # The old code created the client first, in 'creating_client': every signup without a client is there.
    op.execute(
        "UPDATE signup_signups SET stage = 'creating_client' WHERE whmcs_client_id IS NULL "
        "AND stage IN ('awaiting_verification', 'linking_client')"
    )
    op.drop_index("signup_panel_nonces_expiry", table_name="signup_panel_nonces")
    op.drop_table("signup_panel_nonces")
    op.drop_index("ix_signup_registrations_signup_id", table_name="signup_registrations")
    op.drop_table("signup_registrations")
    with op.batch_alter_table("signup_links") as batch:
        batch.drop_column("revoked_at")
    with op.batch_alter_table("signup_signups") as batch:
        batch.drop_column("registration_id")
