"""The console's tables: operators, sessions, and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from shared.db import UtcTimestamp
from shared.service import ServiceDefinition, ServiceTables

NAME = "console"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass
class ConsoleTables(ServiceTables):
    def __post_init__(self) -> None:
        # The console consumes and publishes nothing itself: no inbox, no outbox.
        pass


tables = ConsoleTables(NAME)
metadata = tables.metadata

operators = Table(
    "console_operators",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("disabled_at", UtcTimestamp, nullable=True),
    Column("last_login_at", UtcTimestamp, nullable=True),
)

# A session is known by the hash of its cookie; the cookie itself is never stored.
sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("operator_id", Integer, nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("expires_at", UtcTimestamp, nullable=False),
    Column("ip_address", String(45), nullable=True),
)

audit = Table(
    "console_audit",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", UtcTimestamp, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(500), nullable=False),
    Column("reason", Text, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=True),
    Column("ip_address", String(45), nullable=True),
    Index("console_audit_action_at", "action", "at"),
)


def console_definition() -> ServiceDefinition:
    return ServiceDefinition(name=NAME, tables=tables, subscriptions=[], migrations=MIGRATIONS)
