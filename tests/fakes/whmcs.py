"""An in-memory WHMCS, as postpay's ``WhmcsClient`` shows it: clients by id and email, invoices with
their lines and notes. Every method a service calls has the adapter's exact signature (checked by
``tests/unit/test_fakes_match_adapters.py``); what the fake adds for tests is listed in ``CONTROLS``.

What it remembers is what a test asserts on: ``clients``, ``invoices`` (with their lines), and
``calls`` (method names in order, so "sent once" is a fact).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from shared.ports import Whmcs
from shared.upstream.errors import UpstreamNotFound
from shared.upstream.whmcs_models import InvoiceLine, WhmcsClientDetails, WhmcsInvoice, WhmcsInvoiceSummary
from tests.fakes.failures import Failures

CURRENCIES = {1: "USD", 2: "EUR", 3: "GBP"}  # the ids a fresh WHMCS (and the simulator) has


@dataclass
class FakeInvoice:
    id: int
    client_id: int
    lines: list[InvoiceLine]
    invoice_date: date
    due_date: date
    notes: str
    currency_code: str
    status: str = "Unpaid"
    send_invoice: bool = False
    payment_method: str | None = None

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))

    def summary(self) -> WhmcsInvoiceSummary:
        return WhmcsInvoiceSummary.model_validate(
            {
                "id": self.id,
                "userid": self.client_id,
                "date": self.invoice_date,
                "duedate": self.due_date,
                "subtotal": self.total,
                "total": self.total,
                "status": self.status,
                "notes": self.notes,
                "currencycode": self.currency_code,
                "paymentmethod": self.payment_method or "",
            }
        )

    def full(self) -> WhmcsInvoice:
        items = [
            {"id": n, "description": line.description, "amount": line.amount, "taxed": line.taxed}
            for n, line in enumerate(self.lines, start=1)
        ]
        return WhmcsInvoice.model_validate(
            {
                "invoiceid": self.id,
                "userid": self.client_id,
                "date": self.invoice_date,
                "duedate": self.due_date,
                "subtotal": self.total,
                "total": self.total,
                "balance": self.total,
                "status": self.status,
                "notes": self.notes,
                "items": items,
            }
        )


class FakeWhmcs:
    """Satisfies ``shared.ports.Whmcs`` (structurally, as the real adapter does)."""

    CONTROLS = ("add_existing_client", "fail", "set_invoice_status", "invoices_of")

    def __init__(self) -> None:
        self.clients: dict[int, WhmcsClientDetails] = {}
        self.passwords: dict[int, str] = {}
        self.invoices: dict[int, FakeInvoice] = {}
        self.calls: list[str] = []
        self.failures = Failures()
        self._client_ids = itertools.count(1)
        self._invoice_ids = itertools.count(1)

    # -- what tests set up and look at ------------------------------------------------------------
    def add_existing_client(
        self,
        email: str,
        *,
        currency: str = "USD",
        status: str = "Active",
        firstname: str = "Existing",
        lastname: str = "Client",
    ) -> WhmcsClientDetails:
        """A client the provider made before postpay knew of it."""
        currency_id = next((i for i, code in CURRENCIES.items() if code == currency), None)
        client = WhmcsClientDetails.model_validate(
            {
                "id": next(self._client_ids),
                "email": email,
                "firstname": firstname,
                "lastname": lastname,
                "status": status,
                "currency": currency_id,
                "currency_code": currency,
            }
        )
        self.clients[client.id] = client
        return client

    def fail(self, method: str, error: BaseException, *, times: int = 1, after: bool = False) -> None:
        self.failures.fail(method, error, times=times, after=after)

    def set_invoice_status(self, invoice_id: int, status: str) -> None:
        self.invoices[invoice_id].status = status

    def invoices_of(self, client_id: int) -> list[FakeInvoice]:
        return [invoice for invoice in self.invoices.values() if invoice.client_id == client_id]

    def _call(self, method: str) -> None:
        self.calls.append(method)
        self.failures.check(method)

    # -- the adapter's methods --------------------------------------------------------------------
    def get_client(self, client_id: int) -> WhmcsClientDetails | None:
        self._call("get_client")
        return self.clients.get(client_id)

    def get_client_by_email(self, email: str) -> WhmcsClientDetails | None:
        self._call("get_client_by_email")
        wanted = email.strip().lower()
        return next((c for c in self.clients.values() if c.email.strip().lower() == wanted), None)

    def find_or_add_client(
        self,
        *,
        firstname: str,
        lastname: str,
        email: str,
        password: SecretStr,
        companyname: str = "",
        country: str = "US",
        currency_id: int | None = None,
        clientip: str | None = None,
        noemail: bool = True,
        skipvalidation: bool = True,
        customfields: Mapping[int, str] | None = None,
    ) -> WhmcsClientDetails:
        self._call("find_or_add_client")
        wanted = email.strip().lower()
        existing = next((c for c in self.clients.values() if c.email.strip().lower() == wanted), None)
        if existing is not None:
            return existing
        currency_id = currency_id or 1
        client = WhmcsClientDetails.model_validate(
            {
                "id": next(self._client_ids),
                "email": email,
                "firstname": firstname,
                "lastname": lastname,
                "companyname": companyname,
                "countrycode": country,
                "currency": currency_id,
                "currency_code": CURRENCIES.get(currency_id),
                "customfields": dict(customfields or {}),
            }
        )
        self.clients[client.id] = client
        self.passwords[client.id] = password.get_secret_value()
        self.failures.check("find_or_add_client", after=True)
        return client

    def update_client(self, client_id: int, **fields: Any) -> None:
        """With WHMCS's parameter names; the fake keeps ``status``, ``email``, ``firstname``, ``lastname``
        and ``companyname`` (an operator closing a client, or the customer changing address)."""
        self._call("update_client")
        client = self.clients.get(client_id)
        if client is None:
            raise UpstreamNotFound(f"whmcs: no client {client_id}", upstream="whmcs")
        kept = {k: v for k, v in fields.items() if k in ("status", "email", "firstname", "lastname", "companyname")}
        self.clients[client_id] = client.model_copy(update=kept)

    def create_invoice(
        self,
        client_id: int,
        lines: Sequence[InvoiceLine],
        *,
        date: date,
        due_date: date,
        notes: str,
        send_invoice: bool,
        payment_method: str | None,
        draft: bool = False,
        tax_rate: Decimal | None = None,
        tax_rate2: Decimal | None = None,
    ) -> int:
        self._call("create_invoice")
        if not lines:
            raise ValueError("an invoice needs at least one line")
        client = self.clients.get(client_id)
        if client is None:
            raise UpstreamNotFound(f"whmcs: no client {client_id}", upstream="whmcs")
        invoice = FakeInvoice(
            next(self._invoice_ids),
            client_id,
            list(lines),
            date,
            due_date,
            notes,
            client.currency_code or "USD",
            "Draft" if draft else "Unpaid",
            send_invoice,
            payment_method,
        )
        self.invoices[invoice.id] = invoice
        self.failures.check("create_invoice", after=True)
        return invoice.id

    def get_invoices(self, client_id: int, status: str | None = None) -> list[WhmcsInvoiceSummary]:
        self._call("get_invoices")
        return [
            i.summary()
            for i in sorted(self.invoices_of(client_id), key=lambda i: i.id)
            if status is None or i.status == status
        ]

    def find_invoice_by_marker(self, client_id: int, marker: str) -> WhmcsInvoiceSummary | None:
        self._call("find_invoice_by_marker")
        if not marker:
            raise ValueError("an empty marker would match every invoice")
        found = [i for i in sorted(self.invoices_of(client_id), key=lambda i: i.id) if marker in i.notes]
        return found[0].summary() if found else None

    def get_invoice(self, invoice_id: int, *, include_currency: bool = False) -> WhmcsInvoice:
        self._call("get_invoice")
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise UpstreamNotFound(f"whmcs: no invoice {invoice_id}", upstream="whmcs")
        full = invoice.full()
        return full.model_copy(update={"currency_code": invoice.currency_code}) if include_currency else full


_port: type[Whmcs] = FakeWhmcs  # mypy: the fake is a Whmcs
