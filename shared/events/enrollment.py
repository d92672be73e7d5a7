"""Events of the enrollment journey (signup and provisioner).

    UserRegistered --signup--> (WHMCS client, verification email)
    VerificationEmailRequested --signup--> (a fresh verification email)
    EmailVerified --signup--> (terms step unlocked)
    TermsAccepted --provisioner--> (SolusVM 2 user) --> UserProvisioned --signup--> (enrolled, welcome email)

No event carries a password: it stays encrypted in the signup service's own table until the WHMCS
client exists, and is erased then. Consent details (IP address, user agent) stay in signup's consent
ledger; events say only which terms were accepted and when.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import Event, UtcDateTime
from shared.events.fields import ClientId, EmailAddress, ShortText, SolusUserId


class UserRegistered(Event):
    """A registration was accepted; the customer must now verify the email address."""

    producers = ("signup",)

    signup_id: uuid.UUID
    email: EmailAddress
    name: ShortText = Field(min_length=1)
    company: ShortText = ""


class VerificationEmailRequested(Event):
    """The customer asked for a new verification link (rate-limited by the signup web)."""

    producers = ("signup",)

    signup_id: uuid.UUID
    email: EmailAddress


class EmailVerified(Event):
    """The customer opened a verification link; the terms step is unlocked."""

    producers = ("signup",)

    signup_id: uuid.UUID
    email: EmailAddress
    whmcs_client_id: ClientId
    verified_at: UtcDateTime


class AcceptedTerms(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["terms_of_service", "postpay_terms"]
    url: str = Field(min_length=1, max_length=2000)
    version: str = Field(min_length=1, max_length=100)


class TermsAccepted(Event):
    """Every required set of terms was accepted; the customer can be provisioned."""

    producers = ("signup",)

    signup_id: uuid.UUID
    email: EmailAddress
    whmcs_client_id: ClientId
    accepted: tuple[AcceptedTerms, ...] = Field(min_length=1)
    accepted_at: UtcDateTime


class UserProvisioned(Event):
    """The SolusVM 2 user exists and is tied to the WHMCS client: the customer is enrolled."""

    producers = ("provisioner",)

    signup_id: uuid.UUID
    email: EmailAddress
    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    enrolled_at: UtcDateTime
