"""signup tables: signups, links, consents, rate limits (and the signup inbox and outbox)

Revision ID: b8923a5657e0
Revises:
Create Date: 2026-11-25 18:26:10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "b8923a5657e0"
down_revision = None
branch_labels = None
depends_on = None

Timestamp = shared.db.UtcTimestamp(timezone=True)
Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "signup_inbox",
        sa.Column("handler", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("handler", "event_id"),
    )
    op.create_table(
        "signup_outbox",
        sa.Column("id", Serial, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("producer", sa.String(length=100), nullable=False),
        sa.Column("occurred_at", Timestamp, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Timestamp, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_table(
        "signup_signups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("email_key", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("company", sa.String(length=100), nullable=False),
        sa.Column("encrypted_password", sa.Text(), nullable=True),
        sa.Column("registration_ip", sa.String(length=45), nullable=True),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("whmcs_client_id", sa.Integer(), nullable=True),
        sa.Column("solusvm_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("verification_sent_at", Timestamp, nullable=True),
        sa.Column("email_verified_at", Timestamp, nullable=True),
        sa.Column("terms_accepted_at", Timestamp, nullable=True),
        sa.Column("enrolled_at", Timestamp, nullable=True),
        sa.Column("welcome_sent_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email_key"),
        sa.UniqueConstraint("whmcs_client_id"),
    )
    op.create_table(
        "signup_links",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("signup_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.Column("used_at", Timestamp, nullable=True),
        sa.Column("session_binding", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["signup_id"], ["signup_signups.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_signup_links_signup_id", "signup_links", ["signup_id"])
    op.create_table(
        "signup_consents",
        sa.Column("id", Serial, autoincrement=True, nullable=False),
        sa.Column("signup_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("whmcs_client_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("accepted_at", Timestamp, nullable=False),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["signup_id"], ["signup_signups.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_signup_consents_signup_id", "signup_consents", ["signup_id"])
    op.create_index("ix_signup_consents_whmcs_client_id", "signup_consents", ["whmcs_client_id"])
    op.create_table(
        "signup_rate_limits",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("signup_rate_limits_expiry", "signup_rate_limits", ["expires_at"])


def downgrade() -> None:
    op.drop_table("signup_rate_limits")
    op.drop_table("signup_consents")
    op.drop_table("signup_links")
    op.drop_table("signup_signups")
    op.drop_table("signup_outbox")
    op.drop_table("signup_inbox")
