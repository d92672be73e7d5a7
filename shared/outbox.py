"""The transactional outbox.

An event that follows from a state change is inserted into the service's outbox table in the same
transaction as the change; the relay (``shared.relay``) ships it to the broker after the commit. A
rolled-back change therefore never publishes, and a broker outage delays events without losing any.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text, Uuid, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.bus.messages import OutgoingMessage
from shared.db import (
    UtcTimestamp,
    dialect_name,
    first_row_on_driver,
    insert_on_conflict,
    require_aware,
)
from shared.events.base import Envelope, Event, new_envelope
from shared.logging import get_logger
from shared.outbox_wakeup import channel, outbox_written, relayed_here

__all__ = ["Outbox", "outbox_table", "outbox_written"]

log = get_logger("postpay.outbox")


def outbox_table(metadata: MetaData, service: str) -> Table:
    return Table(
        f"{service}_outbox",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("body", Text, nullable=False),
        Column("headers", Text, nullable=False),
        Column("correlation_id", String(64), nullable=False),
        Column("producer", String(100), nullable=False),
        Column("occurred_at", UtcTimestamp, nullable=False),
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", UtcTimestamp, nullable=True),
        Column("last_error", Text, nullable=True),
    )


# ``outbox_written``'s NOTIFY, for an outbox written on a Core connection (see ``Outbox.add_all``).
_NOTIFY_SQL = "SELECT pg_notify(%(channel)s, '')"

# What ``Outbox._row`` gives, in the order of the driver-level insert.
_ROW_COLUMNS = ("event_id", "event_type", "body", "headers", "correlation_id", "producer", "occurred_at", "attempts")


class Outbox:
    """Writes a service's events into its outbox table, inside the caller's transaction."""

    def __init__(self, table: Table, producer: str) -> None:
        self.table = table
        self.producer = producer
        self._inserts: dict[str, Any] = {}
        # PostgreSQL, one event (a handler's emit, once per delivery): the same insert as plain SQL on the
        # driver. SQLAlchemy's execution layer (compiling the parameters, the implicit RETURNING of the
        # id it reads back, the result) cost several times the driver's own work for this one row.
        columns = ", ".join(_ROW_COLUMNS)
        values = ", ".join(f"%({name})s" for name in _ROW_COLUMNS)
        self._insert_one_sql = (
            f'INSERT INTO "{table.name}" ({columns}) VALUES ({values}) ON CONFLICT (event_id) DO NOTHING'
        )
        # The same insert with its parameters named ``o_<column>`` (``part_parameters``), for a handler
        # whose own statement on the driver writes the row as one of its parts (a data-modifying CTE):
        # one statement and round trip fewer per delivery. The caller follows it with ``written``.
        prefixed = ", ".join(f"%(o_{name})s" for name in _ROW_COLUMNS)
        self.insert_one_part = (
            f'INSERT INTO "{table.name}" ({columns}) VALUES ({prefixed}) ON CONFLICT (event_id) DO NOTHING'
        )

    def part_parameters(self, envelope: Envelope[Any]) -> dict[str, Any]:
        """``insert_one_part``'s parameters for ``envelope``."""
        row = self._row(envelope)
        row["occurred_at"] = require_aware(row["occurred_at"])  # as UtcTimestamp checks it
        return {f"o_{name}": value for name, value in row.items()}

    def _insert(self, dialect: str) -> Any:
        """The insert for ``dialect``, built once (it runs for every event a handler emits).

        The same event id twice is the same fact twice (a re-run fan-out): the first is kept."""
        statement = self._inserts.get(dialect)
        if statement is None:
            statement = insert_on_conflict(dialect, self.table).on_conflict_do_nothing(index_elements=["event_id"])
            self._inserts[dialect] = statement
        return statement

    def add(self, session: Session, envelope: Envelope[Any]) -> None:
        self.add_all(session, [envelope])

    def add_all(self, session: Session | Connection, envelopes: Sequence[Envelope[Any]]) -> None:
        """Insert many events in one statement (a fan-out of thousands stays fast), in the transaction
        of ``session``: a Session, or (a handler's ``ctx.writer`` on PostgreSQL) a Core connection; see
        ``written`` for who wakes the relay."""
        if not envelopes:
            return
        rows = [self._row(envelope) for envelope in envelopes]
        dialect = dialect_name(session)
        if len(rows) == 1 and dialect == "postgresql":
            row = rows[0]
            row["occurred_at"] = require_aware(row["occurred_at"])  # as UtcTimestamp checks it
            first_row_on_driver(session, self._insert_one_sql, row)
        else:
            # One row is a plain execute: the executemany path costs more for a single row.
            session.execute(self._insert(dialect), rows[0] if len(rows) == 1 else rows)
        self.written(session)

    def written(self, session: Session | Connection) -> None:
        """After an insert into this outbox in ``session``'s transaction (``add_all`` calls it; a caller
        of ``insert_one_part`` must): on a Session, its commit wakes this process's relays of the outbox
        (``outbox_written``); on a connection, whoever commits wakes them (the processor does). A
        PostgreSQL transaction whose outbox no relay of this process ships NOTIFYs either way."""
        if not isinstance(session, Connection):
            outbox_written(session, self.table)
        elif session.dialect.name == "postgresql" and not relayed_here(session.engine, self.table):
            first_row_on_driver(session, _NOTIFY_SQL, {"channel": channel(self.table)})

    @staticmethod
    def _row(envelope: Envelope[Any]) -> dict[str, Any]:
        message = OutgoingMessage.from_envelope(envelope)
        return {
            "event_id": message.event_id,
            "event_type": message.event_type,
            "body": message.body.decode(),
            "headers": json.dumps(message.headers),
            "correlation_id": message.correlation_id,
            "producer": message.producer,
            "occurred_at": message.occurred_at,
            "attempts": 0,
        }

    def add_event(
        self,
        session: Session,
        event: Event,
        *,
        event_id: uuid.UUID | None = None,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope[Any]:
        envelope = new_envelope(
            event,
            producer=self.producer,
            event_id=event_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
            occurred_at=occurred_at,
        )
        self.add(session, envelope)
        return envelope

    def backlog(self, session: Session) -> int:
        return int(session.execute(select(func.count()).select_from(self.table)).scalar_one())
