"""``Database.connection_transaction``: the unbatched handler's transaction on a Core connection, with a
Session over it only if the handler touches one. It must commit and roll back as a whole like
``Database.transaction``'s, hold no connection until first used, and still wake relays after commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from shared.db import Database
from shared.inbox import Inbox

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _ids(db: Database) -> set[tuple[str, uuid.UUID]]:
    with db.transaction() as session:
        return {(row.handler, row.event_id) for row in session.execute(text("SELECT * FROM unit_inbox"))}


def test_the_claim_and_the_sessions_work_commit_or_roll_back_together(
    postgres_database: Database, unit_inbox: Inbox
) -> None:
    claimed_only, with_session, undone = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    insert = text("INSERT INTO unit_inbox VALUES ('other', :id, now())")
    with postgres_database.connection_transaction() as transaction:
        assert unit_inbox.claim(transaction.connection, "h", claimed_only, NOW)
    with postgres_database.connection_transaction() as transaction:
        assert unit_inbox.claim(transaction.connection, "h", with_session, NOW)
        transaction.session.execute(insert, {"id": with_session})
        assert not unit_inbox.claim(transaction.connection, "h", with_session, NOW), "the session's work is in it"
    with pytest.raises(RuntimeError), postgres_database.connection_transaction() as transaction:
        assert unit_inbox.claim(transaction.connection, "h", undone, NOW)
        transaction.session.execute(insert, {"id": undone})
        raise RuntimeError("the handler failed after its claim")
    assert _ids(postgres_database) == {("h", claimed_only), ("h", with_session), ("other", with_session)}


def test_an_unused_transaction_holds_no_connection(postgres_database: Database) -> None:
    pool = postgres_database.engine.pool
    before = pool.checkedout()  # type: ignore[attr-defined]
    with postgres_database.connection_transaction():
        assert pool.checkedout() == before  # type: ignore[attr-defined]


def test_a_session_that_wrote_an_outbox_wakes_its_relay_after_the_commit(postgres_database: Database) -> None:
    from shared.outbox_wakeup import outbox_written, register, unregister
    from shared.service import ServiceTables

    tables = ServiceTables("unitwake")
    woken: list[bool] = []

    def wake() -> None:
        woken.append(True)

    register(postgres_database.engine, [tables.outbox.table], wake)
    try:
        with postgres_database.connection_transaction() as transaction:
            outbox_written(transaction.session, tables.outbox.table)
            assert woken == []
        assert woken == [True]
    finally:
        unregister(postgres_database.engine, [tables.outbox.table], wake)


def test_a_connection_found_dead_is_invalidated_not_handed_out_again(
    postgres_database: Database, unit_inbox: Inbox
) -> None:
    with postgres_database.connection_transaction() as transaction:
        victim = transaction.connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    killer = Database(postgres_database.url, schema=postgres_database.schema, pool_size=1)
    try:
        with killer.transaction() as session:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
    finally:
        killer.dispose()
    with pytest.raises(DBAPIError) as raised, postgres_database.connection_transaction() as transaction:
        unit_inbox.claim(transaction.connection, "h", uuid.uuid4(), NOW)
    assert isinstance(raised.value, OperationalError)
    with postgres_database.connection_transaction() as transaction:
        assert transaction.connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != victim
