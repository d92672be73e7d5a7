"""The signup service's tables and the queries on them.

``signup_signups``   one row per email address: the journey's stage and the ids it collects, and the
                     details of its current registration. The encrypted password lives here only
                     until the WHMCS client exists (created or linked after the email is verified).
``signup_registrations``  every accepted registration (form or API), and which signup it concerns: its
                     id is what the registrant holds (the browser session, the API's ``signup_id``).
                     Only the signup's current registration sees its progress.
``signup_links``     verification and SSO links: single use, expiring, revoked by a newer one (the
                     token itself is signed, never stored).
``signup_consents``  the consent ledger: which terms (URL + version) were accepted, when, from which
                     IP address and user agent. Rows are only ever added.
(The rate-limit counters and the WHMCS hook's nonces are in ``throttle``.)
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    select,
    update,
)
from sqlalchemy.orm import Session

from shared.db import UtcTimestamp, rows_changed
from shared.service import ServiceTables

tables = ServiceTables("signup")
metadata = tables.metadata


class Stage(str, enum.Enum):
    """Where a signup is. Each stage is reached from the one before it, never skipped or undone.

    Nothing exists upstream before the email is verified: the WHMCS client is created (or an existing
    one linked) only then, so an unverified registration can never set anyone's password.
    """

    AWAITING_VERIFICATION = "awaiting_verification"  # registered; the verification email is (being) sent
    LINKING_CLIENT = "linking_client"  # the email is verified; the WHMCS client is being found or created
    AWAITING_TERMS = "awaiting_terms"  # the WHMCS client exists
    PROVISIONING = "provisioning"  # the terms are accepted; the SolusVM 2 user is being created
    ENROLLED = "enrolled"

    @classmethod
    def _missing_(cls, value: object) -> Stage | None:
        # Before 2026-12 the client was created before verification, in a first stage of that name; the
        # migration moves such rows to awaiting_verification, and a straggler reads the same.
        return cls.AWAITING_VERIFICATION if value == "creating_client" else None

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
    Column("registration_id", Uuid, nullable=True),
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
    # What the customer chose at registration (None: an API registration that named none, or older).
    Column("currency", String(3), nullable=True),
    Column("country", String(2), nullable=True),
    # The WHMCS client's own currency once it is created or linked: what invoices will be in.
    Column("billing_currency", String(3), nullable=True),
)

registrations = Table(
    "signup_registrations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("signup_id", Uuid, ForeignKey("signup_signups.id"), nullable=False, index=True),
    Column("created_at", UtcTimestamp, nullable=False),
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
    # Set when a newer link of the signup was issued or used, or the terms were accepted.
    Column("revoked_at", UtcTimestamp, nullable=True),
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
    registration_id: uuid.UUID | None
    created_at: datetime
    email_verified_at: datetime | None
    terms_accepted_at: datetime | None
    enrolled_at: datetime | None
    welcome_sent_at: datetime | None
    currency: str | None = None
    country: str | None = None
    billing_currency: str | None = None

    @property
    def currency_differs(self) -> bool:
        """The client's WHMCS currency is not the one chosen (an existing client linked by email keeps its own)."""
        return bool(self.currency and self.billing_currency and self.currency != self.billing_currency)

    @classmethod
    def from_row(cls, row: Any) -> Signup:
        return cls(
            id=row.id,
            email=row.email,
            name=row.name,
            company=row.company,
            stage=Stage(row.stage),
            whmcs_client_id=row.whmcs_client_id,
            solusvm_user_id=row.solusvm_user_id,
            encrypted_password=row.encrypted_password,
            registration_ip=row.registration_ip,
            registration_id=row.registration_id,
            created_at=row.created_at,
            email_verified_at=row.email_verified_at,
            terms_accepted_at=row.terms_accepted_at,
            enrolled_at=row.enrolled_at,
            welcome_sent_at=row.welcome_sent_at,
            currency=row.currency,
            country=row.country,
            billing_currency=row.billing_currency,
        )

    def reached(self, stage: Stage) -> bool:
        return self.stage.order >= stage.order

    def is_current(self, registration_id: uuid.UUID) -> bool:
        """Whether ``registration_id`` is this signup's registration (rows from before registrations
        were kept have the signup's own id as theirs)."""
        return registration_id == (self.registration_id or self.id)


@dataclass(frozen=True)
class Link:
    id: uuid.UUID
    signup_id: uuid.UUID
    purpose: str
    expires_at: datetime
    used_at: datetime | None
    session_binding: str | None
    revoked_at: datetime | None = None


# Signups -------------------------------------------------------------------------------------------


def insert_signup(
    session: Session,
    *,
    signup_id: uuid.UUID,
    email: str,
    email_key: str,
    name: str,
    company: str,
    encrypted_password: str,
    registration_ip: str | None,
    now: datetime,
    currency: str | None = None,
    country: str | None = None,
) -> None:
    """A new signup, whose first registration has the signup's own id."""
    session.execute(
        signups.insert().values(
            id=signup_id,
            email=email,
            email_key=email_key,
            name=name,
            company=company,
            encrypted_password=encrypted_password,
            registration_ip=registration_ip,
            registration_id=signup_id,
            stage=Stage.AWAITING_VERIFICATION.value,
            created_at=now,
            updated_at=now,
            currency=currency,
            country=country,
        )
    )
    add_registration(session, registration_id=signup_id, signup_id=signup_id, now=now)


def replace_registration(
    session: Session,
    signup_id: uuid.UUID,
    *,
    registration_id: uuid.UUID,
    name: str,
    company: str,
    encrypted_password: str,
    registration_ip: str | None,
    now: datetime,
    currency: str | None = None,
    country: str | None = None,
) -> bool:
    """A newer registration of a signup still waiting for its email to be verified takes its place
    (name, company, password, currency, country); False if the email was verified meanwhile."""
    result = session.execute(
        update(signups)
        .where(signups.c.id == signup_id, signups.c.stage == Stage.AWAITING_VERIFICATION.value)
        .values(
            name=name,
            company=company,
            encrypted_password=encrypted_password,
            registration_ip=registration_ip,
            registration_id=registration_id,
            updated_at=now,
            currency=currency,
            country=country,
        )
    )
    if not rows_changed(result):
        return False
    add_registration(session, registration_id=registration_id, signup_id=signup_id, now=now)
    return True


def add_registration(session: Session, *, registration_id: uuid.UUID, signup_id: uuid.UUID, now: datetime) -> None:
    session.execute(registrations.insert().values(id=registration_id, signup_id=signup_id, created_at=now))


def signup_of_registration(session: Session, registration_id: uuid.UUID) -> Signup | None:
    query = select(signups).join(registrations, registrations.c.signup_id == signups.c.id)
    row = session.execute(query.where(registrations.c.id == registration_id)).first()
    return Signup.from_row(row) if row is not None else None


def _one(session: Session, condition: Any, *, lock: bool = False) -> Signup | None:
    query = select(signups).where(condition)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).first()
    return Signup.from_row(row) if row is not None else None


def get_signup(session: Session, signup_id: uuid.UUID, *, lock: bool = False) -> Signup | None:
    return _one(session, signups.c.id == signup_id, lock=lock)


def signup_by_email_key(session: Session, key: str, *, lock: bool = False) -> Signup | None:
    return _one(session, signups.c.email_key == key, lock=lock)


def signup_by_client(session: Session, whmcs_client_id: int) -> Signup | None:
    return _one(session, signups.c.whmcs_client_id == whmcs_client_id)


def record_whmcs_client(
    session: Session, signup_id: uuid.UUID, whmcs_client_id: int, now: datetime, billing_currency: str | None = None
) -> bool:
    """The WHMCS client exists: keep its id (and its currency), erase the password and unlock the terms,
    in one statement."""
    result = session.execute(
        update(signups)
        .where(signups.c.id == signup_id, signups.c.stage == Stage.LINKING_CLIENT.value)
        .values(
            whmcs_client_id=whmcs_client_id,
            billing_currency=billing_currency,
            encrypted_password=None,
            stage=Stage.AWAITING_TERMS.value,
            updated_at=now,
        )
    )
    return bool(rows_changed(result))


def advance(session: Session, signup_id: uuid.UUID, to: Stage, now: datetime, **values: Any) -> bool:
    """Move the signup to stage ``to`` from the stage before it; False if it was not there."""
    previous = list(Stage)[to.order - 1]
    result = session.execute(
        update(signups)
        .where(signups.c.id == signup_id, signups.c.stage == previous.value)
        .values(stage=to.value, updated_at=now, **values)
    )
    return bool(rows_changed(result))


def mark_verification_sent(session: Session, signup_id: uuid.UUID, now: datetime) -> None:
    session.execute(update(signups).where(signups.c.id == signup_id).values(verification_sent_at=now, updated_at=now))


def mark_welcome_sent(session: Session, signup_id: uuid.UUID, now: datetime) -> None:
    session.execute(update(signups).where(signups.c.id == signup_id).values(welcome_sent_at=now, updated_at=now))


# Links ---------------------------------------------------------------------------------------------


def _link(row: Any) -> Link:
    return Link(row.id, row.signup_id, row.purpose, row.expires_at, row.used_at, row.session_binding, row.revoked_at)


def ensure_link(
    session: Session,
    *,
    link_id: uuid.UUID,
    signup_id: uuid.UUID,
    purpose: str,
    now: datetime,
    lifetime: timedelta,
    session_binding: str | None = None,
    revoke_others: bool = False,
) -> Link:
    """The link with this id, created now if it does not exist yet (a retried handler gets the same link).
    ``revoke_others``: creating it revokes every other unused link of the signup for that purpose."""
    existing = session.execute(select(links).where(links.c.id == link_id)).first()
    if existing is not None:
        return _link(existing)
    if revoke_others:
        revoke_links(session, signup_id, purpose, now)
    # Whole seconds: the signed token carries Unix seconds, and both must agree on the end.
    expires_at = (now + lifetime).replace(microsecond=0)
    session.execute(
        links.insert().values(
            id=link_id,
            signup_id=signup_id,
            purpose=purpose,
            created_at=now,
            expires_at=expires_at,
            session_binding=session_binding,
        )
    )
    return Link(link_id, signup_id, purpose, expires_at, None, session_binding)


def get_link(session: Session, link_id: uuid.UUID, purpose: str) -> Link | None:
    row = session.execute(select(links).where(links.c.id == link_id, links.c.purpose == purpose)).first()
    return _link(row) if row is not None else None


def use_link(session: Session, link_id: uuid.UUID, now: datetime) -> bool:
    """Claim a link once: True for the one caller that flips ``used_at``, False for everyone after (and
    for a revoked link)."""
    result = session.execute(
        update(links)
        .where(links.c.id == link_id, links.c.used_at.is_(None), links.c.revoked_at.is_(None))
        .values(used_at=now)
    )
    return bool(rows_changed(result))


def revoke_links(
    session: Session, signup_id: uuid.UUID, purpose: str, now: datetime, *, keep: uuid.UUID | None = None
) -> None:
    """Every unused, unrevoked link of the signup for ``purpose`` (but ``keep``) stops working."""
    condition = [
        links.c.signup_id == signup_id,
        links.c.purpose == purpose,
        links.c.used_at.is_(None),
        links.c.revoked_at.is_(None),
    ]
    if keep is not None:
        condition.append(links.c.id != keep)
    session.execute(update(links).where(*condition).values(revoked_at=now))


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
