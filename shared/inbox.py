"""The inbox: which events each handler has already applied.

A handler's state change and its inbox row commit in one transaction, so a redelivered or replayed
event finds its row and is acknowledged without being applied again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Column, MetaData, String, Table, Uuid, bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.db import UtcTimestamp, dialect_name, first_row_on_driver, require_aware, rows_on_driver


def inbox_table(metadata: MetaData, service: str) -> Table:
    return Table(
        f"{service}_inbox",
        metadata,
        Column("handler", String(200), primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("processed_at", UtcTimestamp, nullable=False),
    )


class Inbox:
    def __init__(self, table: Table) -> None:
        self.table = table
        # Built once: every delivery runs both, and building and cache-keying a statement per call
        # cost more CPU than executing it.
        self._seen = select(table.c.event_id).where(
            table.c.handler == bindparam("handler"), table.c.event_id == bindparam("event_id")
        )
        self._record = table.insert()
        # On PostgreSQL both run as plain SQL on the driver (first_row_on_driver): every delivery runs
        # one of them, and SQLAlchemy's execution layer cost about as much CPU as the round trip.
        self._seen_sql = f'SELECT 1 FROM "{table.name}" WHERE handler = %(handler)s AND event_id = %(event_id)s'
        self._claim_sql = (
            f'INSERT INTO "{table.name}" (handler, event_id, processed_at) '
            "VALUES (%(handler)s, %(event_id)s, %(processed_at)s) "
            "ON CONFLICT (handler, event_id) DO NOTHING RETURNING event_id"
        )
        # A batch's ids as one array parameter, ordered as given (see claim_many), on the driver too:
        # SQLAlchemy's text() with an ARRAY(Uuid) bind converted each id in Python and cost more CPU
        # per batch than the statement's round trip.
        self._claim_many_sql = (
            f'INSERT INTO "{table.name}" (handler, event_id, processed_at) '
            "SELECT %(handler)s, claimed.event_id, %(processed_at)s "
            "FROM unnest(%(event_ids)s::uuid[]) WITH ORDINALITY AS claimed(event_id, position) "
            "ORDER BY claimed.position "
            "ON CONFLICT (handler, event_id) DO NOTHING RETURNING event_id"
        )

    def seen(self, session: Session | Connection, handler: str, event_id: uuid.UUID) -> bool:
        """Whether the event is in the inbox, in ``session``'s transaction: a Session, or a Core connection."""
        parameters = {"handler": handler, "event_id": event_id}
        if dialect_name(session) == "postgresql":
            return first_row_on_driver(session, self._seen_sql, parameters) is not None
        return session.execute(self._seen, parameters).first() is not None

    def record(self, session: Session, handler: str, event_id: uuid.UUID, at: datetime) -> None:
        """Insert the row; a concurrent duplicate makes the commit fail with an IntegrityError."""
        session.execute(self._record, {"handler": handler, "event_id": event_id, "processed_at": at})

    def claim(self, session: Session | Connection, handler: str, event_id: uuid.UUID, at: datetime) -> bool:
        """PostgreSQL: insert the row at the start of the handler's transaction; False if it exists.

        One statement instead of a check and a later insert. The row commits or rolls back with the
        handler's work, as a late insert would; a concurrent delivery of the same event waits on the
        uncommitted row, then finds it (or, after a rollback, claims it), so the handler never runs
        twice at once for one event.
        """
        parameters = {"handler": handler, "event_id": event_id, "processed_at": require_aware(at)}
        return first_row_on_driver(session, self._claim_sql, parameters) is not None

    def claim_many(
        self, session: Session, handler: str, event_ids: Iterable[uuid.UUID], at: datetime
    ) -> set[uuid.UUID]:
        """PostgreSQL: ``claim`` for several events in one statement; returns the ids it claimed.

        Rows are inserted in id order, so two batches that share events lock them in the same order
        and wait for each other instead of deadlocking.
        """
        ordered = sorted(set(event_ids))
        if not ordered:
            return set()
        parameters = {"handler": handler, "event_ids": ordered, "processed_at": require_aware(at)}
        return {row[0] for row in rows_on_driver(session, self._claim_many_sql, parameters)}
