"""The queries on the signup service's tables: signups and their registrations, links, consents.

The tables and the rows read from them are in ``schema``.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.signup.schema import Link, Signup, Stage, consents, links, registrations, signups
from shared.db import rows_changed

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
