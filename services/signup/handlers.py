"""The signup service's event handlers: verification emails, the WHMCS client, enrollment.

Nothing is created upstream before the email address is verified: the registration's handler only
mails a link, and the WHMCS client is found or created by the handler of ``EmailVerified``. Handlers act
on the signup service's own record, not on what an event claims, so an event published by someone
else (a replay, a forgery) moves no signup that did not get there and mails nobody anything new.

Upstream calls happen before the handler's own transaction is touched: on SQLite that transaction
holds the write lock, and nobody should wait on it while WHMCS or SMTP answers. What must survive a
later failure (the WHMCS client id, a link that an email is about to carry) commits first, in a
transaction of its own.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from services.signup import accounts, figures_store, store
from services.signup.emails import already_enrolled_email, verification_email, welcome_email
from services.signup.schema import Signup, Stage
from services.signup.settings import SignupSettings
from services.signup.tokens import Signer, mint_link
from services.signup.validation import email_key, split_name
from services.signup.vault import PasswordVault
from shared.bus.handler_context import DatabaseContext, HandlerContext
from shared.bus.topology import Events
from shared.errors import PermanentError
from shared.events.accounts import (
    CustomerEmailChanged,
    InvoiceOverdue,
    InvoicePaid,
    UserLocked,
    UserReactivated,
    UserSuspended,
)
from shared.events.base import deterministic_event_id
from shared.events.billing import InvoiceCreated
from shared.events.enrollment import EmailVerified, UserProvisioned, UserRegistered, VerificationEmailRequested
from shared.events.usage import UsageToDateReported
from shared.ports import Mailer, SolusVM, Whmcs
from shared.upstream.errors import UpstreamNotFound


def _signup(ctx: HandlerContext, signup_id: uuid.UUID) -> Signup:
    with ctx.read_first() as session:
        signup = store.get_signup(session, signup_id)
    if signup is None:
        raise PermanentError(f"signup {signup_id} does not exist")
    return signup


def send_verification(
    event: UserRegistered, ctx: HandlerContext, *, mailer: Mailer, signer: Signer, settings: SignupSettings
) -> None:
    """Mail the registration's verification link, if it is still the signup's current registration."""
    signup = _signup(ctx, event.signup_id)
    if signup.stage != Stage.AWAITING_VERIFICATION or not signup.is_current(ctx.event_id):
        ctx.log.info("no link for a registration that is not the pending one", signup_id=str(signup.id))
        return
    _send_verification(ctx, signup, mailer=mailer, signer=signer, settings=settings)


def send_new_verification(
    event: VerificationEmailRequested, ctx: HandlerContext, *, mailer: Mailer, signer: Signer, settings: SignupSettings
) -> None:
    """A new link while the terms are not accepted yet; after that, an email saying how to log in."""
    signup = _signup(ctx, event.signup_id)
    if not signup.reached(Stage.PROVISIONING):
        _send_verification(ctx, signup, mailer=mailer, signer=signer, settings=settings)
        return
    email = already_enrolled_email(
        to=signup.email, name=signup.name, client_area_url=settings.whmcs_client_area_url, brand=settings.brand
    )
    mailer.send(email, idempotency_key=f"enrolled-{ctx.event_id}")
    ctx.log.info("told an enrolled address how to log in", signup_id=str(signup.id))


def _send_verification(
    ctx: HandlerContext, signup: Signup, *, mailer: Mailer, signer: Signer, settings: SignupSettings
) -> None:
    # The link's id follows from the event: a retry sends the same link, and a resend a new one, which
    # revokes every older one.
    link_id = deterministic_event_id(ctx.event_id, "verification-link")
    with ctx.record_now() as session:
        link = store.ensure_link(
            session,
            link_id=link_id,
            signup_id=signup.id,
            purpose="verify",
            now=ctx.now(),
            lifetime=timedelta(hours=settings.verification_link_hours),
            revoke_others=True,
        )
    if link.revoked_at is not None or link.used_at is not None:
        ctx.log.info("a newer link was issued meanwhile; this one is not sent", signup_id=str(signup.id))
        return
    url = f"{settings.public_url}/verify/{mint_link(signer, 'verify', link.id, link.expires_at)}"
    email = verification_email(
        to=signup.email, name=signup.name, link=url, expires_at=link.expires_at, brand=settings.brand
    )
    mailer.send(email, idempotency_key=f"verify-{link.id}")
    store.mark_verification_sent(ctx.session, signup.id, ctx.now())
    ctx.log.info("verification email sent", signup_id=str(signup.id))


def link_client(
    event: EmailVerified, ctx: HandlerContext, *, whmcs: Whmcs, vault: PasswordVault, settings: SignupSettings
) -> None:
    """The email is verified: find the WHMCS client by email (linked as it is, its password untouched)
    or create it with the registration's password; erase the password; unlock the terms."""
    signup = _signup(ctx, event.signup_id)
    if signup.email_verified_at is None or signup.stage == Stage.AWAITING_VERIFICATION:
        ctx.log.warning("EmailVerified for a signup whose email is not verified: ignored", signup_id=str(signup.id))
        return
    if signup.reached(Stage.AWAITING_TERMS):
        return  # done already (a redelivery, a replay)
    client_id = signup.whmcs_client_id  # set only on signups from before clients followed verification
    currency = None
    if client_id is None:
        if signup.encrypted_password is None:
            raise PermanentError(f"signup {signup.id} has neither a WHMCS client nor a password")
        firstname, lastname = split_name(signup.name)
        # A client found by email (one the provider made before) keeps its own currency and country:
        # WHMCS does not convert a client's amounts, so postpay never changes them. The terms page and
        # the welcome email say so when it is not the currency chosen.
        client = whmcs.find_or_add_client(
            firstname=firstname,
            lastname=lastname,
            email=signup.email,
            password=vault.decrypt(signup.encrypted_password),
            companyname=signup.company,
            country=signup.country or settings.whmcs_default_country,
            currency_id=settings.whmcs_currency_ids.get(signup.currency) if signup.currency else None,
            clientip=signup.registration_ip,
        )
        client_id, currency = client.id, (client.currency_code or "").upper()[:3] or None
        if signup.currency and currency and currency != signup.currency:
            ctx.log.warning(
                "the WHMCS client's currency is not the one chosen (a client that existed already, or "
                "POSTPAY_WHMCS_CURRENCY_IDS not matching WHMCS)",
                signup_id=str(signup.id),
                chosen=signup.currency,
                whmcs_currency=currency,
            )
    with ctx.record_now() as session:
        store.record_whmcs_client(session, signup.id, client_id, ctx.now(), billing_currency=currency)
    ctx.log.info(
        "WHMCS client ready; password erased; terms unlocked", signup_id=str(signup.id), whmcs_client_id=client_id
    )


def complete_enrollment(
    event: UserProvisioned, ctx: HandlerContext, *, mailer: Mailer, solusvm: SolusVM, settings: SignupSettings
) -> None:
    """Mark the customer enrolled (at once, so the page shows the login button), then welcome them.

    Only an event that matches the signup's own record moves it: the signup waits for its SolusVM 2
    user, the email and WHMCS client are its own, and SolusVM 2 says the user is this customer's. The
    welcome goes out when the stage moves to enrolled (or, after a crash between that and the email,
    when the same user's event comes again and no welcome was sent).
    """
    signup = _signup(ctx, event.signup_id)
    same = email_key(event.email) == email_key(signup.email) and event.whmcs_client_id == signup.whmcs_client_id
    moved = False
    if same and signup.stage == Stage.PROVISIONING and _users_email_is(solusvm, event.solusvm_user_id, signup):
        with ctx.record_now() as session:
            moved = store.advance(
                session,
                signup.id,
                Stage.ENROLLED,
                ctx.now(),
                solusvm_user_id=event.solusvm_user_id,
                enrolled_at=event.enrolled_at,
            )
    unwelcomed = (
        same
        and signup.stage == Stage.ENROLLED
        and signup.welcome_sent_at is None
        and signup.solusvm_user_id == event.solusvm_user_id
    )
    if not (moved or unwelcomed):
        ctx.log.warning(
            "UserProvisioned moved nothing (a duplicate, or not this signup's)",
            signup_id=str(signup.id),
            stage=signup.stage.value,
        )
        return
    email = welcome_email(
        to=signup.email,
        name=signup.name,
        client_area_url=settings.whmcs_client_area_url,
        brand=settings.brand,
        currency=signup.billing_currency,
        chosen=signup.currency,
    )
    mailer.send(email, idempotency_key=f"welcome-{signup.id}")
    store.mark_welcome_sent(ctx.session, signup.id, ctx.now())
    ctx.log.info("customer enrolled", signup_id=str(signup.id), solusvm_user_id=event.solusvm_user_id)


def _users_email_is(solusvm: SolusVM, user_id: int, signup: Signup) -> bool:
    """SolusVM 2's own word that ``user_id`` is this customer's user (a forged event could name anyone's,
    and the signup's SSO would then log into that user)."""
    try:
        user = solusvm.get_user(user_id)
    except UpstreamNotFound:
        return False
    billing = getattr(user, "billing_user_id", None)
    return email_key(user.email) == email_key(signup.email) and billing in (None, signup.whmcs_client_id)


# What the client-area panel shows of the account: its standing, postpay's invoices, the month so far.

StandingEvent = UserSuspended | UserReactivated | UserLocked | InvoiceOverdue | InvoicePaid | CustomerEmailChanged
STANDING_EVENTS: Events[StandingEvent] = (
    UserSuspended,
    UserReactivated,
    UserLocked,
    InvoiceOverdue,
    InvoicePaid,
    CustomerEmailChanged,
)


def record_account_standing(event: StandingEvent, ctx: DatabaseContext) -> None:
    """Keep the event's standing unless a newer one is on record already."""
    if not accounts.save_standing(ctx.session, event.whmcs_client_id, event.standing, ctx.now()):
        ctx.log.info(
            "older account standing ignored", whmcs_client_id=event.whmcs_client_id, revision=event.standing.revision
        )


def record_invoice(event: InvoiceCreated | InvoicePaid, ctx: DatabaseContext) -> None:
    """An invoice postpay created, or an overdue one that is not owed any more."""
    figures_store.save_invoice(ctx.session, event, ctx.now())


def record_usage(event: UsageToDateReported, ctx: DatabaseContext) -> None:
    """Keep the newest month-to-date figure of the client (a later month's, or a later time's)."""
    figures_store.save_usage(ctx.session, event)
