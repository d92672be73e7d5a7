"""Events of the enrollment journey (signup and provisioner).

    UserRegistered --signup--> (verification email)
    VerificationEmailRequested --signup--> (a fresh verification email, or "you are enrolled: log in")
    EmailVerified --signup--> (WHMCS client found or created, terms step unlocked)
    TermsAccepted --provisioner--> (SolusVM 2 user) --> UserProvisioned --signup--> (enrolled, welcome email)

Nothing is created upstream before the email is verified. No event carries a password: it stays
encrypted in the signup service's own table until the WHMCS client exists, and is erased then.
Handlers act on the signup service's own record, not on what an event claims: a forged event moves no
signup that did not get there. Consent details (IP address, user agent) stay in signup's consent
ledger; events say only which terms were accepted and when.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import Event, UtcDateTime
from shared.events.fields import ClientId, EmailAddress, ShortText, SolusUserId


class UserRegistered(Event):
    """A registration was accepted (the first of an address, or a newer one replacing a registration
    still waiting for verification); the customer must now verify the email address. The event id is
    the registration's id."""

    producers = ("signup",)

    signup_id: uuid.UUID
    email: EmailAddress
    name: ShortText = Field(min_length=1)
    company: ShortText = ""


class VerificationEmailRequested(Event):
    """Someone asked for a new verification link, or registered an address that is verified already
    (rate-limited by the signup web). The address gets a link, or, once the terms are accepted, an email
    saying how to log in: nobody learns which from the answer."""

    producers = ("signup",)

    signup_id: uuid.UUID
    email: EmailAddress


class EmailVerified(Event):
    """The customer confirmed a verification link: the WHMCS client is now found or created, then the
    terms step is unlocked. ``whmcs_client_id`` is set only by producers from before the client was
    created after verification."""

    producers = ("signup",)

    signup_id: uuid.UUID
    email: EmailAddress
    whmcs_client_id: ClientId | None = None
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
