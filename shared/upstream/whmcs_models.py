"""Typed views of WHMCS API answers, parsed leniently.

WHMCS types its JSON loosely: ids arrive as ``"1"`` or ``1``, money as ``"15.95"``, booleans as
``true``, ``1``, ``"1"``, ``""`` or ``"on"``, empty lists as ``""``, lists inside wrappers
(``{"item": [...]}``) and missing dates as ``0000-00-00 00:00:00``. Each annotated type below accepts
every shape seen, so the client code works with plain ints, ``Decimal`` and ``None``.

WHMCS writes times in its own time zone without an offset; they are read in the zone given in the
validation context (``{"tz": ...}``), UTC when none is given, so every datetime here is aware.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

_ASCII_INTEGER = re.compile(r"^-?[0-9]+$")
_TRUE = {"1", "true", "on", "yes", "y"}
_FALSE = {"", "0", "false", "off", "no", "n"}


def _lenient_int(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        if not _ASCII_INTEGER.match(text):
            # Pydantic's lax int would read "1_0" as 10; WHMCS never sends that, so it is no id.
            raise ValueError(f"not an id: {value!r}")
        return int(text)
    return value


def _lenient_decimal(value: Any) -> Any:
    if value is None or value == "":
        return Decimal("0")
    if isinstance(value, float):
        # Only reached if someone parsed the JSON without parse_float=Decimal: go through text.
        return Decimal(repr(value))
    if isinstance(value, (int, str)):
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            return value
    return value


def _lenient_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal)):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    if value is None:
        return False
    return value


def _null_date(value: Any) -> Any:
    if value is None or (isinstance(value, str) and (value.strip() == "" or value.startswith("0000-00-00"))):
        return None
    if isinstance(value, str):
        return value.strip()[:10]
    return value


def _null_datetime(value: Any, info: ValidationInfo) -> Any:
    if value is None or (isinstance(value, str) and (value.strip() == "" or value.startswith("0000-00-00"))):
        return None
    if isinstance(value, str):
        zone: tzinfo = (info.context or {}).get("tz", UTC)
        moment = datetime.fromisoformat(value.strip())
        return moment if moment.tzinfo else moment.replace(tzinfo=zone)
    return value


def unwrap_list(value: Any, key: str) -> list[Any]:
    """``""`` → ``[]``; ``{key: [...]}`` or ``{key: {...}}`` → the list; a bare list stays."""
    if value in ("", None):
        return []
    if isinstance(value, dict):
        inner = value.get(key, [])
        if inner in ("", None):
            return []
        return inner if isinstance(inner, list) else [inner]
    if isinstance(value, list):
        return value
    raise ValueError(f"expected a list or a {{{key!r}: [...]}} wrapper")


def _wrapped(key: str) -> BeforeValidator:
    return BeforeValidator(lambda value: unwrap_list(value, key))


WhmcsId = Annotated[int, BeforeValidator(_lenient_int)]
OptionalId = Annotated[int | None, BeforeValidator(_lenient_int)]
Money = Annotated[Decimal, BeforeValidator(_lenient_decimal)]
Flag = Annotated[bool, BeforeValidator(_lenient_bool)]
OptionalDate = Annotated[date | None, BeforeValidator(_null_date)]
OptionalDateTime = Annotated[datetime | None, BeforeValidator(_null_datetime)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class WhmcsUserLink(_Model):
    id: WhmcsId
    is_owner: Flag = Field(default=False, alias="isOwner")


class WhmcsUser(_Model):
    """A login (WHMCS 8+), which owns or is attached to clients (GetUsers)."""

    id: WhmcsId
    email: str
    firstname: str = ""
    lastname: str = ""
    clients: Annotated[list[WhmcsUserLink], _wrapped("client")] = Field(default_factory=list)


def _customfield_map(value: Any) -> Any:
    rows = unwrap_list(value, "customfield")
    return {int(_lenient_int(r["id"])): str(r.get("value", "")) for r in rows if isinstance(r, dict)}


class WhmcsClientDetails(_Model):
    """The billing account (GetClientsDetails' ``client``)."""

    id: WhmcsId
    email: str
    firstname: str = ""
    lastname: str = ""
    companyname: str = ""
    status: str = "Active"
    country: str = Field(default="", alias="countrycode")
    currency_id: OptionalId = Field(default=None, alias="currency")
    currency_code: str | None = None
    allow_sso: Flag = Field(default=True, alias="allowSingleSignOn")
    owner_user_id: OptionalId = None
    tax_exempt: Flag = Field(default=False, alias="taxexempt")
    credit: Money = Decimal("0")
    group_id: OptionalId = Field(default=None, alias="groupid")
    customfields: Annotated[dict[int, str], BeforeValidator(_customfield_map)] = Field(default_factory=dict)


class WhmcsInvoiceSummary(_Model):
    """One row of GetInvoices: no lines, but the currency, which GetInvoice lacks."""

    id: WhmcsId
    client_id: WhmcsId = Field(alias="userid")
    invoicenum: str = ""
    date: OptionalDate = None
    due_date: OptionalDate = Field(default=None, alias="duedate")
    date_paid: OptionalDateTime = Field(default=None, alias="datepaid")
    subtotal: Money = Decimal("0")
    credit: Money = Decimal("0")
    tax: Money = Decimal("0")
    tax2: Money = Decimal("0")
    total: Money = Decimal("0")
    tax_rate: Money = Field(default=Decimal("0"), alias="taxrate")
    tax_rate2: Money = Field(default=Decimal("0"), alias="taxrate2")
    status: str
    payment_method: str = Field(default="", alias="paymentmethod")
    notes: str = ""
    currency_code: str | None = Field(default=None, alias="currencycode")
    currency_prefix: str = Field(default="", alias="currencyprefix")
    currency_suffix: str = Field(default="", alias="currencysuffix")


class WhmcsInvoiceItem(_Model):
    id: WhmcsId
    type: str = ""
    relid: WhmcsId = 0
    description: str = ""
    amount: Money
    taxed: Flag = False


class WhmcsTransaction(_Model):
    id: WhmcsId
    transid: str = ""
    gateway: str = ""
    date: OptionalDateTime = None
    amount_in: Money = Field(default=Decimal("0"), alias="amountin")
    fees: Money = Decimal("0")
    amount_out: Money = Field(default=Decimal("0"), alias="amountout")
    description: str = ""


class WhmcsInvoice(_Model):
    """GetInvoice: the invoice with its lines and payments. ``currency_code`` is filled from the
    invoice's GetInvoices row when asked for, since GetInvoice does not carry it."""

    id: WhmcsId = Field(alias="invoiceid")
    client_id: WhmcsId = Field(alias="userid")
    invoicenum: str = ""
    date: OptionalDate = None
    due_date: OptionalDate = Field(default=None, alias="duedate")
    date_paid: OptionalDateTime = Field(default=None, alias="datepaid")
    subtotal: Money = Decimal("0")
    credit: Money = Decimal("0")
    tax: Money = Decimal("0")
    tax2: Money = Decimal("0")
    total: Money = Decimal("0")
    balance: Money = Decimal("0")
    tax_rate: Money = Field(default=Decimal("0"), alias="taxrate")
    tax_rate2: Money = Field(default=Decimal("0"), alias="taxrate2")
    status: str
    payment_method: str = Field(default="", alias="paymentmethod")
    notes: str = ""
    items: Annotated[list[WhmcsInvoiceItem], _wrapped("item")] = Field(default_factory=list)
    transactions: Annotated[list[WhmcsTransaction], _wrapped("transaction")] = Field(default_factory=list)
    currency_code: str | None = None


@dataclass(frozen=True)
class InvoiceLine:
    """One line to invoice. The amount must be a ``Decimal``: a float cannot carry money."""

    description: str
    amount: Decimal
    taxed: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise TypeError(f"invoice line amount must be a finite Decimal, not {self.amount!r}")
        if not self.description.strip():
            raise ValueError("an invoice line needs a description")


@dataclass(frozen=True)
class SsoToken:
    """A single-use sign-in link, valid for about 60 seconds. Kept out of reprs: it is a credential."""

    access_token: str = field(repr=False)
    redirect_url: str = field(repr=False)
