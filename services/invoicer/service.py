"""The invoicer: UsageCollected in, WHMCS invoices (and InvoiceCreated) out; nothing to bill is a ledger row."""

from __future__ import annotations

import threading

from services.invoicer import handlers, holds_store, store  # noqa: F401 - holds_store declares its tables
from services.invoicer.metrics import WAITING_HOLDS
from services.invoicer.settings import InvoicerSettings
from shared.bus.topology import Subscription, bind
from shared.dependencies import Dependencies
from shared.events.billing import InvoiceReleased, UsageCollected
from shared.service import ServiceDefinition

NAME = "invoicer"


def build(deps: Dependencies) -> ServiceDefinition:
    settings = deps.settings(InvoicerSettings)
    create_invoice = bind(handlers.create_invoice, whmcs=deps.whmcs, settings=settings)
    release_invoice = bind(handlers.release_invoice, whmcs=deps.whmcs, settings=settings)

    def count_waiting_holds(stop: threading.Event) -> None:
        """While the invoicer runs, its /metrics says what waits for an operator (read at each scrape)."""
        if deps.db is None:
            return
        WAITING_HOLDS.watch(deps.db)
        try:
            stop.wait()
        finally:
            WAITING_HOLDS.unwatch(deps.db)

    return ServiceDefinition(
        name=NAME,
        tables=store.tables,
        subscriptions=[
            Subscription(NAME, "create_invoice", (UsageCollected,), create_invoice),
            Subscription(NAME, "release_invoice", (InvoiceReleased,), release_invoice),
        ],
        background=[count_waiting_holds],
    )
