"""Client and user actions: AddClient, GetClients, GetClientsDetails, UpdateClient, GetUsers."""

from __future__ import annotations

import hashlib
import re
import uuid
from decimal import Decimal
from typing import Any

from simulators.whmcs.emails import record_template_email
from simulators.whmcs.params import ActionContext, ApiError, Form, format_date, page_of, wrapped
from simulators.whmcs.phpunserialize import SerializedError, decode_array
from simulators.whmcs.state import CLIENT_STATUSES, ZERO, Client, User, WhmcsState, is_overdue

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_PHONE = re.compile(r"^[0-9+().\-\s]*$")

# The documented AddClient checks, in the documented order (skipped by ``skipvalidation``).
_REQUIRED_FIELDS = (
    ("firstname", "You did not enter your first name"),
    ("lastname", "You did not enter your last name"),
    ("email", "You did not enter your email address"),
    ("address1", "You did not enter your  address line 1"),
    ("city", "You did not enter your city"),
    ("state", "You did not enter your state"),
    ("postcode", "You did not enter your postcode"),
    ("country", "Valid country required"),
    ("phonenumber", "You did not enter your phone number"),
)
_TEXT_FIELDS = (
    "firstname",
    "lastname",
    "companyname",
    "address1",
    "address2",
    "city",
    "state",
    "postcode",
    "phonenumber",
    "tax_id",
    "language",
    "notes",
    "defaultgateway",
)


def _custom_fields(state: WhmcsState, form: Form, *, check_required: bool) -> dict[int, str]:
    """Decode ``customfields`` (base64 of a PHP-serialized array of field id => text)."""
    values: dict[int, str] = {}
    encoded = form.get("customfields")
    if encoded:
        try:
            decoded = decode_array(encoded)
        except SerializedError:
            decoded = {}
        for key, value in decoded.items():
            # A value that is itself an array is what WHMCS rejects as "not provided".
            if isinstance(key, int) and isinstance(value, (str, int)) and not isinstance(value, bool):
                values[key] = str(value)
    if check_required:
        for definition in state.custom_fields.values():
            if definition.required and not values.get(definition.id, "").strip():
                raise ApiError(f"You did not provide required custom field value for {definition.name}")
    return values


def _currency_id(state: WhmcsState, form: Form) -> int | None:
    if not form.get("currency"):
        return None
    currency_id = form.integer("currency")
    if currency_id is None or currency_id not in state.currencies:
        raise ApiError("Invalid Currency ID")
    return currency_id


def add_client(ctx: ActionContext, form: Form) -> dict[str, Any]:
    state = ctx.state
    skip = form.flag("skipvalidation")
    owner: User | None = None
    if form.get("owner_user_id"):
        owner_id = form.integer("owner_user_id")
        owner = state.users.get(owner_id) if owner_id is not None else None
        if owner is None:
            raise ApiError("Invalid Owner User ID")
    email = form.get("email")
    if not skip:
        for name, message in _REQUIRED_FIELDS:
            if not form.get(name):
                raise ApiError(message)
            if name == "email" and not _EMAIL.match(email):
                raise ApiError("The email address you entered was not valid")
        if not _PHONE.match(form.get("phonenumber")):
            raise ApiError("Invalid telephone phone number")
    if owner is None and not email:
        raise ApiError("You did not enter your email address")
    if email and not _EMAIL.match(email):
        raise ApiError("The email address you entered was not valid")
    country = form.get("country") or "US"
    if not _COUNTRY.match(country):
        raise ApiError("Valid country required")
    if owner is None and not form.get("password2"):
        raise ApiError("You did not enter your password")
    currency_id = _currency_id(state, form)
    customfields = _custom_fields(state, form, check_required=not skip)
    if state.client_by_email(email) is not None:
        raise ApiError("The email address entered is not available for use.")
    if owner is None and state.user_by_email(email) is not None:
        raise ApiError("A user already exists with that email address")

    today = ctx.today()
    if owner is None:
        password_hash = hashlib.sha256(form.get("password2").encode("utf-8")).hexdigest()
        owner = User(state.next_id("user"), form.get("firstname"), form.get("lastname"), email, password_hash, today)
        state.add_user(owner)
    client = Client(
        id=state.next_id("client"),
        uuid=str(uuid.uuid4()),
        owner_user_id=owner.id,
        firstname=form.get("firstname"),
        lastname=form.get("lastname"),
        email=email,
        country=country.upper(),
        currency_id=currency_id or state.default_currency().id,
        groupid=form.integer("groupid") or 0,
        datecreated=today,
        customfields=customfields,
    )
    for name in _TEXT_FIELDS:
        if name not in ("firstname", "lastname") and form.has(name):
            setattr(client, name, form.get(name))
    state.add_client(client)
    owner.clients.append((client.id, True))
    if not form.flag("noemail"):
        record_template_email(ctx, "Client Signup Email", client.id, client)
    return {"result": "success", "clientid": str(client.id)}


def _summary(client: Client) -> dict[str, Any]:
    return {
        "id": client.id,
        "firstname": client.firstname,
        "lastname": client.lastname,
        "companyname": client.companyname,
        "email": client.email,
        "datecreated": format_date(client.datecreated),
        "groupid": client.groupid,
        "status": client.status,
    }


_CLIENT_ORDER = {
    "id": lambda c: c.id,
    "firstname": lambda c: c.firstname.lower(),
    "lastname": lambda c: c.lastname.lower(),
    "companyname": lambda c: c.companyname.lower(),
    "email": lambda c: c.email.lower(),
    "groupid": lambda c: c.groupid,
    "datecreated": lambda c: c.datecreated,
    "status": lambda c: c.status,
}


def _matches_prefix(client: Client, prefix: str) -> bool:
    fullname = f"{client.firstname} {client.lastname}"
    fields = (client.email, client.firstname, client.lastname, fullname, client.companyname)
    return any(value.lower().startswith(prefix) for value in fields)


def get_clients(ctx: ActionContext, form: Form) -> dict[str, Any]:
    clients = list(ctx.state.clients.values())
    search = form.get("search").lower()
    if search:
        clients = [c for c in clients if _matches_prefix(c, search)]
    status = form.get("status").lower()
    if status:
        clients = [c for c in clients if c.status.lower() == status]
    order = _CLIENT_ORDER.get(form.get("orderby").lower(), _CLIENT_ORDER["id"])
    clients.sort(key=order, reverse=form.get("sorting").upper() == "DESC")
    page, start = page_of(clients, form)
    return {
        "result": "success",
        "totalresults": len(clients),
        "startnumber": start,
        "numreturned": len(page),
        "clients": wrapped([_summary(c) for c in page], "client"),
    }


def find_client(state: WhmcsState, form: Form, id_field: str, email_field: str) -> Client | None:
    client_id = form.integer(id_field)
    if client_id is not None:
        return state.clients.get(client_id)
    email = form.get(email_field)
    return state.client_by_email(email) if email else None


def client_details(ctx: ActionContext, client: Client) -> dict[str, Any]:
    state = ctx.state
    currency = state.currency_of(client)
    owner = state.users.get(client.owner_user_id)
    # Only owners are modelled (AddClient creates or attaches one), so the owner is the user list.
    users = (
        [{"id": owner.id, "name": f"{owner.firstname} {owner.lastname}", "email": owner.email, "is_owner": True}]
        if owner is not None
        else []
    )
    details: dict[str, Any] = {
        "userid": client.id,
        "client_id": client.id,
        "id": client.id,
        "uuid": client.uuid,
        "owner_user_id": client.owner_user_id,
        "firstname": client.firstname,
        "lastname": client.lastname,
        "fullname": f"{client.firstname} {client.lastname}",
        "companyname": client.companyname,
        "email": client.email,
        "address1": client.address1,
        "address2": client.address2,
        "city": client.city,
        "fullstate": client.state,
        "state": client.state,
        "statecode": client.state,
        "postcode": client.postcode,
        "countrycode": client.country,
        "country": client.country,
        "countryname": client.country,
        "phonecc": 1,
        "phonenumber": client.phonenumber,
        "phonenumberformatted": client.phonenumber,
        "telephoneNumber": client.phonenumber,
        "tax_id": client.tax_id,
        "billingcid": 0,
        "notes": client.notes,
        "currency": currency.id,
        "currency_code": currency.code,
        "defaultgateway": client.defaultgateway,
        "groupid": client.groupid,
        "status": client.status,
        "credit": str(client.credit),
        "taxexempt": client.taxexempt,
        "language": client.language,
        "datecreated": format_date(client.datecreated),
        "allowSingleSignOn": 1 if client.allow_sso else 0,
        "email_preferences": {
            "general": 1,
            "invoice": 1,
            "support": 1,
            "product": 1,
            "domain": 1,
            "affiliate": 1,
        },
        "customfields": [{"id": fid, "value": value} for fid, value in sorted(client.customfields.items())],
        "users": wrapped(users, "user"),
    }
    for position, (_fid, value) in enumerate(sorted(client.customfields.items()), start=1):
        details[f"customfields{position}"] = value
    return details


def _stats(ctx: ActionContext, client: Client) -> dict[str, Any]:
    state = ctx.state
    currency = state.currency_of(client)
    today = ctx.today()
    buckets: dict[str, list[Decimal]] = {}
    for invoice in state.invoices_of(client.id):
        amount = state.balance(invoice) if invoice.status == "Unpaid" else invoice.total
        buckets.setdefault(invoice.status, []).append(amount)
        if is_overdue(invoice, today):
            buckets.setdefault("Overdue", []).append(amount)
    stats: dict[str, Any] = {}
    for status, key in (
        ("Unpaid", "unpaid"),
        ("Paid", "paid"),
        ("Cancelled", "cancelled"),
        ("Refunded", "refunded"),
        ("Collections", "collections"),
        ("Draft", "draft"),
        ("Overdue", "overdue"),
    ):
        amounts = buckets.get(status, [])
        stats[f"num{key}invoices"] = len(amounts)
        stats[f"{key}invoicesamount"] = currency.format(sum(amounts, ZERO))
    stats["numdueinvoices"] = stats["numunpaidinvoices"]
    stats["dueinvoicesbalance"] = stats["unpaidinvoicesamount"]
    stats["overdueinvoicesbalance"] = stats["overdueinvoicesamount"]
    stats["creditbalance"] = currency.format(client.credit)
    stats["income"] = currency.format(sum(buckets.get("Paid", []), ZERO))
    return stats


def get_clients_details(ctx: ActionContext, form: Form) -> dict[str, Any]:
    if not form.get("clientid") and not form.get("email"):
        raise ApiError("Either clientid Or email Is Required")
    client = find_client(ctx.state, form, "clientid", "email")
    if client is None:
        raise ApiError("Client Not Found")
    details = client_details(ctx, client)
    # WHMCS still duplicates the client at the top level (deprecated); old clients read it there.
    response: dict[str, Any] = {"result": "success", **details, "client": details}
    if form.flag("stats"):
        response["stats"] = _stats(ctx, client)
    return response


def update_client(ctx: ActionContext, form: Form) -> dict[str, Any]:
    state = ctx.state
    client = find_client(state, form, "clientid", "clientemail")
    if client is None:
        raise ApiError("Client ID Not Found")
    email = form.get("email")
    if form.has("email") and email.lower() != client.email.lower():
        if not _EMAIL.match(email):
            raise ApiError("The email address entered is not valid")
        if state.client_by_email(email) is not None:
            raise ApiError("Duplicate Email Address")
    status = form.get("status")
    if status and status.capitalize() not in CLIENT_STATUSES:
        raise ApiError(f"Invalid status {status}")
    country = form.get("country")
    if country and not _COUNTRY.match(country):
        raise ApiError("Valid country required")
    currency_id = _currency_id(state, form)
    customfields = _custom_fields(state, form, check_required=False)

    for name in _TEXT_FIELDS:
        if form.has(name):
            setattr(client, name, form.get(name))
    if form.has("email") and email != client.email:
        state.change_client_email(client, email)
    if country:
        client.country = country.upper()
    if status:
        client.status = status.capitalize()
    if currency_id is not None:
        client.currency_id = currency_id
    if form.get("groupid"):
        client.groupid = form.integer("groupid") or 0
    if form.has("taxexempt"):
        client.taxexempt = form.flag("taxexempt")
    if form.has("paymentmethod"):
        client.defaultgateway = form.get("paymentmethod")
    client.customfields.update(customfields)
    return {"result": "success", "clientid": str(client.id)}


def get_users(ctx: ActionContext, form: Form) -> dict[str, Any]:
    users = list(ctx.state.users.values())
    search = form.get("search").lower()
    if search:
        users = [
            u
            for u in users
            if any(
                value.lower().startswith(search)
                for value in (u.email, u.firstname, u.lastname, f"{u.firstname} {u.lastname}")
            )
        ]
    users.sort(key=lambda u: u.id, reverse=form.get("sorting").upper() == "DESC")
    page, start = page_of(users, form)
    return {
        "result": "success",
        "totalresults": len(users),
        "startnumber": start,
        "numreturned": len(page),
        # GetUsers is the exception: a bare list, no {"user": [...]} wrapper.
        "users": [
            {
                "id": u.id,
                "firstname": u.firstname,
                "lastname": u.lastname,
                "email": u.email,
                "datecreated": format_date(u.datecreated),
                "validationdata": "",
                "clients": [{"id": cid, "isOwner": is_owner} for cid, is_owner in u.clients],
            }
            for u in page
        ],
    }
