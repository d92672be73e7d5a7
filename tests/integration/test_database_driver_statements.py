"""The inbox's statements run on the driver, not through SQLAlchemy's execution layer
(``first_row_on_driver``): they must still belong to the handler's transaction, fail as SQLAlchemy's
errors, and never leave a dead connection in the pool."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from shared.db import Database, first_row_on_driver
from shared.inbox import Inbox

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _rows(db: Database) -> int:
    with db.transaction() as session:
        return int(session.execute(text("SELECT count(*) FROM unit_inbox")).scalar_one())


def test_a_claim_commits_and_rolls_back_with_the_handlers_transaction(
    postgres_database: Database, unit_inbox: Inbox
) -> None:
    kept, undone = uuid.uuid4(), uuid.uuid4()
    with postgres_database.transaction() as session:
        assert unit_inbox.claim(session, "h", kept, NOW)
        assert unit_inbox.seen(session, "h", kept)
        assert not unit_inbox.claim(session, "h", kept, NOW)
    with pytest.raises(RuntimeError), postgres_database.transaction() as session:
        assert unit_inbox.claim(session, "h", undone, NOW)
        session.execute(text("INSERT INTO unit_inbox VALUES ('other', :id, now())"), {"id": undone})
        raise RuntimeError("the handler failed after its claim")
    with postgres_database.transaction() as session:
        assert unit_inbox.seen(session, "h", kept)
        assert not unit_inbox.seen(session, "h", undone)
    assert _rows(postgres_database) == 1


def test_a_naive_claim_time_is_refused_before_anything_is_written(
    postgres_database: Database, unit_inbox: Inbox
) -> None:
    with pytest.raises(TypeError, match="timezone-aware"), postgres_database.transaction() as session:
        unit_inbox.claim(session, "h", uuid.uuid4(), datetime(2026, 11, 1))
    assert _rows(postgres_database) == 0


def test_a_driver_error_comes_out_as_sqlalchemys_and_the_transaction_rolls_back(
    postgres_database: Database, unit_inbox: Inbox
) -> None:
    event_id = uuid.uuid4()
    statement = "INSERT INTO unit_inbox (handler, event_id, processed_at) VALUES (%(h)s, %(e)s, %(t)s)"
    with pytest.raises(IntegrityError), postgres_database.transaction() as session:
        assert unit_inbox.claim(session, "h", event_id, NOW)
        first_row_on_driver(session, statement, {"h": "h", "e": event_id, "t": NOW})
    assert _rows(postgres_database) == 0


def test_a_connection_found_dead_is_invalidated_not_handed_out_again(
    postgres_database: Database, unit_inbox: Inbox
) -> None:
    with postgres_database.transaction() as session:
        victim = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    killer = Database(postgres_database.url, schema=postgres_database.schema, pool_size=1)
    try:
        with killer.transaction() as session:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
    finally:
        killer.dispose()
    # The pool holds only the victim's connection: the look-up is the first statement on it.
    with pytest.raises(DBAPIError) as raised, postgres_database.transaction() as session:
        unit_inbox.seen(session, "h", uuid.uuid4())
    assert isinstance(raised.value, OperationalError)
    with postgres_database.transaction() as session:
        assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() != victim
        assert unit_inbox.claim(session, "h", uuid.uuid4(), NOW)
    assert _rows(postgres_database) == 1
