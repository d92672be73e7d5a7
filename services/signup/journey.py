"""What the signup web does, without the web: register, resend, verify, accept terms, watch progress.

Each step is one database transaction that records a fact and, when others must react, writes the
event to the signup outbox in that same transaction; ``on_commit`` then wakes the relay so the event
leaves at once. Upstream systems are never called from here: handlers do that, retried by the bus.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from services.signup import store
from services.signup.settings import SignupSettings
from services.signup.store import Link, Signup, Stage
from services.signup.tokens import BadToken, LinkClaims, Session, Signer, read_link
from services.signup.validation import Registration, email_key
from services.signup.vault import PasswordVault
from shared.clock import Clock
from shared.db import Database
from shared.events.enrollment import (
    AcceptedTerms,
    EmailVerified,
    TermsAccepted,
    UserRegistered,
    VerificationEmailRequested,
)
from shared.logging import get_logger
from shared.service import ServiceTables

log = get_logger("postpay.signup")


@dataclass(frozen=True)
class Registered:
    signup_id: uuid.UUID


@dataclass(frozen=True)
class AlreadyRegistered:
    """The email has a signup in progress: a new link is on its way (or the first one still is)."""

    signup_id: uuid.UUID


@dataclass(frozen=True)
class AlreadyEnrolled:
    signup_id: uuid.UUID


@dataclass(frozen=True)
class RateLimited:
    retry_after_seconds: int


@dataclass(frozen=True)
class ResendQueued:
    signup_id: uuid.UUID


@dataclass(frozen=True)
class FirstLinkPending:
    """The WHMCS client is still being created; the first verification email follows it."""

    signup_id: uuid.UUID


@dataclass(frozen=True)
class LinkUsable:
    """A verification link that would work now; looking at it changed nothing."""

    signup: Signup


@dataclass(frozen=True)
class Verified:
    signup: Signup


LinkProblemKind = Literal["invalid", "expired", "used", "foreign", "locked"]


@dataclass(frozen=True)
class LinkProblem:
    kind: LinkProblemKind
    signup: Signup | None = None


@dataclass(frozen=True)
class TermsRecorded:
    signup_id: uuid.UUID


@dataclass(frozen=True)
class TermsMissing:
    missing: tuple[AcceptedTerms, ...]


@dataclass(frozen=True)
class WrongStage:
    signup: Signup | None


RegisterOutcome = Registered | AlreadyRegistered | AlreadyEnrolled | RateLimited
ResendOutcome = ResendQueued | FirstLinkPending | AlreadyEnrolled | RateLimited | None
AcceptOutcome = TermsRecorded | TermsMissing | WrongStage


def required_terms(settings: SignupSettings) -> tuple[AcceptedTerms, ...]:
    """The terms a customer must accept, as configured: the Terms of Service, and the post-pay terms when set."""
    terms = [AcceptedTerms(kind="terms_of_service", url=settings.terms_of_service_url,
                           version=settings.terms_of_service_version)]  # fmt: skip
    if settings.postpay_terms_url:
        terms.append(AcceptedTerms(kind="postpay_terms", url=settings.postpay_terms_url,
                                   version=settings.postpay_terms_version))  # fmt: skip
    return tuple(terms)


class SignupJourney:
    def __init__(
        self,
        db: Database,
        tables: ServiceTables,
        settings: SignupSettings,
        vault: PasswordVault,
        signer: Signer,
        clock: Clock,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.outbox = tables.outbox
        self.settings = settings
        self.vault = vault
        self.signer = signer
        self.clock = clock
        self._on_commit = on_commit

    def committed_events(self) -> None:
        if self._on_commit is not None:
            try:
                self._on_commit()
            except Exception:  # noqa: BLE001 - the relay polls anyway; a failed wake-up only delays
                log.warning("could not wake the outbox relay")

    # Rate limits -----------------------------------------------------------------------------------

    def _limited(self, action: str, checks: list[tuple[str, str, int]]) -> RateLimited | None:
        """Count this attempt against every (kind, value, limit); limited if any is over."""
        now = self.clock()
        window = self.settings.rate_limit_window_seconds
        with self.db.transaction() as session:
            over = [kind for kind, value, limit in checks
                    if store.count_hit(session, f"{action}:{kind}:{value}", now, window) > limit]  # fmt: skip
        if not over:
            return None
        log.warning("rate limit reached", action=action, by=over)
        return RateLimited(retry_after_seconds=window - int(now.timestamp()) % window)

    # Registration ----------------------------------------------------------------------------------

    def register(self, registration: Registration, client_ip: str | None) -> RegisterOutcome:
        key = registration.email_key
        limited = self._limited("register", [("ip", client_ip or "unknown", self.settings.registrations_per_ip),
                                             ("email", key, self.settings.registrations_per_email)])  # fmt: skip
        if limited:
            return limited
        signup_id = uuid.uuid4()
        encrypted = self.vault.encrypt(registration.password)
        try:
            with self.db.transaction() as session:
                existing = store.signup_by_email_key(session, key)
                if existing is not None:
                    outcome = self._registered_again(session, existing)
                else:
                    store.insert_signup(
                        session, signup_id=signup_id, email=registration.email, email_key=key,
                        name=registration.name, company=registration.company, encrypted_password=encrypted,
                        registration_ip=client_ip, now=self.clock(),
                    )  # fmt: skip
                    event = UserRegistered(signup_id=signup_id, email=registration.email,
                                           name=registration.name, company=registration.company)  # fmt: skip
                    self.outbox.add_event(session, event, correlation_id=signup_id)
                    outcome = Registered(signup_id)
        except IntegrityError:
            # The same email registered at the same moment elsewhere (another tab, another replica).
            with self.db.transaction() as session:
                existing = store.signup_by_email_key(session, key)
                if existing is None:
                    raise
                outcome = self._registered_again(session, existing)
        self.committed_events()
        log.info("registration", outcome=type(outcome).__name__, signup_id=str(outcome.signup_id))
        return outcome

    def _registered_again(self, session: DbSession, existing: Signup) -> RegisterOutcome:
        """The email is known. The new password is dropped: the account keeps the first one."""
        if existing.reached(Stage.PROVISIONING):
            return AlreadyEnrolled(existing.id)
        if existing.reached(Stage.AWAITING_VERIFICATION):
            self._queue_resend(session, existing)
        return AlreadyRegistered(existing.id)

    def _queue_resend(self, session: DbSession, signup: Signup) -> None:
        event = VerificationEmailRequested(signup_id=signup.id, email=signup.email)
        self.outbox.add_event(session, event, correlation_id=signup.id)

    # Resending the link ----------------------------------------------------------------------------

    def resend(self, *, client_ip: str | None, signup_id: uuid.UUID | None = None, email: str | None = None) -> ResendOutcome:
        """Queue a new verification email; None when no signup matches (callers may not say so)."""
        key = email_key(email) if email is not None else None
        with self.db.transaction() as session:
            signup = (store.get_signup(session, signup_id) if signup_id is not None
                      else store.signup_by_email_key(session, key or ""))  # fmt: skip
        checks = [("ip", client_ip or "unknown", self.settings.resends_per_ip)]
        checks.append(("email", key or (email_key(signup.email) if signup else "none"), self.settings.resends_per_email))
        limited = self._limited("resend", checks)
        if limited or signup is None:
            return limited
        if signup.reached(Stage.PROVISIONING):
            return AlreadyEnrolled(signup.id)
        if not signup.reached(Stage.AWAITING_VERIFICATION):
            return FirstLinkPending(signup.id)
        with self.db.transaction() as session:
            self._queue_resend(session, signup)
        self.committed_events()
        return ResendQueued(signup.id)

    # Verification ----------------------------------------------------------------------------------

    def check_link(self, token: str) -> LinkUsable | LinkProblem:
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
            found = self._usable_link(session, claims, self.clock())
        return found if isinstance(found, LinkProblem) else LinkUsable(found[1])

    def verify(self, token: str) -> Verified | LinkProblem:
        """Use a verification link once. The signup's terms step is unlocked by the EmailVerified handler."""
        try:
            claims = read_link(self.signer, "verify", token)
        except BadToken:
            return LinkProblem("invalid")
        now = self.clock()
        with self.db.transaction() as session:
            found = self._usable_link(session, claims, now)
            if isinstance(found, LinkProblem):
                return found
            link, signup = found
            if not store.use_link(session, link.id, now):
                return LinkProblem("used", signup)
            first_time = signup.stage == Stage.AWAITING_VERIFICATION
            if first_time:
                assert signup.whmcs_client_id is not None  # checked by _usable_link
                event = EmailVerified(signup_id=signup.id, email=signup.email,
                                      whmcs_client_id=signup.whmcs_client_id, verified_at=now)  # fmt: skip
                self.outbox.add_event(session, event, correlation_id=signup.id)
        if first_time:
            self.committed_events()
        log.info("email link used", signup_id=str(signup.id), first_time=first_time)
        return Verified(signup)

    @staticmethod
    def _usable_link(session: DbSession, claims: LinkClaims, now: datetime) -> tuple[Link, Signup] | LinkProblem:
        """The link and its signup if the link may be used now; otherwise why not. Reads only."""
        link = store.get_link(session, claims.link_id, "verify")
        signup = store.get_signup(session, link.signup_id) if link is not None else None
        if link is None or signup is None or signup.whmcs_client_id is None:
            return LinkProblem("invalid")
        if link.used_at is not None:
            return LinkProblem("used", signup)
        if claims.expired(now) or now >= link.expires_at:
            return LinkProblem("expired", signup)
        return link, signup

    def signup_of_link(self, token: str) -> Signup | None:
        """The signup an (even expired) genuine verification link belongs to."""
        try:
            claims = read_link(self.signer, "verify", token)
        except BadToken:
            return None
        with self.db.transaction() as session:
            link = store.get_link(session, claims.link_id, "verify")
            return store.get_signup(session, link.signup_id) if link is not None else None

    # Terms -----------------------------------------------------------------------------------------

    def accept_terms(
        self, browser: Session, ticked: set[str], *, client_ip: str | None, user_agent: str | None
    ) -> AcceptOutcome:
        terms = required_terms(self.settings)
        missing = tuple(term for term in terms if term.kind not in ticked)
        if missing:
            return TermsMissing(missing)
        if not browser.verified:
            return WrongStage(None)
        now = self.clock()
        with self.db.transaction() as session:
            signup = store.get_signup(session, browser.signup_id, lock=True)
            if signup is None or signup.stage != Stage.AWAITING_TERMS or signup.whmcs_client_id is None:
                return WrongStage(signup)
            for term in terms:
                store.add_consent(
                    session, signup_id=signup.id, email=signup.email, whmcs_client_id=signup.whmcs_client_id,
                    kind=term.kind, url=term.url, version=term.version, accepted_at=now,
                    ip_address=(client_ip or None), user_agent=(user_agent or "")[:500] or None,
                )  # fmt: skip
            store.advance(session, signup.id, Stage.PROVISIONING, now, terms_accepted_at=now)
            event = TermsAccepted(signup_id=signup.id, email=signup.email, whmcs_client_id=signup.whmcs_client_id,
                                  accepted=terms, accepted_at=now)  # fmt: skip
            self.outbox.add_event(session, event, correlation_id=signup.id)
        self.committed_events()
        log.info("terms accepted", signup_id=str(signup.id), versions=[f"{t.kind}@{t.version}" for t in terms])
        return TermsRecorded(signup.id)

    # Reading ---------------------------------------------------------------------------------------

    def signup(self, signup_id: uuid.UUID) -> Signup | None:
        with self.db.transaction() as session:
            return store.get_signup(session, signup_id)

    def session_lifetime(self) -> timedelta:
        return timedelta(days=self.settings.session_days)

    def now(self) -> datetime:
        return self.clock()
