"""The signup service's tables and the queries on them.

``signup_signups``   one row per email address: the journey's stage and the ids it collects. The
                     encrypted password lives here only until the WHMCS client exists.
``signup_links``     verification and SSO links: single use, expiring (the token itself is signed,
                     never stored).
``signup_consents``  the consent ledger: which terms (URL + version) were accepted, when, from which
                     IP address and user agent. Rows are only ever added.
``signup_rate_limits``  fixed-window counters shared by every signup replica (keys are hashes, so no
                     email or IP address is kept there).
``signup_panel_nonces``  the nonces of the WHMCS hook's signed requests seen within the freshness
                     window (hashed): a request sent again is refused by every replica.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    delete,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.db import UtcTimestamp
from shared.service import ServiceTables

tables = ServiceTables("signup")
metadata = tables.metadata


class Stage(str, enum.Enum):
    """Where a signup is. Each stage is reached from the one before it, never skipped or undone."""

    CREATING_CLIENT = "creating_client"  # registered; the WHMCS client is being created
    AWAITING_VERIFICATION = "awaiting_verification"  # the verification email is (being) sent
    AWAITING_TERMS = "awaiting_terms"  # the email is verified
    PROVISIONING = "provisioning"  # the terms are accepted; the SolusVM 2 user is being created
    ENROLLED = "enrolled"

    @property
    def order(self) -> int:
        return list(Stage).index(self)


signups = Table(
    "signup_signups",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", String(254), nullable=False),
    Column("email_key", String(254), nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("company", String(100), nullable=False, default=""),
    Column("encrypted_password", Text, nullable=True),
    Column("registration_ip", String(45), nullable=True),
    Column("stage", String(32), nullable=False),
    Column("whmcs_client_id", Integer, nullable=True, unique=True),
    Column("solusvm_user_id", Integer, nullable=True),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Column("verification_sent_at", UtcTimestamp, nullable=True),
    Column("email_verified_at", UtcTimestamp, nullable=True),
    Column("terms_accepted_at", UtcTimestamp, nullable=True),
    Column("enrolled_at", UtcTimestamp, nullable=True),
    Column("welcome_sent_at", UtcTimestamp, nullable=True),
)

links = Table(
    "signup_links",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("signup_id", Uuid, ForeignKey("signup_signups.id"), nullable=False, index=True),
    Column("purpose", String(16), nullable=False),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("expires_at", UtcTimestamp, nullable=False),
    Column("used_at", UtcTimestamp, nullable=True),
    # An SSO link minted in a browser session is bound to it (a hash of the session nonce).
    Column("session_binding", String(64), nullable=True),
)

consents = Table(
    "signup_consents",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("signup_id", Uuid, ForeignKey("signup_signups.id"), nullable=False, index=True),
    Column("email", String(254), nullable=False),
    Column("whmcs_client_id", Integer, nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("version", String(100), nullable=False),
    Column("accepted_at", UtcTimestamp, nullable=False),
    Column("ip_address", String(45), nullable=True),
    Column("user_agent", String(500), nullable=True),
)

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


@dataclass(frozen=True)
class Signup:
    id: uuid.UUID
    email: str
    name: str
    company: str
    stage: Stage
    whmcs_client_id: int | None
    solusvm_user_id: int | None
    encrypted_password: str | None
    registration_ip: str | None
    created_at: datetime
    email_verified_at: datetime | None
    terms_accepted_at: datetime | None
    enrolled_at: datetime | None
    welcome_sent_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Signup:
        return cls(
            id=row.id, email=row.email, name=row.name, company=row.company, stage=Stage(row.stage),
            whmcs_client_id=row.whmcs_client_id, solusvm_user_id=row.solusvm_user_id,
            encrypted_password=row.encrypted_password, registration_ip=row.registration_ip,
            created_at=row.created_at, email_verified_at=row.email_verified_at,
            terms_accepted_at=row.terms_accepted_at, enrolled_at=row.enrolled_at,
            welcome_sent_at=row.welcome_sent_at,
        )  # fmt: skip

    def reached(self, stage: Stage) -> bool:
        return self.stage.order >= stage.order


@dataclass(frozen=True)
class Link:
    id: uuid.UUID
    signup_id: uuid.UUID
    purpose: str
    expires_at: datetime
    used_at: datetime | None
    session_binding: str | None


# Signups -------------------------------------------------------------------------------------------


def insert_signup(
    session: Session, *, signup_id: uuid.UUID, email: str, email_key: str, name: str, company: str,
    encrypted_password: str, registration_ip: str | None, now: datetime,
) -> None:  # fmt: skip
    session.execute(
        signups.insert().values(
            id=signup_id, email=email, email_key=email_key, name=name, company=company,
            encrypted_password=encrypted_password, registration_ip=registration_ip,
            stage=Stage.CREATING_CLIENT.value, created_at=now, updated_at=now,
        )  # fmt: skip
    )


def _one(session: Session, condition: Any, *, lock: bool = False) -> Signup | None:
    query = select(signups).where(condition)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).first()
    return Signup.from_row(row) if row is not None else None


def get_signup(session: Session, signup_id: uuid.UUID, *, lock: bool = False) -> Signup | None:
    return _one(session, signups.c.id == signup_id, lock=lock)


def signup_by_email_key(session: Session, key: str) -> Signup | None:
    return _one(session, signups.c.email_key == key)


def signup_by_client(session: Session, whmcs_client_id: int) -> Signup | None:
    return _one(session, signups.c.whmcs_client_id == whmcs_client_id)


def record_whmcs_client(session: Session, signup_id: uuid.UUID, whmcs_client_id: int, now: datetime) -> None:
    """The WHMCS client exists: keep its id and erase the password in the same statement."""
    session.execute(
        update(signups)
        .where(signups.c.id == signup_id)
        .values(
            whmcs_client_id=whmcs_client_id,
            encrypted_password=None,
            stage=Stage.AWAITING_VERIFICATION.value,
            updated_at=now,
        )
    )


def advance(session: Session, signup_id: uuid.UUID, to: Stage, now: datetime, **values: Any) -> bool:
    """Move the signup to stage ``to`` from the stage before it; False if it was not there."""
    previous = list(Stage)[to.order - 1]
    result = session.execute(
        update(signups)
        .where(signups.c.id == signup_id, signups.c.stage == previous.value)
        .values(stage=to.value, updated_at=now, **values)
    )
    return bool(result.rowcount)


def mark_verification_sent(session: Session, signup_id: uuid.UUID, now: datetime) -> None:
    session.execute(update(signups).where(signups.c.id == signup_id).values(verification_sent_at=now, updated_at=now))


def mark_welcome_sent(session: Session, signup_id: uuid.UUID, now: datetime) -> None:
    session.execute(update(signups).where(signups.c.id == signup_id).values(welcome_sent_at=now, updated_at=now))


# Links ---------------------------------------------------------------------------------------------


def _link(row: Any) -> Link:
    return Link(row.id, row.signup_id, row.purpose, row.expires_at, row.used_at, row.session_binding)


def ensure_link(
    session: Session, *, link_id: uuid.UUID, signup_id: uuid.UUID, purpose: str, now: datetime, lifetime: timedelta,
    session_binding: str | None = None,
) -> Link:  # fmt: skip
    """The link with this id, created now if it does not exist yet (a retried handler gets the same link)."""
    existing = session.execute(select(links).where(links.c.id == link_id)).first()
    if existing is not None:
        return _link(existing)
    # Whole seconds: the signed token carries Unix seconds, and both must agree on the end.
    expires_at = (now + lifetime).replace(microsecond=0)
    session.execute(
        links.insert().values(
            id=link_id, signup_id=signup_id, purpose=purpose, created_at=now, expires_at=expires_at,
            session_binding=session_binding,
        )  # fmt: skip
    )
    return Link(link_id, signup_id, purpose, expires_at, None, session_binding)


def get_link(session: Session, link_id: uuid.UUID, purpose: str) -> Link | None:
    row = session.execute(select(links).where(links.c.id == link_id, links.c.purpose == purpose)).first()
    return _link(row) if row is not None else None


def use_link(session: Session, link_id: uuid.UUID, now: datetime) -> bool:
    """Claim a link once: True for the one caller that flips ``used_at``, False for everyone after."""
    result = session.execute(
        update(links).where(links.c.id == link_id, links.c.used_at.is_(None)).values(used_at=now)
    )
    return bool(result.rowcount)


# Consents ------------------------------------------------------------------------------------------


def add_consent(session: Session, **values: Any) -> None:
    session.execute(consents.insert().values(**values))


def consents_for(session: Session, *, email_key: str | None = None, whmcs_client_id: int | None = None) -> list[Any]:
    query = select(consents).join(signups, signups.c.id == consents.c.signup_id).order_by(consents.c.id)
    if email_key is not None:
        query = query.where(signups.c.email_key == email_key)
    if whmcs_client_id is not None:
        query = query.where(consents.c.whmcs_client_id == whmcs_client_id)
    return list(session.execute(query).all())


# Rate limits ---------------------------------------------------------------------------------------


def count_hit(session: Session, bucket: str, now: datetime, window_seconds: int) -> int:
    """Count one hit in ``bucket``'s current fixed window and return the window's total so far.

    One atomic upsert, so replicas sharing the database agree on the count.
    """
    window = int(now.timestamp()) // window_seconds
    key = hashlib.sha256(f"{bucket}|{window_seconds}|{window}".encode()).hexdigest()
    expires_at = now + timedelta(seconds=window_seconds)
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert(rate_limits) if dialect == "postgresql" else sqlite.insert(rate_limits)
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
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert(panel_nonces) if dialect == "postgresql" else sqlite.insert(panel_nonces)
    # A timestamp may be up to the window old or early, so a nonce is worth remembering twice as long.
    statement = insert.values(nonce_hash=key, expires_at=now + timedelta(seconds=2 * window_seconds))
    inserted = session.execute(statement.on_conflict_do_nothing(index_elements=["nonce_hash"]).returning(panel_nonces.c.nonce_hash))
    return inserted.first() is not None
