"""``/_sim/...``: test and demo controls of the WHMCS simulator. Not part of WHMCS.

Read what postpay did (clients, invoices, payments, emails, SSO tokens), change what an operator
would change in the WHMCS admin area (currencies, a client's currency/status/email, deleting a client,
paying an invoice, tax and access settings), and save or load the whole state.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulators.common import SimClock, admin_routes
from simulators.faults import FaultInjector
from simulators.whmcs.persistence import dump_state, load_file, load_state, save_file, to_jsonable
from simulators.whmcs.state import (
    CLIENT_STATUSES,
    Client,
    CustomFieldDefinition,
    EmailTemplate,
    Invoice,
    Transaction,
    WhmcsState,
    currency_from,
    is_overdue,
    money,
)

if TYPE_CHECKING:
    from simulators.whmcs.app import Access


def client_view(state: WhmcsState, client: Client) -> dict[str, Any]:
    currency = state.currency_of(client)
    return {
        "id": client.id,
        "email": client.email,
        "firstname": client.firstname,
        "lastname": client.lastname,
        "companyname": client.companyname,
        "status": client.status,
        "country": client.country,
        "currency_id": currency.id,
        "currency_code": currency.code,
        "allow_sso": client.allow_sso,
        "taxexempt": client.taxexempt,
        "credit": str(client.credit),
        "owner_user_id": client.owner_user_id,
        "datecreated": client.datecreated.isoformat(),
        "customfields": {str(k): v for k, v in client.customfields.items()},
    }


def invoice_view(state: WhmcsState, invoice: Invoice, today: Any) -> dict[str, Any]:
    client = state.clients.get(invoice.client_id)
    currency = state.currency_of(client) if client else state.default_currency()
    return {
        "id": invoice.id,
        "client_id": invoice.client_id,
        "status": invoice.status,
        "overdue": is_overdue(invoice, today),
        "date": invoice.date.isoformat(),
        "duedate": invoice.duedate.isoformat(),
        "datepaid": invoice.datepaid.isoformat() if invoice.datepaid else None,
        "subtotal": str(invoice.subtotal),
        "tax": str(invoice.tax),
        "tax2": str(invoice.tax2),
        "credit": str(invoice.credit),
        "total": str(invoice.total),
        "balance": str(state.balance(invoice)),
        "taxrate": str(invoice.taxrate),
        "taxrate2": str(invoice.taxrate2),
        "currency_code": currency.code,
        "paymentmethod": invoice.paymentmethod,
        "notes": invoice.notes,
        "items": [
            {"id": i.id, "description": i.description, "amount": str(i.amount), "taxed": i.taxed} for i in invoice.items
        ],
    }


def _not_found(what: str) -> JSONResponse:
    return JSONResponse({"error": f"{what} not found"}, status_code=404)


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


Endpoint = Callable[[Request], Awaitable[Response]]


def _bad_input_is_400(endpoint: Endpoint) -> Endpoint:
    """A malformed id, amount or body is the caller's mistake: say so instead of a 500."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
            return _bad_request(f"bad input: {exc!r}")

    return guarded


def whmcs_admin_routes(state: WhmcsState, access: Access, faults: FaultInjector, clock: SimClock) -> list[Route]:
    async def list_clients(request: Request) -> JSONResponse:
        email, status = request.query_params.get("email"), request.query_params.get("status")
        with state.lock:
            found = [state.client_by_email(email)] if email else list(state.clients.values())
            rows = [client_view(state, c) for c in found if c is not None and (not status or c.status == status)]
        return JSONResponse({"clients": rows})

    async def get_client(request: Request) -> JSONResponse:
        with state.lock:
            client = state.clients.get(request.path_params["client_id"])
            return JSONResponse(client_view(state, client)) if client else _not_found("client")

    async def patch_client(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        with state.lock:
            client = state.clients.get(request.path_params["client_id"])
            if client is None:
                return _not_found("client")
            if "currency_id" in body and int(body["currency_id"]) not in state.currencies:
                return _bad_request(f"no currency {body['currency_id']}")
            if "status" in body and body["status"] not in CLIENT_STATUSES:
                return _bad_request(f"status must be one of {', '.join(CLIENT_STATUSES)}")
            if "email" in body:
                other = state.client_by_email(body["email"])
                if other is not None and other is not client:
                    return _bad_request("email already used by another client")
                state.change_client_email(client, str(body["email"]))
            if "currency_id" in body:
                client.currency_id = int(body["currency_id"])
            if "status" in body:
                client.status = body["status"]
            if "allow_sso" in body:
                client.allow_sso = bool(body["allow_sso"])
            if "taxexempt" in body:
                client.taxexempt = bool(body["taxexempt"])
            if "credit" in body:
                client.credit = money(Decimal(str(body["credit"])))
            return JSONResponse(client_view(state, client))

    async def delete_client(request: Request) -> JSONResponse:
        with state.lock:
            client = state.clients.get(request.path_params["client_id"])
            if client is None:
                return _not_found("client")
            state.delete_client(client)
        return JSONResponse({"deleted": client.id})

    async def list_users(request: Request) -> JSONResponse:
        with state.lock:
            rows = [
                {
                    "id": u.id,
                    "email": u.email,
                    "firstname": u.firstname,
                    "lastname": u.lastname,
                    "clients": [{"id": cid, "is_owner": owner} for cid, owner in u.clients],
                }
                for u in state.users.values()
            ]
        return JSONResponse({"users": rows})

    async def list_invoices(request: Request) -> JSONResponse:
        client_id, status = request.query_params.get("client_id"), request.query_params.get("status")
        today = clock.now().date()
        with state.lock:
            found = state.invoices_of(int(client_id)) if client_id else list(state.invoices.values())
            rows = [invoice_view(state, i, today) for i in found if not status or i.status == status]
        return JSONResponse({"invoices": rows})

    async def get_invoice(request: Request) -> JSONResponse:
        with state.lock:
            invoice = state.invoices.get(request.path_params["invoice_id"])
            if invoice is None:
                return _not_found("invoice")
            return JSONResponse(invoice_view(state, invoice, clock.now().date()))

    async def pay_invoice(request: Request) -> JSONResponse:
        """Mark an invoice paid as a customer's payment would: a transaction for the balance."""
        body: dict[str, Any] = await request.json() if await request.body() else {}
        with state.lock:
            invoice = state.invoices.get(request.path_params["invoice_id"])
            if invoice is None:
                return _not_found("invoice")
            if invoice.status == "Cancelled":
                return _bad_request("invoice is Cancelled")
            now = clock.now()
            amount = money(Decimal(str(body["amount"]))) if "amount" in body else state.balance(invoice)
            state.add_transaction(
                Transaction(
                    id=state.next_id("transaction"),
                    client_id=invoice.client_id,
                    invoice_id=invoice.id,
                    transid=str(body.get("transid") or f"sim-{invoice.id}-{now.timestamp():.0f}"),
                    gateway=str(body.get("gateway") or "mailin"),
                    date=now,
                    amountin=amount,
                    description=f"Invoice Payment (#{invoice.id})",
                )
            )
            if state.balance(invoice) <= 0:
                invoice.status, invoice.datepaid, invoice.updated_at = "Paid", now, now
            return JSONResponse(invoice_view(state, invoice, now.date()))

    async def list_payments(request: Request) -> JSONResponse:
        invoice_id = request.query_params.get("invoice_id")
        with state.lock:
            found = state.transactions_of(int(invoice_id)) if invoice_id else list(state.transactions.values())
            rows = [to_jsonable(t) for t in found]
        return JSONResponse({"payments": rows})

    async def list_emails(request: Request) -> JSONResponse:
        query = request.query_params
        with state.lock:
            rows = [
                to_jsonable(e)
                for e in state.emails
                if (not query.get("client_id") or e.client_id == int(query["client_id"]))
                and (not query.get("messagename") or e.messagename == query["messagename"])
                and (not query.get("related_id") or e.related_id == int(query["related_id"]))
            ]
        return JSONResponse({"emails": rows})

    async def clear_emails(request: Request) -> JSONResponse:
        with state.lock:
            state.emails.clear()
        return JSONResponse({"emails": []})

    async def list_currencies(request: Request) -> JSONResponse:
        with state.lock:
            return JSONResponse({"currencies": [to_jsonable(c) for c in state.currencies.values()]})

    async def put_currencies(request: Request) -> JSONResponse:
        """Add or replace currencies by id: ``{"currencies": [{id, code, prefix, suffix, is_default}]}``."""
        body: dict[str, Any] = await request.json()
        with state.lock:
            for item in body.get("currencies", []):
                currency = currency_from(item)
                if currency.is_default:
                    for other in state.currencies.values():
                        other.is_default = False
                state.currencies[currency.id] = currency
            return JSONResponse({"currencies": [to_jsonable(c) for c in state.currencies.values()]})

    async def list_sso(request: Request) -> JSONResponse:
        with state.lock:
            return JSONResponse({"tokens": [to_jsonable(g) for g in state.sso_grants.values()]})

    def config_view() -> dict[str, Any]:
        return {
            "allowed_ips": sorted(access.allowed_ips) if access.allowed_ips is not None else None,
            "permitted_actions": sorted(access.permitted_actions) if access.permitted_actions is not None else None,
            "taxrate": str(state.tax.taxrate),
            "taxrate2": str(state.tax.taxrate2),
            "tax_inclusive": state.tax.inclusive,
            "tax_compound": state.tax.compound,
            "date_format": state.date_format,
            "custom_fields": [to_jsonable(f) for f in state.custom_fields.values()],
            "email_templates": [to_jsonable(t) for t in state.templates.values()],
        }

    async def get_config(request: Request) -> JSONResponse:
        with state.lock:
            return JSONResponse(config_view())

    async def patch_config(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        with state.lock:
            if "allowed_ips" in body:
                ips = body["allowed_ips"]
                access.allowed_ips = set(ips) if ips is not None else None
            if "permitted_actions" in body:
                actions = body["permitted_actions"]
                access.permitted_actions = {a.lower() for a in actions} if actions is not None else None
            for key, attribute in (("taxrate", "taxrate"), ("taxrate2", "taxrate2")):
                if key in body:
                    setattr(state.tax, attribute, Decimal(str(body[key])))
            if "tax_inclusive" in body:
                state.tax.inclusive = bool(body["tax_inclusive"])
            if "tax_compound" in body:
                state.tax.compound = bool(body["tax_compound"])
            if "date_format" in body:
                state.date_format = str(body["date_format"])
            for item in body.get("custom_fields", []):
                field = CustomFieldDefinition(int(item["id"]), str(item["name"]), bool(item.get("required")))
                state.custom_fields[field.id] = field
            for item in body.get("email_templates", []):
                template = EmailTemplate(
                    str(item["name"]),
                    str(item.get("type", "general")),
                    str(item.get("subject", "")),
                    str(item.get("message", "")),
                    bool(item.get("disabled", False)),
                    bool(item.get("api_sendable", True)),
                )
                state.templates[template.name.lower()] = template
            return JSONResponse(config_view())

    async def get_state(request: Request) -> JSONResponse:
        return JSONResponse(dump_state(state))

    async def put_state(request: Request) -> JSONResponse:
        try:
            load_state(state, await request.json())
        except (KeyError, ValueError) as exc:
            return _bad_request(f"not a WHMCS simulator state: {exc}")
        return JSONResponse({"clients": len(state.clients), "invoices": len(state.invoices)})

    def _state_path(request: Request, body: dict[str, Any]) -> Path | None:
        path = body.get("path") or getattr(request.app.state, "state_file", None)
        return Path(path) if path else None

    async def save_state(request: Request) -> Response:
        body: dict[str, Any] = await request.json() if await request.body() else {}
        path = _state_path(request, body)
        if path is None:
            return _bad_request("no path given and the simulator was started without a state file")
        save_file(state, path)
        return JSONResponse({"saved": str(path), "at": datetime.now(UTC).isoformat()})

    async def load_state_file(request: Request) -> Response:
        body: dict[str, Any] = await request.json() if await request.body() else {}
        path = _state_path(request, body)
        if path is None or not path.exists():
            return _bad_request("no state file to load")
        load_file(state, path)
        return JSONResponse({"loaded": str(path), "clients": len(state.clients), "invoices": len(state.invoices)})

    async def reset(request: Request) -> JSONResponse:
        state.reset()
        faults.clear()
        return JSONResponse({"reset": True})

    routes = [
        Route("/_sim/clients", list_clients, methods=["GET"]),
        Route("/_sim/clients/{client_id:int}", get_client, methods=["GET"]),
        Route("/_sim/clients/{client_id:int}", patch_client, methods=["PATCH"]),
        Route("/_sim/clients/{client_id:int}", delete_client, methods=["DELETE"]),
        Route("/_sim/users", list_users, methods=["GET"]),
        Route("/_sim/invoices", list_invoices, methods=["GET"]),
        Route("/_sim/invoices/{invoice_id:int}", get_invoice, methods=["GET"]),
        Route("/_sim/invoices/{invoice_id:int}/pay", pay_invoice, methods=["POST"]),
        Route("/_sim/payments", list_payments, methods=["GET"]),
        Route("/_sim/emails", list_emails, methods=["GET"]),
        Route("/_sim/emails", clear_emails, methods=["DELETE"]),
        Route("/_sim/currencies", list_currencies, methods=["GET"]),
        Route("/_sim/currencies", put_currencies, methods=["PUT"]),
        Route("/_sim/sso", list_sso, methods=["GET"]),
        Route("/_sim/config", get_config, methods=["GET"]),
        Route("/_sim/config", patch_config, methods=["PATCH"]),
        Route("/_sim/state", get_state, methods=["GET"]),
        Route("/_sim/state", put_state, methods=["PUT"]),
        Route("/_sim/state/save", save_state, methods=["POST"]),
        Route("/_sim/state/load", load_state_file, methods=["POST"]),
        Route("/_sim/reset", reset, methods=["POST"]),
    ]
    guarded = [Route(r.path, _bad_input_is_400(r.endpoint), methods=r.methods) for r in routes]
    return [*guarded, *admin_routes(faults, clock)]
