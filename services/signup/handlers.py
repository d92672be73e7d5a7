"""The signup service's event handlers: WHMCS client, verification emails, terms unlock, enrollment.

Upstream calls happen before the handler's own transaction is touched: on SQLite that transaction
holds the write lock, and nobody should wait on it while WHMCS or SMTP answers. What must survive a
later failure (the WHMCS client id, a link that an email is about to carry) commits first, in a
transaction of its own.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from services.signup import store
from services.signup.emails import verification_email, welcome_email
from services.signup.settings import SignupSettings
from services.signup.store import Signup, Stage
from services.signup.tokens import Signer, mint_link
from services.signup.validation import split_name
from services.signup.vault import PasswordVault
from shared.bus.processing import HandlerContext
from shared.errors import PermanentError
from shared.events.base import deterministic_event_id
from shared.events.enrollment import EmailVerified, UserProvisioned, UserRegistered, VerificationEmailRequested


def _signup(ctx: HandlerContext, signup_id: uuid.UUID) -> Signup:
    with ctx.separate_transaction() as session:
        signup = store.get_signup(session, signup_id)
    if signup is None:
        raise PermanentError(f"signup {signup_id} does not exist")
    return signup


def create_client_and_send_verification(
    event: UserRegistered, ctx: HandlerContext, *, whmcs: Any, mailer: Any, vault: PasswordVault,
    signer: Signer, settings: SignupSettings,
) -> None:  # fmt: skip
    """Find or create the WHMCS client (the password becomes its login), erase the password, then
    email the verification link."""
    signup = _signup(ctx, event.signup_id)
    if signup.whmcs_client_id is None:
        if signup.encrypted_password is None:
            raise PermanentError(f"signup {signup.id} has neither a WHMCS client nor a password")
        firstname, lastname = split_name(signup.name)
        client = whmcs.find_or_add_client(
            firstname=firstname, lastname=lastname, email=signup.email, password=vault.decrypt(signup.encrypted_password),
            companyname=signup.company, country=settings.whmcs_default_country, clientip=signup.registration_ip,
        )  # fmt: skip
        with ctx.separate_transaction() as session:
            store.record_whmcs_client(session, signup.id, client.id, ctx.now())
        ctx.log.info("WHMCS client ready; password erased", signup_id=str(signup.id), whmcs_client_id=client.id)
    if signup.reached(Stage.AWAITING_TERMS):
        return  # a replayed registration of a verified email: there is nothing left to verify
    _send_verification(ctx, signup, mailer=mailer, signer=signer, settings=settings)


def send_new_verification(
    event: VerificationEmailRequested, ctx: HandlerContext, *, mailer: Any, signer: Signer, settings: SignupSettings
) -> None:
    signup = _signup(ctx, event.signup_id)
    if signup.whmcs_client_id is None:
        return  # the registration handler sends the first link once the client exists
    if signup.reached(Stage.PROVISIONING):
        return  # nothing left to verify
    _send_verification(ctx, signup, mailer=mailer, signer=signer, settings=settings)


def _send_verification(ctx: HandlerContext, signup: Signup, *, mailer: Any, signer: Signer, settings: SignupSettings) -> None:
    # The link's id follows from the event: a retry sends the same link, and a resend a new one.
    link_id = deterministic_event_id(ctx.event_id, "verification-link")
    with ctx.separate_transaction() as session:
        link = store.ensure_link(
            session, link_id=link_id, signup_id=signup.id, purpose="verify", now=ctx.now(),
            lifetime=timedelta(hours=settings.verification_link_hours),
        )  # fmt: skip
    url = f"{settings.public_url}/verify/{mint_link(signer, 'verify', link.id, link.expires_at)}"
    email = verification_email(to=signup.email, name=signup.name, link=url, expires_at=link.expires_at,
                               brand=settings.brand_name)  # fmt: skip
    mailer.send(email, idempotency_key=f"verify-{link.id}")
    store.mark_verification_sent(ctx.session, signup.id, ctx.now())
    ctx.log.info("verification email sent", signup_id=str(signup.id))


def unlock_terms(event: EmailVerified, ctx: HandlerContext) -> None:
    """The email is verified: the customer may now accept the terms."""
    moved = store.advance(ctx.session, event.signup_id, Stage.AWAITING_TERMS, ctx.now(),
                          email_verified_at=event.verified_at)  # fmt: skip
    ctx.log.info("terms step unlocked" if moved else "terms step was already unlocked", signup_id=str(event.signup_id))


def complete_enrollment(
    event: UserProvisioned, ctx: HandlerContext, *, mailer: Any, settings: SignupSettings
) -> None:
    """Mark the customer enrolled (at once, so the page shows the login button), then welcome them."""
    with ctx.separate_transaction() as session:
        signup = store.get_signup(session, event.signup_id, lock=True)
        if signup is None:
            raise PermanentError(f"signup {event.signup_id} does not exist")
        store.advance(session, signup.id, Stage.ENROLLED, ctx.now(), solusvm_user_id=event.solusvm_user_id,
                      enrolled_at=event.enrolled_at)  # fmt: skip
    if signup.welcome_sent_at is None:
        email = welcome_email(to=signup.email, name=signup.name, client_area_url=settings.whmcs_client_area_url,
                              brand=settings.brand_name)  # fmt: skip
        mailer.send(email, idempotency_key=f"welcome-{signup.id}")
        store.mark_welcome_sent(ctx.session, signup.id, ctx.now())
    ctx.log.info("customer enrolled", signup_id=str(signup.id), solusvm_user_id=event.solusvm_user_id)
