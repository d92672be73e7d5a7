"""What postpay's operator tools may use of the signup service (the only module of it postpay/ imports):
its settings, the client-area panel's request signature (the demo signs as WHMCS would); signups, the
consent ledger and the
account standing the client-area panel shows; and the two things an operator may ask of it: a new
verification email, and enrolling an existing customer (an import).

Both requests are events in the signup outbox, written in the caller's transaction, like the web's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, or_, select
from sqlalchemy.orm import Session

from services.signup.accounts import AccountView, account_view
from services.signup.panel_auth import PanelPurpose, panel_signature
from services.signup.schema import Signup, Stage, consents, signups, tables
from services.signup.settings import SignupSettings
from services.signup.store import consents_for, signup_by_client, signup_by_email_key
from services.signup.validation import email_key
from shared.events.enrollment import VerificationEmailRequested
from shared.events.imports import CustomerImported

__all__ = [
    "IMPORT_CONSENT_KIND",
    "AccountView",
    "Consent",
    "PanelPurpose",
    "Signup",
    "SignupSettings",
    "Stage",
    "account_view",
    "consents_of",
    "email_key",
    "import_customer",
    "latest_consents",
    "panel_signature",
    "queue_verification_resend",
    "signup_by_client",
    "signup_by_email",
    "signups_page",
    "tables",
]

# The consent ledger's record of an import: no terms were accepted on a page, an operator vouched.
IMPORT_CONSENT_KIND = "imported_by_operator"


@dataclass(frozen=True)
class Consent:
    email: str
    whmcs_client_id: int
    kind: str
    url: str
    version: str
    accepted_at: datetime
    ip_address: str | None
    user_agent: str | None
    signup_id: uuid.UUID


def _consent(row: Any) -> Consent:
    return Consent(
        row.email,
        row.whmcs_client_id,
        row.kind,
        row.url,
        row.version,
        row.accepted_at,
        row.ip_address,
        row.user_agent,
        row.signup_id,
    )


def signup_by_email(session: Session, email: str) -> Signup | None:
    return signup_by_email_key(session, email_key(email))


def consents_of(session: Session, *, email: str | None = None, whmcs_client_id: int | None = None) -> list[Consent]:
    rows = consents_for(session, email_key=email_key(email) if email else None, whmcs_client_id=whmcs_client_id)
    return [_consent(row) for row in rows]


def latest_consents(session: Session, limit: int = 50) -> list[Consent]:
    """The most recent acceptances, newest first."""
    return [_consent(row) for row in session.execute(select(consents).order_by(consents.c.id.desc()).limit(limit))]


def signups_page(
    session: Session, *, after: str = "", limit: int = 100, stage: Stage | None = None, search: str | None = None
) -> list[Signup]:
    """Signups by email after ``after`` (keyset paging); ``search`` matches the email, the name, the
    company or the WHMCS client id."""
    query = select(signups).where(signups.c.email_key > after)
    if stage is not None:
        query = query.where(signups.c.stage == stage.value)
    if search:
        needle = f"%{search.strip().casefold()}%"
        query = query.where(
            or_(
                signups.c.email_key.like(needle),
                signups.c.name.ilike(needle),
                signups.c.company.ilike(needle),
                cast(signups.c.whmcs_client_id, String) == search.strip(),
            )
        )
    rows = session.execute(query.order_by(signups.c.email_key).limit(limit))
    return [Signup.from_row(row) for row in rows]


def queue_verification_resend(session: Session, signup: Signup) -> uuid.UUID:
    """A new verification email for ``signup``, as the page's "send it again" asks; returns the event id."""
    event = VerificationEmailRequested(signup_id=signup.id, email=signup.email)
    return tables.outbox.add_event(session, event, correlation_id=signup.id).event_id


def import_customer(
    session: Session,
    *,
    email: str,
    name: str,
    company: str,
    whmcs_client_id: int,
    solusvm_user_id: int,
    enrolled_at: datetime,
    operator: str,
    note: str,
    now: datetime,
) -> uuid.UUID:
    """Enrol an existing customer: a signup at the provisioning stage, a consent record naming the
    operator, and a CustomerImported for the provisioner, in the caller's transaction.

    The caller checks first that neither the email nor the client has a signup (the unique keys would
    refuse it anyway) and that the SolusVM 2 user is nobody else's.
    """
    signup_id = uuid.uuid4()
    session.execute(
        signups.insert().values(
            id=signup_id,
            email=email,
            email_key=email_key(email),
            name=name[:100] or email[:100],
            company=company[:100],
            encrypted_password=None,
            registration_ip=None,
            stage=Stage.PROVISIONING.value,
            whmcs_client_id=whmcs_client_id,
            created_at=now,
            updated_at=now,
        )
    )
    session.execute(
        consents.insert().values(
            signup_id=signup_id,
            email=email,
            whmcs_client_id=whmcs_client_id,
            kind=IMPORT_CONSENT_KIND,
            url=f"imported by operator {operator}"[:2000],
            version=f"billed from {enrolled_at.date().isoformat()}",
            accepted_at=now,
            ip_address=None,
            user_agent=f"postpay customers import: {note}"[:500],
        )
    )
    event = CustomerImported(
        signup_id=signup_id,
        email=email,
        whmcs_client_id=whmcs_client_id,
        solusvm_user_id=solusvm_user_id,
        enrolled_at=enrolled_at,
        imported_by=operator[:200],
    )
    tables.outbox.add_event(session, event, correlation_id=signup_id)
    return signup_id
