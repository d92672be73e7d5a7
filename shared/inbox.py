"""The inbox: which events each handler has already applied.

A handler's state change and its inbox row commit in one transaction, so a redelivered or replayed
event finds its row and is acknowledged without being applied again.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, MetaData, String, Table, Uuid, select
from sqlalchemy.orm import Session

from shared.db import UtcTimestamp


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

    def seen(self, session: Session, handler: str, event_id: uuid.UUID) -> bool:
        query = select(self.table.c.event_id).where(
            self.table.c.handler == handler, self.table.c.event_id == event_id
        )
        return session.execute(query).first() is not None

    def record(self, session: Session, handler: str, event_id: uuid.UUID, at: datetime) -> None:
        """Insert the row; a concurrent duplicate makes the commit fail with an IntegrityError."""
        session.execute(self.table.insert().values(handler=handler, event_id=event_id, processed_at=at))
