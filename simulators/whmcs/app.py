"""The WHMCS External API simulator: ``POST /includes/api.php`` and the SSO browser routes.

Gatekeeping runs in the order the reference gives (IP allow-list unless a valid access key, then
credentials, then the role's permissions, then the action name). Application errors are HTTP 200
``{"result": "error"}``; only the gate answers 403. Every request goes through the fault injector
under its canonical action name, so a rule can target ``"CreateInvoice"``.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulators.common import SimClock
from simulators.faults import FaultInjector, Flavor, with_faults
from simulators.whmcs import clients, emails, invoices, sso
from simulators.whmcs.admin import whmcs_admin_routes
from simulators.whmcs.params import ActionContext, ApiError, Form
from simulators.whmcs.state import Currency, WhmcsState, currency_from

Handler = Callable[[ActionContext, Form], dict[str, Any]]

_HANDLERS: tuple[tuple[str, Handler], ...] = (
    ("AddClient", clients.add_client),
    ("GetClients", clients.get_clients),
    ("GetClientsDetails", clients.get_clients_details),
    ("UpdateClient", clients.update_client),
    ("GetUsers", clients.get_users),
    ("CreateInvoice", invoices.create_invoice),
    ("GetInvoices", invoices.get_invoices),
    ("GetInvoice", invoices.get_invoice),
    ("UpdateInvoice", invoices.update_invoice),
    ("AddInvoicePayment", invoices.add_invoice_payment),
    ("AddTransaction", invoices.add_transaction),
    ("CreateSsoToken", sso.create_sso_token),
    ("SendEmail", emails.send_email),
    ("GetEmails", emails.get_emails),
)
# WHMCS matches action names case-insensitively; faults and logs use the documented spelling.
ACTIONS: dict[str, tuple[str, Handler]] = {name.lower(): (name, handler) for name, handler in _HANDLERS}


@dataclass
class Access:
    """Who may call the API. Mutable at run time through ``/_sim/config``."""

    identifier: str
    secret: str
    accesskey: str | None = None
    allowed_ips: set[str] | None = None
    admin_username: str = "admin"
    admin_password: str = "demo-admin-password"
    permitted_actions: set[str] | None = None

    def ip_refused(self, form: Form, ip: str) -> bool:
        if self.allowed_ips is None or ip in self.allowed_ips:
            return False
        sent_key = form.get("accesskey")
        return not (self.accesskey and sent_key and hmac.compare_digest(sent_key, self.accesskey))

    def authenticated(self, form: Form) -> bool:
        pairs = [(form.get("identifier"), form.get("secret")), (form.get("username"), form.get("password"))]
        for user, password in pairs:
            if not user or not password:
                continue
            if _same(user, self.identifier) and _same(password, self.secret):
                return True
            admin_md5 = hashlib.md5(self.admin_password.encode("utf-8")).hexdigest()
            if _same(user, self.admin_username) and _same(password.lower(), admin_md5):
                return True
        return False

    def permits(self, action: str) -> bool:
        return self.permitted_actions is None or action.lower() in self.permitted_actions


class CallCounter:
    """Requests received per action, faulted or not: lets tests assert retries on the wire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self, action: str) -> None:
        with self._lock:
            self._counts[action] += 1

    def __getitem__(self, action: str) -> int:
        with self._lock:
            return self._counts[action]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _error(message: str, status: int = 200) -> JSONResponse:
    return JSONResponse({"result": "error", "message": message}, status_code=status)


async def _form(request: Request) -> Form:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/"):
        data = await request.form()
        return Form([(key, str(value)) for key, value in data.multi_items()])
    # The hot path: parse_qsl is several times faster than the multipart parser for url-encoded bodies.
    body = (await request.body()).decode("utf-8", errors="replace")
    return Form(parse_qsl(body, keep_blank_values=True))


def create_app(
    state: WhmcsState | None = None,
    *,
    identifier: str = "demo-identifier",
    secret: str = "demo-secret",
    accesskey: str | None = None,
    allowed_ips: Iterable[str] | None = None,
    seed: int = 0,
    clock: SimClock | None = None,
    currencies: Iterable[Currency | Mapping[str, Any]] | None = None,
    admin_username: str = "admin",
    admin_password: str = "demo-admin-password",
    permitted_actions: Iterable[str] | None = None,
    public_url: str | None = None,
    faults: FaultInjector | None = None,
) -> Starlette:
    """Build the simulator. ``allowed_ips=None`` allows every caller; ``permitted_actions=None``
    gives the API role every action. ``public_url`` is WHMCS's System URL (used in SSO redirect
    URLs); by default the URL the request came in on."""
    if state is None:
        state = WhmcsState([currency_from(c) for c in currencies] if currencies is not None else None)
    clock = clock or SimClock()
    faults = faults or FaultInjector(seed)
    calls = CallCounter()
    access = Access(
        identifier=identifier,
        secret=secret,
        accesskey=accesskey,
        allowed_ips=set(allowed_ips) if allowed_ips is not None else None,
        admin_username=admin_username,
        admin_password=admin_password,
        permitted_actions={a.lower() for a in permitted_actions} if permitted_actions is not None else None,
    )

    def answer(request: Request, form: Form, action: str, handler: Handler | None) -> Response:
        client_ip = request.client.host if request.client else ""
        if access.ip_refused(form, client_ip):
            return _error(f"Invalid IP {client_ip}", 403)
        if not access.authenticated(form):
            return _error("Authentication Failed", 403)
        if not access.permits(action):
            return _error(f'Invalid Permissions: API action "{action.lower()}" is not allowed', 403)
        if handler is None:
            return _error("Command Not Found")
        base_url = (public_url or str(request.base_url)).rstrip("/")
        context = ActionContext(state=state, clock=clock, base_url=base_url)
        try:
            with state.lock:
                return JSONResponse(handler(context, form))
        except ApiError as error:
            return _error(error.message)

    async def api(request: Request) -> Response:
        try:
            form = await _form(request)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it
        raw_action = form.get("action")
        action, handler = ACTIONS.get(raw_action.lower(), (raw_action, None))
        calls.count(action)

        async def work() -> Response:
            return answer(request, form, action, handler)

        return await with_faults(faults, action, Flavor.WHMCS, work)

    async def single_sign_on(request: Request) -> Response:
        async def work() -> Response:
            return sso.redeem(state, request.query_params.get("access_token", ""), clock.now())

        return await with_faults(faults, "GET /oauth/singlesignon.php", Flavor.WHMCS, work)

    async def client_area(request: Request) -> Response:
        with state.lock:
            return sso.client_area_page(state, request)

    async def get_calls(request: Request) -> JSONResponse:
        return JSONResponse({"calls": calls.snapshot()})

    async def clear_calls(request: Request) -> JSONResponse:
        calls.clear()
        return JSONResponse({"calls": {}})

    routes = [
        Route("/includes/api.php", api, methods=["POST"]),
        Route("/_sim/calls", get_calls, methods=["GET"]),
        Route("/_sim/calls", clear_calls, methods=["DELETE"]),
        Route("/oauth/singlesignon.php", single_sign_on, methods=["GET"]),
        *whmcs_admin_routes(state, access, faults, clock),
        Route("/{page}.php", client_area, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.sim = state
    app.state.clock = clock
    app.state.faults = faults
    app.state.access = access
    app.state.calls = calls
    return app
