"""One customer's standing check, up to the decision: reads only (WHMCS and the provisioner's own
tables), so the standing-check handler and ``postpay accounts sync --dry-run`` decide exactly alike.

WHMCS is asked twice per customer: GetClientsDetails (status and email) and GetInvoices (every invoice
of the client, paged). Any failure raises: a check that could not see the whole standing decides
nothing, so an upstream outage can never look like "nothing is owed" and reactivate someone.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import date, datetime

from services.provisioner import store
from services.provisioner.settings import ProvisionerSettings
from services.provisioner.standing import Decision, Policy, PostpayInvoice, Recorded, Standing, decide, is_postpay_notes
from services.provisioner.store import Account, Customer
from shared.db import Database
from shared.periods import zone
from shared.ports import Whmcs

PAGE_SIZE = 200


def read_standing(whmcs: Whmcs, client_id: int, known_invoice_ids: Collection[int]) -> Standing:
    """The client's status, email and postpay invoices, as WHMCS shows them now.

    An invoice is postpay's when the invoicer announced it (InvoiceCreated, recorded here) or when its
    notes carry postpay's run key for this client; any other invoice (a domain, a licence) never
    suspends anyone here.
    """
    client = whmcs.get_client(client_id)
    if client is None:
        return Standing(client_status=None, email=None)
    invoices = tuple(
        PostpayInvoice(summary.id, summary.status, summary.due_date, summary.total, summary.currency_code or "")
        for summary in whmcs.get_invoices(client_id)
        if summary.id in known_invoice_ids or is_postpay_notes(summary.notes, client_id)
    )
    return Standing(client_status=client.status, email=client.email, invoices=invoices)


def today_in(as_of: datetime, timezone: str) -> date:
    """The billing day ``as_of`` falls on: invoices are overdue by calendar days there."""
    return as_of.astimezone(zone(timezone)).date()


def policy_for(settings: ProvisionerSettings, client_id: int) -> Policy:
    return Policy(settings.accounts_grace_days, never_suspend=client_id in settings.accounts_never_suspend)


def recorded_of(customer: Customer, account: Account) -> Recorded:
    return Recorded(account.status, account.overdue_invoice_ids, customer.email, account.unconfirmed)


def evaluate(
    whmcs: Whmcs,
    customer: Customer,
    account: Account,
    known_invoice_ids: Collection[int],
    settings: ProvisionerSettings,
    today: date,
) -> tuple[Standing, Decision]:
    standing = read_standing(whmcs, customer.whmcs_client_id, known_invoice_ids)
    decision = decide(recorded_of(customer, account), standing, policy_for(settings, customer.whmcs_client_id), today)
    return standing, decision


@dataclass(frozen=True)
class Preview:
    """What a check of one customer would do now; ``error`` when its standing could not be read."""

    customer: Customer
    account: Account
    decision: Decision | None
    error: str | None = None


def preview_standing(
    db: Database, whmcs: Whmcs, settings: ProvisionerSettings, today: date, *, client_ids: list[int] | None = None
) -> Iterator[Preview]:
    """The decision for every enrolled customer (keyset pages, flat memory), writing nothing anywhere:
    a customer never checked is taken as its first check would find it, without creating its row."""
    after = 0
    while True:
        with db.transaction() as session:
            page = store.customers_page(session, after=after, limit=PAGE_SIZE, only=client_ids)
            rows = [
                (
                    customer,
                    store.get_account(session, customer.whmcs_client_id) or store.new_account(customer.whmcs_client_id),
                    store.invoice_ids_of(session, customer.whmcs_client_id),
                )
                for customer in page
            ]
        for customer, account, known in rows:
            try:
                _, decision = evaluate(whmcs, customer, account, known, settings, today)
            except Exception as exc:
                yield Preview(customer, account, None, f"{type(exc).__name__}: {exc}")
                continue
            yield Preview(customer, account, decision)
        if len(page) < PAGE_SIZE:
            return
        after = page[-1].whmcs_client_id
