"""What the WHMCS simulator remembers: currencies, clients, users, invoices, transactions, emails, SSO.

Money is ``Decimal`` everywhere. Lookups the month-close benchmark leans on are indexed: clients by
lower-cased email, users by lower-cased email, invoices by client id. One re-entrant lock guards every
change, so tests and admin routes may read the state from another thread while the server runs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

INVOICE_STATUSES = ("Draft", "Unpaid", "Paid", "Cancelled", "Refunded", "Collections", "Payment Pending")
CLIENT_STATUSES = ("Active", "Inactive", "Closed")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Currency:
    id: int
    code: str
    prefix: str
    suffix: str
    is_default: bool = False

    def format(self, amount: Decimal) -> str:
        return f"{self.prefix}{money(amount)}{self.suffix}"


def currency_from(value: Currency | Mapping[str, Any]) -> Currency:
    """A currency from ``{"id", "code", "prefix"?, "suffix"?, "is_default"?}`` (admin and app options)."""
    if isinstance(value, Currency):
        return value
    code = str(value["code"])
    return Currency(
        int(value["id"]),
        code,
        str(value.get("prefix", "")),
        str(value.get("suffix", f" {code}")),
        bool(value.get("is_default", False)),
    )


DEFAULT_CURRENCIES = (
    Currency(1, "USD", "$", " USD", True),
    Currency(2, "EUR", "€", " EUR"),
    Currency(3, "GBP", "£", " GBP"),
)


@dataclass
class User:
    id: int
    firstname: str
    lastname: str
    email: str
    password_sha256: str
    datecreated: date
    # (client id, is owner) pairs, as GetUsers lists them.
    clients: list[tuple[int, bool]] = field(default_factory=list)


@dataclass
class Client:
    id: int
    uuid: str
    owner_user_id: int
    firstname: str
    lastname: str
    email: str
    companyname: str = ""
    address1: str = ""
    address2: str = ""
    city: str = ""
    state: str = ""
    postcode: str = ""
    country: str = "US"
    phonenumber: str = ""
    tax_id: str = ""
    currency_id: int = 1
    groupid: int = 0
    status: str = "Active"
    language: str = ""
    notes: str = ""
    taxexempt: bool = False
    allow_sso: bool = True
    defaultgateway: str = ""
    credit: Decimal = ZERO
    datecreated: date = field(default_factory=lambda: datetime.now(UTC).date())
    customfields: dict[int, str] = field(default_factory=dict)


@dataclass
class InvoiceItem:
    id: int
    description: str
    amount: Decimal
    taxed: bool
    type: str = ""
    relid: int = 0


@dataclass
class Transaction:
    id: int
    client_id: int
    invoice_id: int
    transid: str
    gateway: str
    date: datetime
    amountin: Decimal
    fees: Decimal = ZERO
    amountout: Decimal = ZERO
    description: str = ""
    currency_id: int = 0


@dataclass
class Invoice:
    id: int
    client_id: int
    date: date
    duedate: date
    status: str
    created_at: datetime
    updated_at: datetime
    items: list[InvoiceItem] = field(default_factory=list)
    taxrate: Decimal = Decimal("0.000")
    taxrate2: Decimal = Decimal("0.000")
    subtotal: Decimal = ZERO
    tax: Decimal = ZERO
    tax2: Decimal = ZERO
    credit: Decimal = ZERO
    total: Decimal = ZERO
    paymentmethod: str = ""
    notes: str = ""
    invoicenum: str = ""
    datepaid: datetime | None = None
    date_cancelled: datetime | None = None
    date_refunded: datetime | None = None


@dataclass
class EmailTemplate:
    name: str
    type: str
    subject: str
    message: str
    disabled: bool = False
    # Templates WHMCS refuses to send through the API (Order Confirmation, password resets, ...).
    api_sendable: bool = True


@dataclass
class SentEmail:
    id: int
    messagename: str
    type: str
    related_id: int
    client_id: int | None
    to: str
    subject: str
    message: str
    customvars: dict[str, Any]
    date: datetime


@dataclass
class SsoGrant:
    token: str
    client_id: int
    user_id: int
    destination: str
    redirect_path: str | None
    service_id: int | None
    domain_id: int | None
    created_at: datetime
    redeemed_at: datetime | None = None


DEFAULT_TEMPLATES = (
    EmailTemplate(
        "Invoice Created",
        "invoice",
        "Customer Invoice",
        "Dear {$client_name}, invoice #{$invoice_num} for {$invoice_total} is due on {$invoice_date_due}.",
    ),
    EmailTemplate(
        "Invoice Payment Confirmation",
        "invoice",
        "Invoice Payment Confirmation",
        "Dear {$client_name}, thank you: payment of invoice #{$invoice_num} was received.",
    ),
    EmailTemplate("Client Signup Email", "general", "Welcome", "Dear {$client_name}, welcome aboard."),
    EmailTemplate("Order Confirmation", "general", "Order Confirmation", "Order received.", api_sendable=False),
    EmailTemplate("Password Reset Validation", "general", "Password Reset", "Reset your password.", api_sendable=False),
)


@dataclass
class TaxSettings:
    """The system tax configuration (Setup > Payments > Tax Configuration)."""

    taxrate: Decimal = Decimal("0.000")
    taxrate2: Decimal = Decimal("0.000")
    inclusive: bool = False
    compound: bool = False


@dataclass
class CustomFieldDefinition:
    id: int
    name: str
    required: bool = False


class WhmcsState:
    """All simulated WHMCS data, with the indexes the hot paths need."""

    def __init__(self, currencies: list[Currency] | None = None) -> None:
        self.lock = threading.RLock()
        self.currencies: dict[int, Currency] = {
            c.id: Currency(c.id, c.code, c.prefix, c.suffix, c.is_default) for c in (currencies or DEFAULT_CURRENCIES)
        }
        self.tax = TaxSettings()
        # AddTransaction's ``date`` uses the installation's localisation format, not ISO.
        self.date_format = "%d/%m/%Y"
        self.custom_fields: dict[int, CustomFieldDefinition] = {}
        self.templates: dict[str, EmailTemplate] = {t.name.lower(): t for t in DEFAULT_TEMPLATES}
        self.clients: dict[int, Client] = {}
        self.users: dict[int, User] = {}
        self.invoices: dict[int, Invoice] = {}
        self.transactions: dict[int, Transaction] = {}
        self.emails: list[SentEmail] = []
        self.sso_grants: dict[str, SsoGrant] = {}
        self.sessions: dict[str, int] = {}
        self.clients_by_email: dict[str, int] = {}
        self.users_by_email: dict[str, int] = {}
        self.invoices_by_client: dict[int, list[int]] = {}
        self.transactions_by_invoice: dict[int, list[int]] = {}
        self.next_ids: dict[str, int] = {}

    def next_id(self, kind: str) -> int:
        value = self.next_ids.get(kind, 0) + 1
        self.next_ids[kind] = value
        return value

    # -- currencies ------------------------------------------------------------------------------
    def default_currency(self) -> Currency:
        for currency in self.currencies.values():
            if currency.is_default:
                return currency
        return min(self.currencies.values(), key=lambda c: c.id)

    def currency_of(self, client: Client) -> Currency:
        return self.currencies.get(client.currency_id) or self.default_currency()

    # -- clients and users -----------------------------------------------------------------------
    def client_by_email(self, email: str) -> Client | None:
        client_id = self.clients_by_email.get(email.strip().lower())
        return self.clients.get(client_id) if client_id is not None else None

    def user_by_email(self, email: str) -> User | None:
        user_id = self.users_by_email.get(email.strip().lower())
        return self.users.get(user_id) if user_id is not None else None

    def add_client(self, client: Client) -> None:
        self.clients[client.id] = client
        self.clients_by_email[client.email.lower()] = client.id

    def change_client_email(self, client: Client, email: str) -> None:
        self.clients_by_email.pop(client.email.lower(), None)
        client.email = email
        self.clients_by_email[email.lower()] = client.id

    def delete_client(self, client: Client) -> None:
        """As an admin's "Delete Client" does: the client goes, with its invoices and their payments;
        its login stays for any other client it belongs to."""
        self.clients.pop(client.id, None)
        self.clients_by_email.pop(client.email.lower(), None)
        for invoice_id in self.invoices_by_client.pop(client.id, []):
            self.invoices.pop(invoice_id, None)
            for transaction_id in self.transactions_by_invoice.pop(invoice_id, []):
                self.transactions.pop(transaction_id, None)
        for user in self.users.values():
            user.clients = [(client_id, owner) for client_id, owner in user.clients if client_id != client.id]

    def add_user(self, user: User) -> None:
        self.users[user.id] = user
        self.users_by_email[user.email.lower()] = user.id

    # -- invoices --------------------------------------------------------------------------------
    def add_invoice(self, invoice: Invoice) -> None:
        self.invoices[invoice.id] = invoice
        self.invoices_by_client.setdefault(invoice.client_id, []).append(invoice.id)

    def invoices_of(self, client_id: int) -> list[Invoice]:
        return [self.invoices[i] for i in self.invoices_by_client.get(client_id, ())]

    def add_transaction(self, transaction: Transaction) -> None:
        self.transactions[transaction.id] = transaction
        if transaction.invoice_id:
            self.transactions_by_invoice.setdefault(transaction.invoice_id, []).append(transaction.id)

    def transactions_of(self, invoice_id: int) -> list[Transaction]:
        return [self.transactions[t] for t in self.transactions_by_invoice.get(invoice_id, ())]

    def amount_paid(self, invoice: Invoice) -> Decimal:
        return sum((t.amountin - t.amountout for t in self.transactions_of(invoice.id)), ZERO)

    def balance(self, invoice: Invoice) -> Decimal:
        return money(invoice.total - self.amount_paid(invoice))

    def recalculate(self, invoice: Invoice, client: Client | None) -> None:
        """Subtotal, taxes and total from the lines, the invoice's rates and the client's exemption."""
        gross = sum((item.amount for item in invoice.items), ZERO)
        taxable = sum((item.amount for item in invoice.items if item.taxed), ZERO)
        exempt = client is not None and client.taxexempt
        rate1 = Decimal(0) if exempt else invoice.taxrate
        rate2 = Decimal(0) if exempt else invoice.taxrate2
        if self.tax.inclusive:
            tax1 = money(taxable / (100 + rate1) * rate1) if rate1 else ZERO
            tax2 = money((taxable - tax1) / (100 + rate2) * rate2) if rate2 else ZERO
            invoice.subtotal = money(gross - tax1 - tax2)
        else:
            tax1 = money(taxable * rate1 / 100)
            base2 = taxable + tax1 if self.tax.compound else taxable
            tax2 = money(base2 * rate2 / 100)
            invoice.subtotal = money(gross)
        invoice.tax, invoice.tax2 = tax1, tax2
        invoice.total = money(invoice.subtotal + tax1 + tax2 - invoice.credit)

    def reset(self) -> None:
        """Forget every client, invoice and email; keep currencies, tax, fields and templates."""
        with self.lock:
            for name in ("clients", "users", "invoices", "transactions", "sso_grants", "sessions"):
                getattr(self, name).clear()
            self.emails.clear()
            self.clients_by_email.clear()
            self.users_by_email.clear()
            self.invoices_by_client.clear()
            self.transactions_by_invoice.clear()
            self.next_ids.clear()


def is_overdue(invoice: Invoice, today: date) -> bool:
    """WHMCS's "Overdue" is not stored: it is an Unpaid invoice whose due date has passed."""
    return invoice.status == "Unpaid" and invoice.duedate < today
