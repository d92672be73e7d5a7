"""The signup service: the web journey, and the handlers that send the verification and welcome emails,
create (or link) the WHMCS client once the email is verified, and move each signup along as events
arrive; and the client-area panel's view of each enrolled customer's account state (suspended, locked)
from the standing events; and the figures it shows (invoices, the month's usage so far) from events."""

from __future__ import annotations

import functools
from collections.abc import Callable

from fastapi import FastAPI

from services.signup import handlers
from services.signup.schema import tables
from services.signup.settings import SignupSettings
from services.signup.tokens import Signer
from services.signup.vault import PasswordVault
from services.signup.web import create_app
from services.signup.web.server import serve
from shared.bus.handler_context import HandlerContext
from shared.bus.topology import DATABASE_ONLY_BATCH, Events, Handler, Subscription, bind
from shared.db import Database
from shared.dependencies import Dependencies
from shared.errors import ConfigurationError
from shared.events.accounts import InvoicePaid
from shared.events.base import Event
from shared.events.billing import InvoiceCreated
from shared.events.enrollment import EmailVerified, UserProvisioned, UserRegistered, VerificationEmailRequested
from shared.events.usage import UsageToDateReported
from shared.logging import get_logger
from shared.mail import MailSettings
from shared.service import CommitSignal, ServiceDefinition
from shared.settings import UpstreamSettings

NAME = "signup"
INVOICE_EVENTS: Events[InvoiceCreated | InvoicePaid] = (InvoiceCreated, InvoicePaid)
log = get_logger("postpay.signup")


def refuse_weak_secrets(settings: SignupSettings, deps: Dependencies) -> None:
    """A weak secret is a way in (an HMAC under an empty key is anyone's): refuse to serve anyone else
    with one. On loopback only (the demo, the tests), say so and go on."""
    weak = settings.weak_secrets(deps.settings(UpstreamSettings), deps.settings(MailSettings))
    if not weak:
        return
    if not settings.serves_only_this_machine():
        raise ConfigurationError(
            f"refusing to serve {settings.public_url} with weak secrets: "
            + "; ".join(weak)
            + ". Set each to a long random value (`openssl rand -hex 32`; Fernet.generate_key() for password "
            "keys; the upstream's own credentials): see docs/configuration.md"
        )
    log.warning(
        "signup runs on loopback with weak or demo secrets; set them before serving anyone else",
        variables=[problem.split(" ", 1)[0] for problem in weak],
    )


def refuse_unusable_keys(problem: str) -> None:
    raise ConfigurationError(
        f"the signup cannot run with its keys: {problem} (POSTPAY_SECRET_KEY, "
        "POSTPAY_PASSWORD_KEYS; see docs/configuration.md)"
    )


def refuse_no_currencies(settings: SignupSettings) -> None:
    """A signup whose form offers no currency would accept nobody: refuse to start, saying what to set."""
    problem = settings.currency_problem()
    if problem:
        raise ConfigurationError(f"the signup cannot start: {problem}; see docs/configuration.md")


def keys_unusable(problem: str) -> Handler[Event]:
    """In place of a handler that needs the signup's keys when they are unusable. The preflight stops a
    process that would run the signup before any handler runs; this says why, should anything skip it."""

    def refuse(event: Event, ctx: HandlerContext) -> None:
        refuse_unusable_keys(problem)

    return refuse


def build(deps: Dependencies) -> ServiceDefinition:
    settings = deps.settings(SignupSettings)
    # Every process builds every service (to know the topology), with only its own secrets: keys the
    # signup cannot use stop only a process that runs the signup, at its preflight.
    try:
        signer: Signer | None = Signer(settings.secret_key.get_secret_value())
        vault: PasswordVault | None = PasswordVault(settings.password_keys)
    except (ValueError, ConfigurationError) as exc:
        signer = vault = None
        unusable = str(exc)
    if signer is not None and vault is not None:
        send_verification = bind(handlers.send_verification, mailer=deps.mailer, signer=signer, settings=settings)
        send_new_verification = bind(
            handlers.send_new_verification, mailer=deps.mailer, signer=signer, settings=settings
        )
        link_client = bind(handlers.link_client, whmcs=deps.whmcs, vault=vault, settings=settings)
    else:
        send_verification = send_new_verification = link_client = keys_unusable(unusable)
    subscriptions = [
        Subscription(NAME, "send_verification", (UserRegistered,), send_verification),
        Subscription(NAME, "send_new_verification", (VerificationEmailRequested,), send_new_verification),
        Subscription(NAME, "link_client", (EmailVerified,), link_client),
        Subscription(
            NAME,
            "complete_enrollment",
            (UserProvisioned,),
            bind(handlers.complete_enrollment, mailer=deps.mailer, solusvm=deps.solusvm, settings=settings),
        ),
        Subscription(
            NAME,
            "record_account_standing",
            handlers.STANDING_EVENTS,
            handlers.record_account_standing,
            batch=DATABASE_ONLY_BATCH,
        ),
        # What the client area shows of the account: postpay's invoices and the month so far.
        Subscription(NAME, "record_invoice", INVOICE_EVENTS, handlers.record_invoice, batch=DATABASE_ONLY_BATCH),
        Subscription(
            NAME, "record_usage_to_date", (UsageToDateReported,), handlers.record_usage, batch=DATABASE_ONLY_BATCH
        ),
    ]
    outbox_committed = CommitSignal()

    def web_app(db: Database | None = None) -> FastAPI:
        database = db or deps.db
        if database is None:
            raise ConfigurationError("the signup web needs the process's database (Dependencies.db)")
        return create_app(database, settings, deps.solusvm, clock=deps.clock, on_commit=outbox_committed)

    preflight: list[Callable[[], None]] = [
        functools.partial(refuse_weak_secrets, settings, deps),
        functools.partial(refuse_no_currencies, settings),
    ]
    if signer is None:
        preflight.append(functools.partial(refuse_unusable_keys, unusable))
    background = []
    if settings.signup_port:
        background.append(serve(web_app, host=settings.signup_host, port=settings.signup_port))
    return ServiceDefinition(
        name=NAME,
        tables=tables,
        subscriptions=subscriptions,
        background=background,
        preflight=preflight,
        outbox_committed=outbox_committed,
        web_app=web_app,
    )
