"""Counters and memories shared by every signup replica through the database.

``signup_rate_limits``   fixed-window counters (keys are hashes, so no email or IP address is kept).
``signup_panel_nonces``  the nonces of the WHMCS hook's signed requests seen within the freshness
                         window (hashed): a request sent again is refused by every replica.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Index, Integer, String, Table, delete
from sqlalchemy.orm import Session

from services.signup.schema import metadata
from shared.db import UtcTimestamp, insert_on_conflict

rate_limits = Table(
    "signup_rate_limits",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("hits", Integer, nullable=False),
    Column("expires_at", UtcTimestamp, nullable=False),
    Index("signup_rate_limits_expiry", "expires_at"),
)


panel_nonces = Table(
    "signup_panel_nonces",
    metadata,
    Column("nonce_hash", String(64), primary_key=True),
    Column("expires_at", UtcTimestamp, nullable=False),
    Index("signup_panel_nonces_expiry", "expires_at"),
)


# Rate limits ---------------------------------------------------------------------------------------


def count_hit(session: Session, bucket: str, now: datetime, window_seconds: int) -> int:
    """Count one hit in ``bucket``'s current fixed window and return the window's total so far.

    One atomic upsert, so replicas sharing the database agree on the count.
    """
    window = int(now.timestamp()) // window_seconds
    key = hashlib.sha256(f"{bucket}|{window_seconds}|{window}".encode()).hexdigest()
    expires_at = now + timedelta(seconds=window_seconds)
    insert: Any = insert_on_conflict(session, rate_limits)
    statement = (
        insert.values(key=key, hits=1, expires_at=expires_at)
        .on_conflict_do_update(index_elements=["key"], set_={"hits": rate_limits.c.hits + 1})
        .returning(rate_limits.c.hits)
    )
    hits = int(session.execute(statement).scalar_one())
    if hits == 1:
        # A new window began somewhere: a good moment to forget the finished ones.
        session.execute(delete(rate_limits).where(rate_limits.c.expires_at < now))
    return hits


# Panel request nonces --------------------------------------------------------------------------------


def remember_nonce(session: Session, nonce: str, now: datetime, window_seconds: int) -> bool:
    """Record a signed request's nonce: True the first time, False for a replay (on any replica)."""
    key = hashlib.sha256(nonce.encode("ascii")).hexdigest()
    session.execute(delete(panel_nonces).where(panel_nonces.c.expires_at < now))
    insert: Any = insert_on_conflict(session, panel_nonces)
    # A timestamp may be up to the window old or early, so a nonce is worth remembering twice as long.
    statement = insert.values(nonce_hash=key, expires_at=now + timedelta(seconds=2 * window_seconds))
    inserted = session.execute(
        statement.on_conflict_do_nothing(index_elements=["nonce_hash"]).returning(panel_nonces.c.nonce_hash)
    )
    return inserted.first() is not None
