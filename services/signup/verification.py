"""Verifying the email address: the emailed link, and the proof that the one confirming it registered.

A link proves that its holder reads the mailbox; it does not prove whose registration it confirms.
An attacker may register the victim's address again right before the victim opens their email, so
the newest link would confirm the attacker's registration (and password). Confirming a registration
still waiting for verification therefore also takes proof of being its registrant: the browser it was
made in, or its password. Once verified, a registration can no longer be replaced, and a link only
lets another browser of the mailbox's owner continue to the terms; after the terms, no link works.

Issuing a link revokes every older one, and using one revokes the rest: only the newest link of an
address ever works.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from services.signup import store
from services.signup.journey import RateLimited, SignupJourney
from services.signup.schema import Link, Signup, Stage
from services.signup.tokens import BadToken, BrowserSession, LinkClaims, Signer, read_link
from services.signup.vault import UndecryptablePassword
from shared.events.enrollment import EmailVerified
from shared.logging import get_logger

log = get_logger("postpay.signup")

LinkProblemKind = Literal["invalid", "expired", "used", "replaced", "finished", "foreign", "locked"]


@dataclass(frozen=True)
class LinkProblem:
    kind: LinkProblemKind
    signup: Signup | None = None


@dataclass(frozen=True)
class LinkUsable:
    """A verification link that would work now; looking at it changed nothing. ``needs_password``: this
    browser did not make the registration, so confirming it takes the registration's password."""

    signup: Signup
    needs_password: bool


@dataclass(frozen=True)
class Verified:
    signup: Signup


@dataclass(frozen=True)
class ProofNeeded:
    """Not confirmed: the registration's password is needed (``wrong``: the one typed is not it)."""

    signup: Signup
    wrong: bool


class Verification:
    def __init__(self, journey: SignupJourney, signer: Signer) -> None:
        self.journey = journey
        self.db = journey.db
        self.signer = signer

    def check_link(self, token: str, browser: BrowserSession | None) -> LinkUsable | LinkProblem:
        """Whether a verification link would work now, without using it.

        Mail gateways (Microsoft Safe Links and the like) fetch the links in an email before the customer
        does; a link used up by that fetch would greet the customer with "already used" every time. So
        opening the link only looks (this), and the page's button uses it (``verify``). Same checks, same
        order, same outcomes as ``verify``; nothing is written.
        """
        try:
            claims = read_link(self.signer, "verify", token)
        except BadToken:
            return LinkProblem("invalid")
        with self.db.transaction() as session:
            found = _usable_link(session, claims, self.journey.now())
        if isinstance(found, LinkProblem):
            return found
        signup = found[1]
        return LinkUsable(signup, signup.stage == Stage.AWAITING_VERIFICATION and not _registered_here(signup, browser))

    def verify(
        self, token: str, browser: BrowserSession | None, password: str | None
    ) -> Verified | ProofNeeded | LinkProblem | RateLimited:
        """Use a verification link once. The first time, the email is verified: the ``EmailVerified``
        handler then finds or creates the WHMCS client and unlocks the terms."""
        try:
            claims = read_link(self.signer, "verify", token)
        except BadToken:
            return LinkProblem("invalid")
        if password is not None:
            limited = self.journey.limited(
                "confirm", [("link", str(claims.link_id), self.journey.settings.password_confirmations_per_link)]
            )
            if limited:
                return limited
        now = self.journey.now()
        with self.db.transaction() as session:
            found = _usable_link(session, claims, now)
            if isinstance(found, LinkProblem):
                return found
            link, signup = found
            first_time = signup.stage == Stage.AWAITING_VERIFICATION
            if first_time and not _registered_here(signup, browser):
                if password is None or not self._is_registrations_password(signup, password):
                    log.warning(
                        "verification link confirmed without proof of the registration",
                        signup_id=str(signup.id),
                        password_typed=password is not None,
                    )
                    return ProofNeeded(signup, wrong=password is not None)
            if not store.use_link(session, link.id, now):
                return LinkProblem("used", signup)
            store.revoke_links(session, signup.id, "verify", now, keep=link.id)
            if first_time:
                store.advance(session, signup.id, Stage.LINKING_CLIENT, now, email_verified_at=now)
                event = EmailVerified(signup_id=signup.id, email=signup.email, verified_at=now)
                self.journey.outbox.add_event(session, event, correlation_id=signup.id)
        if first_time:
            self.journey.committed_events()
        log.info("email link used", signup_id=str(signup.id), first_time=first_time)
        return Verified(signup)

    def _is_registrations_password(self, signup: Signup, password: str) -> bool:
        if signup.encrypted_password is None:
            return False
        try:
            stored = self.journey.vault.decrypt(signup.encrypted_password).get_secret_value()
        except UndecryptablePassword:
            return False
        return hmac.compare_digest(stored.encode("utf-8"), password.encode("utf-8"))

    def signup_of_link(self, token: str) -> Signup | None:
        """The signup an (even expired) genuine verification link belongs to."""
        try:
            claims = read_link(self.signer, "verify", token)
        except BadToken:
            return None
        with self.db.transaction() as session:
            link = store.get_link(session, claims.link_id, "verify")
            return store.get_signup(session, link.signup_id) if link is not None else None


def _registered_here(signup: Signup, browser: BrowserSession | None) -> bool:
    """The browser holds the signup's current registration (it submitted the form that made it)."""
    return browser is not None and browser.registration_id is not None and signup.is_current(browser.registration_id)


def _usable_link(session: Session, claims: LinkClaims, now: datetime) -> tuple[Link, Signup] | LinkProblem:
    """The link and its signup if the link may be used now; otherwise why not. Reads only."""
    link = store.get_link(session, claims.link_id, "verify")
    signup = store.get_signup(session, link.signup_id) if link is not None else None
    if link is None or signup is None:
        return LinkProblem("invalid")
    if link.used_at is not None:
        return LinkProblem("used", signup)
    if link.revoked_at is not None:
        return LinkProblem("finished" if signup.reached(Stage.PROVISIONING) else "replaced", signup)
    if signup.reached(Stage.PROVISIONING):
        return LinkProblem("finished", signup)
    if claims.expired(now) or now >= link.expires_at:
        return LinkProblem("expired", signup)
    return link, signup
