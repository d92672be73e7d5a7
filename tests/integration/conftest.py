"""Fixtures several integration test files share."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData

from shared.db import Database
from shared.inbox import Inbox, inbox_table


@pytest.fixture
def unit_inbox(postgres_database: Database) -> Inbox:
    """An inbox of its own (table ``unit_inbox``) in the test's fresh PostgreSQL schema."""
    metadata = MetaData()
    table = inbox_table(metadata, "unit")
    metadata.create_all(postgres_database.engine)
    return Inbox(table)
