"""The signup service's tables and the rows read from them (the queries on them are in ``store``).

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
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, String, Table, Text, Uuid

from shared.db import UtcTimestamp
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
