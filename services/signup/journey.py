"""What the signup web does, without the web: register, resend, accept terms, watch progress.

Each step is one database transaction that records a fact and, when others must react, writes the
event to the signup outbox in that same transaction; ``on_commit`` then wakes the relay so the event
leaves at once. Upstream systems are never called from here: handlers do that, retried by the bus.
(Verifying the email address is in ``verification``.)

Nobody learns from an answer whether an address is a customer: registering or asking for a link
answers the same for a new address, one waiting for verification and one enrolled. What differs is
the email the address receives (a link, or how to log in), which only its owner reads.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.signup import store
from services.signup.schema import Signup, Stage
from services.signup.settings import SignupSettings
from services.signup.throttle import count_hit
from services.signup.tokens import BrowserSession
from services.signup.validation import Registration, email_key
from services.signup.vault import PasswordVault
from shared.clock import Clock
from shared.db import Database
from shared.events.enrollment import AcceptedTerms, TermsAccepted, UserRegistered, VerificationEmailRequested
from shared.logging import get_logger
from shared.service import ServiceTables

log = get_logger("postpay.signup")

SignupStatus = Literal["setting_up", "awaiting_verification", "awaiting_terms", "provisioning", "enrolled"]
STATUS_OF_STAGE: dict[Stage, SignupStatus] = {
    Stage.AWAITING_VERIFICATION: "awaiting_verification",
    Stage.LINKING_CLIENT: "setting_up",
    Stage.AWAITING_TERMS: "awaiting_terms",
    Stage.PROVISIONING: "provisioning",
    Stage.ENROLLED: "enrolled",
}


@dataclass(frozen=True)
class Registered:
    """Accepted: an email is on its way to the address. ``registration_id`` is what the registrant holds."""

    registration_id: uuid.UUID


@dataclass(frozen=True)
class RateLimited:
    retry_after_seconds: int


@dataclass(frozen=True)
class Progress:
    """What the holder of a registration may see: its signup's progress if it is the signup's current
    registration, and otherwise (replaced by a newer one, or made for an address already verified)
    "awaiting verification", for ever; so a registration tells nothing about anyone else."""

    registration_id: uuid.UUID
    email: str
    status: SignupStatus
    signup: Signup | None  # only for the current registration


@dataclass(frozen=True)
class TermsRecorded:
    signup_id: uuid.UUID


@dataclass(frozen=True)
class TermsMissing:
    missing: tuple[AcceptedTerms, ...]


@dataclass(frozen=True)
class WrongStage:
    signup: Signup | None


RegisterOutcome = Registered | RateLimited
AcceptOutcome = TermsRecorded | TermsMissing | WrongStage


def required_terms(settings: SignupSettings) -> tuple[AcceptedTerms, ...]:
    """The terms a customer must accept, as configured: the Terms of Service, and the post-pay terms when set."""
    terms = [
        AcceptedTerms(
            kind="terms_of_service", url=settings.terms_of_service_url, version=settings.terms_of_service_version
        )
    ]
    if settings.postpay_terms_url:
        terms.append(
            AcceptedTerms(kind="postpay_terms", url=settings.postpay_terms_url, version=settings.postpay_terms_version)
        )
    return tuple(terms)


def ip_bucket(client_ip: str | None) -> str:
    """What the per-IP limits count: the address, or for IPv6 its /64 (one subscriber's network holds
    2^64 addresses, so counting addresses would limit nothing)."""
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return "unknown"
    return str(ipaddress.ip_network(f"{address}/64", strict=False)) if address.version == 6 else str(address)


class SignupJourney:
    def __init__(
        self,
        db: Database,
        tables: ServiceTables,
        settings: SignupSettings,
        vault: PasswordVault,
        clock: Clock,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.outbox = tables.outbox
        self.settings = settings
        self.vault = vault
        self.clock = clock
        self._on_commit = on_commit

    def committed_events(self) -> None:
        if self._on_commit is not None:
            try:
                self._on_commit()
            except Exception:
                log.warning("could not wake the outbox relay")

    # Rate limits -----------------------------------------------------------------------------------

    def limited(self, action: str, checks: list[tuple[str, str, int]]) -> RateLimited | None:
        """Count this attempt against every (kind, value, limit); limited if any is over."""
        now = self.clock()
        window = self.settings.rate_limit_window_seconds
        with self.db.transaction() as session:
            over = [
                kind
                for kind, value, limit in checks
                if count_hit(session, f"{action}:{kind}:{value}", now, window) > limit
            ]
        if not over:
            return None
        log.warning("rate limit reached", action=action, by=over)
        return RateLimited(retry_after_seconds=window - int(now.timestamp()) % window)

    # Registration ----------------------------------------------------------------------------------

    def register(self, registration: Registration, client_ip: str | None) -> RegisterOutcome:
        """Accept a registration. A new address gets a signup; a newer registration of an address still
        waiting for verification replaces the older one (name, company, password) and kills its links;
        an address verified already keeps everything and is mailed a link or how to log in."""
        key = registration.email_key
        limited = self.limited(
            "register",
            [
                ("ip", ip_bucket(client_ip), self.settings.registrations_per_ip),
                ("email", key, self.settings.registrations_per_email),
            ],
        )
        if limited:
            return limited
        registration_id = uuid.uuid4()
        encrypted = self.vault.encrypt(registration.password)
        for attempt in range(2):
            try:
                with self.db.transaction() as session:
                    what = self._register(session, registration, registration_id, encrypted, client_ip)
                break
            except IntegrityError:
                # The same email registered at the same moment elsewhere (another tab, another replica):
                # the second try finds that signup.
                if attempt:
                    raise
        self.committed_events()
        log.info("registration", what=what, registration_id=str(registration_id))
        return Registered(registration_id)

    def _register(
        self,
        session: Session,
        registration: Registration,
        registration_id: uuid.UUID,
        encrypted: str,
        client_ip: str | None,
    ) -> str:
        now = self.clock()
        existing = store.signup_by_email_key(session, registration.email_key, lock=True)
        if existing is None:
            store.insert_signup(
                session,
                signup_id=registration_id,
                email=registration.email,
                email_key=registration.email_key,
                name=registration.name,
                company=registration.company,
                encrypted_password=encrypted,
                registration_ip=client_ip,
                now=now,
                currency=registration.currency,
                country=registration.country,
            )
            self._announce(session, registration_id, registration_id, registration)
            return "new"
        replaced = existing.stage == Stage.AWAITING_VERIFICATION and store.replace_registration(
            session,
            existing.id,
            registration_id=registration_id,
            name=registration.name,
            company=registration.company,
            encrypted_password=encrypted,
            registration_ip=client_ip,
            now=now,
            currency=registration.currency,
            country=registration.country,
        )
        if replaced:
            store.revoke_links(session, existing.id, "verify", now)
            self._announce(session, existing.id, registration_id, registration)
            return "replaced"
        # Verified already: the new details are dropped (the account keeps the verified registration's).
        store.add_registration(session, registration_id=registration_id, signup_id=existing.id, now=now)
        self.outbox.add_event(
            session, VerificationEmailRequested(signup_id=existing.id, email=existing.email), correlation_id=existing.id
        )
        return "verified already"

    def _announce(
        self, session: Session, signup_id: uuid.UUID, registration_id: uuid.UUID, registration: Registration
    ) -> None:
        event = UserRegistered(
            signup_id=signup_id, email=registration.email, name=registration.name, company=registration.company
        )
        # The event's id is the registration's: its handler mails a link only while it is the current one.
        self.outbox.add_event(session, event, event_id=registration_id, correlation_id=signup_id)

    # Resending the link ----------------------------------------------------------------------------

    def resend(
        self, *, client_ip: str | None, registration_id: uuid.UUID | None = None, email: str | None = None
    ) -> Registered | RateLimited | None:
        """Mail the address a new link (or, once its terms are accepted, how to log in). None when the
        registration id is unknown; an unknown email answers like a known one."""
        key = email_key(email) if email is not None else None
        with self.db.transaction() as session:
            signup = (
                store.signup_of_registration(session, registration_id)
                if registration_id is not None
                else store.signup_by_email_key(session, key or "")
            )
        if registration_id is not None and signup is None:
            return None
        checks = [
            ("ip", ip_bucket(client_ip), self.settings.resends_per_ip),
            ("email", key or (email_key(signup.email) if signup else "none"), self.settings.resends_per_email),
        ]
        limited = self.limited("resend", checks)
        if limited:
            return limited
        answer = Registered(registration_id or uuid.uuid4())
        if signup is None:
            return answer
        if (
            registration_id is not None
            and not signup.is_current(registration_id)
            and not signup.reached(Stage.PROVISIONING)
        ):
            return answer  # a replaced registration asks for nothing on behalf of the newer one
        with self.db.transaction() as session:
            event = VerificationEmailRequested(signup_id=signup.id, email=signup.email)
            self.outbox.add_event(session, event, correlation_id=signup.id)
        self.committed_events()
        return answer

    # Terms -----------------------------------------------------------------------------------------

    def accept_terms(
        self, browser: BrowserSession, ticked: set[str], *, client_ip: str | None, user_agent: str | None
    ) -> AcceptOutcome:
        terms = required_terms(self.settings)
        missing = tuple(term for term in terms if term.kind not in ticked)
        if missing:
            return TermsMissing(missing)
        if browser.signup_id is None:
            return WrongStage(None)
        now = self.clock()
        with self.db.transaction() as session:
            signup = store.get_signup(session, browser.signup_id, lock=True)
            if signup is None or signup.stage != Stage.AWAITING_TERMS or signup.whmcs_client_id is None:
                return WrongStage(signup)
            for term in terms:
                store.add_consent(
                    session,
                    signup_id=signup.id,
                    email=signup.email,
                    whmcs_client_id=signup.whmcs_client_id,
                    kind=term.kind,
                    url=term.url,
                    version=term.version,
                    accepted_at=now,
                    ip_address=(client_ip or None),
                    user_agent=(user_agent or "")[:500] or None,
                )
            store.advance(session, signup.id, Stage.PROVISIONING, now, terms_accepted_at=now)
            store.revoke_links(session, signup.id, "verify", now)  # from now on the way in is the client area
            event = TermsAccepted(
                signup_id=signup.id,
                email=signup.email,
                whmcs_client_id=signup.whmcs_client_id,
                accepted=terms,
                accepted_at=now,
            )
            self.outbox.add_event(session, event, correlation_id=signup.id)
        self.committed_events()
        log.info("terms accepted", signup_id=str(signup.id), versions=[f"{t.kind}@{t.version}" for t in terms])
        return TermsRecorded(signup.id)

    # Reading ---------------------------------------------------------------------------------------

    def progress(self, registration_id: uuid.UUID) -> Progress | None:
        with self.db.transaction() as session:
            signup = store.signup_of_registration(session, registration_id)
        if signup is None:
            return None
        if not signup.is_current(registration_id):
            return Progress(registration_id, signup.email, "awaiting_verification", None)
        return Progress(registration_id, signup.email, STATUS_OF_STAGE[signup.stage], signup)

    def signup(self, signup_id: uuid.UUID) -> Signup | None:
        with self.db.transaction() as session:
            return store.get_signup(session, signup_id)

    def session_lifetime(self) -> timedelta:
        return timedelta(days=self.settings.session_days)

    def sso_window(self) -> timedelta:
        return timedelta(minutes=self.settings.signup_sso_minutes)

    def may_sso_here(self, browser: BrowserSession | None) -> bool:
        """Single sign-on from the signup site: only in the browser that accepted the terms, and only
        for ``signup_sso_minutes`` after that; later the way in is the WHMCS client area."""
        return (
            browser is not None
            and browser.level == "accepted"
            and self.clock() - browser.issued_at <= self.sso_window()
        )

    def now(self) -> datetime:
        return self.clock()
