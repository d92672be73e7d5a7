"""The invoicer: UsageCollected in, WHMCS invoices (and InvoiceCreated / NothingToBill) out."""

from __future__ import annotations

import functools

from shared.bus.topology import Subscription
from shared.dependencies import Dependencies
from shared.events.billing import UsageCollected
from shared.service import ServiceDefinition

from services.invoicer import handlers, store
from services.invoicer.settings import InvoicerSettings

NAME = "invoicer"


def build(deps: Dependencies) -> ServiceDefinition:
    settings = deps.settings(InvoicerSettings)
    create_invoice = functools.partial(handlers.create_invoice, whmcs=deps.whmcs, settings=settings)
    return ServiceDefinition(
        name=NAME,
        tables=store.tables,
        subscriptions=[Subscription(NAME, "create_invoice", (UsageCollected,), create_invoice)],
    )
