"""The provisioner: TermsAccepted → SolusVM 2 user → UserProvisioned; and, daily, each SolusVM 2
user kept in step with the customer's standing in WHMCS (suspended, reactivated, locked, email)."""

from __future__ import annotations

from services.provisioner import handlers
from services.provisioner.settings import ProvisionerSettings
from services.provisioner.store import tables
from shared.bus.topology import DATABASE_ONLY_BATCH, Events, Subscription, bind
from shared.dependencies import Dependencies
from shared.events.accounts import AccountsSyncRequested, CustomerStandingCheckRequested, UserReactivated, UserSuspended
from shared.events.billing import InvoiceCreated
from shared.events.enrollment import TermsAccepted
from shared.events.imports import CustomerImported
from shared.service import ServiceDefinition

NAME = "provisioner"
NOTIFIED: Events[UserSuspended | UserReactivated] = (UserSuspended, UserReactivated)


def build(deps: Dependencies) -> ServiceDefinition:
    settings = deps.settings(ProvisionerSettings)
    return ServiceDefinition(
        name=NAME,
        tables=tables,
        subscriptions=[
            Subscription(
                NAME,
                "provision_user",
                (TermsAccepted,),
                bind(handlers.provision_user, solusvm=deps.solusvm, settings=settings),
            ),
            Subscription(NAME, "adopt_user", (CustomerImported,), bind(handlers.adopt_user, solusvm=deps.solusvm)),
            Subscription(NAME, "record_invoice", (InvoiceCreated,), handlers.record_invoice, batch=DATABASE_ONLY_BATCH),
            Subscription(
                NAME,
                "fan_out_checks",
                (AccountsSyncRequested,),
                bind(handlers.fan_out_checks, chunk_size=settings.accounts_fanout_chunk_size),
            ),
            Subscription(
                NAME,
                "check_standing",
                (CustomerStandingCheckRequested,),
                bind(handlers.check_standing, whmcs=deps.whmcs, solusvm=deps.solusvm, settings=settings),
            ),
            Subscription(
                NAME,
                "notify_customer",
                NOTIFIED,
                bind(handlers.notify_customer, mailer=deps.mailer, settings=settings),
            ),
        ],
    )
