"""WHMCS External API client (``includes/api.php``), synchronous, over httpx.

Every answer is classified before it is trusted, in this order: 429 → rate limited; 5xx → unavailable
(outcome unknown for a write); 401/403 → refused, with WHMCS's reason; a body that is not JSON (a
maintenance or WAF page) → unavailable, never an empty result; ``result`` or ``status`` ``"error"`` →
not found or invalid; a ``warning`` without success → invalid.

Reads (``Get*``) are retried with backoff. Writes are sent once: after an unknown outcome the caller
looks the object up (by email for clients, by the marker in the notes for invoices) before trying
again; :meth:`WhmcsClient.find_or_add_client` does exactly that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from shared.logging import get_logger
from shared.settings import UpstreamSettings
from shared.upstream.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamOutcomeUnknown,
    UpstreamUnavailable,
    UpstreamValidationError,
)
from shared.upstream.http import (
    HttpClient,
    RetryPolicy,
    Timeouts,
    count_error,
    new_http_client,
    new_pacing,
    send,
    with_retries,
)
from shared.upstream.pacing import AdaptiveLimit, PacingPolicy
from shared.upstream.phpserialize import encode_base64
from shared.upstream.whmcs_models import (
    InvoiceLine,
    SsoToken,
    WhmcsClientDetails,
    WhmcsInvoice,
    WhmcsInvoiceSummary,
    WhmcsUser,
)
from shared.upstream.whmcs_wire import (
    FORM_HEADERS,
    UPSTREAM,
    classify,
    created_id,
    encode_form,
    form_urlencode,
    format_amount,
    is_duplicate_client_email,
    is_duplicate_user_email,
)

PAGE_SIZE = 100
log = get_logger("postpay.upstream.whmcs")
ModelT = TypeVar("ModelT", bound=BaseModel)


class WhmcsClient:
    """One WHMCS installation. Thread-safe: httpx's pool is shared by the calling threads."""

    def __init__(
        self,
        url: str,
        identifier: SecretStr,
        secret: SecretStr,
        *,
        accesskey: SecretStr | None = None,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        http: HttpClient | None = None,
        max_connections: int = 64,
        timezone: tzinfo = UTC,
        sleep: Callable[[float], None] = time.sleep,
        pacing: PacingPolicy | AdaptiveLimit | None = PacingPolicy(),
    ) -> None:
        """``timezone`` is the WHMCS installation's zone: its dates carry no offset. ``pacing``: how many
        calls may be in flight at once (see shared/upstream/pacing.py); None: no limit at all."""
        # Parsed once: every call goes to this one URL, and httpx would parse a string each time.
        self._endpoint = httpx.URL(url.rstrip("/") + "/includes/api.php")
        # The credentials' part of every form, encoded once (it was ~a quarter of a call's form
        # encoding). Plain text inside the client, as on the wire; nothing logs or prints it.
        credentials = {"identifier": identifier, "secret": secret, "accesskey": accesskey, "responsetype": "json"}
        self._credentials_form = form_urlencode(encode_form(credentials))
        self._retry = retry
        self._timezone = timezone
        self._sleep = sleep
        self._owns_http = http is None
        self._http = http or new_http_client(timeouts, max_connections)
        self.pacing = new_pacing(UPSTREAM, pacing)

    @classmethod
    def from_settings(cls, settings: UpstreamSettings, **overrides: Any) -> WhmcsClient:
        options: dict[str, Any] = {
            "accesskey": settings.whmcs_accesskey,
            "timeouts": Timeouts(connect=settings.upstream_connect_timeout, read=settings.upstream_read_timeout),
            "retry": RetryPolicy(
                max_attempts=settings.upstream_max_attempts, deadline_seconds=settings.upstream_deadline
            ),
            "max_connections": settings.upstream_max_connections,
            "pacing": settings.pacing(settings.whmcs_max_in_flight),
        }
        options.update(overrides)
        return cls(settings.whmcs_url, settings.whmcs_identifier, settings.whmcs_secret, **options)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> WhmcsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport and classification ------------------------------------------------------------
    def _post(self, action: str, params: Mapping[str, Any], *, write: bool) -> dict[str, Any]:
        fields = form_urlencode(encode_form({"action": action, **params}))
        body = f"{fields}&{self._credentials_form}"
        response = send(
            self._http,
            upstream=UPSTREAM,
            label=action,
            method="POST",
            url=self._endpoint,
            write=write,
            pacing=self.pacing,
            content=body.encode("ascii"),
            headers=FORM_HEADERS,
        )
        try:
            return classify(action, response, write=write)
        except UpstreamError as error:
            count_error(UPSTREAM, action, error)
            raise

    def _read(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return with_retries(self._retry, lambda: self._post(action, params, write=False), sleep=self._sleep)

    def _write(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return self._post(action, params, write=True)

    def _parse(self, model: type[ModelT], data: Any, action: str) -> ModelT:
        """A typed view of an answer; an answer that does not fit is a contract break, not a retry."""
        try:
            return model.model_validate(data, context={"tz": self._timezone})
        except ValidationError as exc:
            raise UpstreamValidationError(
                f"whmcs {action}: unexpected answer shape ({exc.error_count()} problems, first: "
                f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']})",
                upstream=UPSTREAM,
            ) from exc

    def _day(self, value: date) -> str:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("datetimes sent to WHMCS must be timezone-aware")
            value = value.astimezone(self._timezone).date()
        return value.isoformat()

    # -- clients and users -----------------------------------------------------------------------
    def _client_details(self, params: Mapping[str, Any]) -> WhmcsClientDetails | None:
        try:
            payload = self._read("GetClientsDetails", params)
        except UpstreamNotFound:
            return None
        data = payload.get("client") if isinstance(payload.get("client"), dict) else payload
        return self._parse(WhmcsClientDetails, data, "GetClientsDetails")

    def get_client(self, client_id: int) -> WhmcsClientDetails | None:
        return self._client_details({"clientid": client_id})

    def get_client_by_email(self, email: str) -> WhmcsClientDetails | None:
        client = self._client_details({"email": email})
        # GetClientsDetails is an exact lookup; checking costs nothing and guards against prefix matches.
        if client is not None and client.email.strip().lower() != email.strip().lower():
            return None
        return client

    def find_user_by_email(self, email: str) -> WhmcsUser | None:
        payload = self._read("GetUsers", {"search": email, "limitnum": PAGE_SIZE})
        users = payload.get("users") or []
        if isinstance(users, dict):
            users = users.get("user", [])
        for row in users:
            user = self._parse(WhmcsUser, row, "GetUsers")
            if user.email.strip().lower() == email.strip().lower():
                return user
        return None

    def add_client(
        self,
        *,
        firstname: str,
        lastname: str,
        email: str,
        password: SecretStr | None,
        companyname: str = "",
        country: str = "US",
        currency_id: int | None = None,
        clientip: str | None = None,
        noemail: bool = True,
        skipvalidation: bool = True,
        owner_user_id: int | None = None,
        customfields: Mapping[int, str] | None = None,
    ) -> int:
        """AddClient, sent once. ``password`` becomes the new user's login (``password2``); with
        ``owner_user_id`` the client is attached to that existing user instead."""
        payload = self._write(
            "AddClient",
            {
                "firstname": firstname,
                "lastname": lastname,
                "email": email,
                "password2": password if owner_user_id is None else None,
                "owner_user_id": owner_user_id,
                "companyname": companyname,
                "country": country,
                "currency": currency_id,
                "clientip": clientip,
                "noemail": noemail,
                "skipvalidation": skipvalidation,
                "customfields": encode_base64(customfields) if customfields else None,
            },
        )
        return created_id(payload, "clientid", "AddClient")

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
        """The client with this email, created if there is none. Safe to call again after any failure.

        The create is never retried blindly: when its outcome is unknown, or WHMCS says the email is
        taken, the client is looked up by email. When only a *user* (login) has the email, the client
        is created under that user.
        """
        existing = self.get_client_by_email(email)
        if existing is not None:
            return existing
        fields: dict[str, Any] = {
            "firstname": firstname,
            "lastname": lastname,
            "email": email,
            "password": password,
            "companyname": companyname,
            "country": country,
            "currency_id": currency_id,
            "clientip": clientip,
            "noemail": noemail,
            "skipvalidation": skipvalidation,
            "customfields": customfields,
        }
        try:
            outcome = self._add_reconciled(fields)
        except UpstreamValidationError as error:
            if not is_duplicate_user_email(error):
                raise
            user = self.find_user_by_email(email)
            if user is None:
                raise
            outcome = self._add_reconciled({**fields, "owner_user_id": user.id})
        if isinstance(outcome, WhmcsClientDetails):
            return outcome
        created = self.get_client(outcome)
        if created is None:
            raise UpstreamUnavailable(f"whmcs client {outcome} was created but cannot be read", upstream=UPSTREAM)
        return created

    def _add_reconciled(self, fields: dict[str, Any]) -> int | WhmcsClientDetails:
        """AddClient once; if its outcome is unknown or the email is taken, the client found by email."""
        email = fields["email"]
        try:
            return self.add_client(**fields)
        except UpstreamOutcomeUnknown:
            log.warning("whmcs AddClient outcome unknown; looking the client up by email")
            return self._created_meanwhile(email, "AddClient outcome unknown")
        except UpstreamValidationError as error:
            if is_duplicate_client_email(error):
                return self._created_meanwhile(email, str(error))
            raise

    def _created_meanwhile(self, email: str, reason: str) -> WhmcsClientDetails:
        found = self.get_client_by_email(email)
        if found is None:
            raise UpstreamOutcomeUnknown(
                f"whmcs AddClient: {reason}, and no client has that email yet", upstream=UPSTREAM
            )
        return found

    def update_client(self, client_id: int, **fields: Any) -> None:
        """UpdateClient with WHMCS parameter names (``status="Inactive"``, ``currency=2``, ...).
        ``customfields`` may be a mapping of field id to text; it is encoded as WHMCS expects."""
        if isinstance(fields.get("customfields"), Mapping):
            fields["customfields"] = encode_base64(fields["customfields"])
        self._write("UpdateClient", {"clientid": client_id, **fields})

    # -- invoices --------------------------------------------------------------------------------
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
        """CreateInvoice, sent once. Put a unique marker in ``notes``: after
        :class:`UpstreamOutcomeUnknown`, :meth:`find_invoice_by_marker` tells whether it exists."""
        if not lines:
            raise ValueError("an invoice needs at least one line")
        params: dict[str, Any] = {
            "userid": client_id,
            "date": self._day(date),
            "duedate": self._day(due_date),
            "notes": notes,
            "sendinvoice": send_invoice,
            "draft": draft,
            "paymentmethod": payment_method,
            "taxrate": str(tax_rate) if tax_rate is not None else None,
            "taxrate2": str(tax_rate2) if tax_rate2 is not None else None,
        }
        for number, line in enumerate(lines, start=1):
            params[f"itemdescription{number}"] = line.description
            params[f"itemamount{number}"] = format_amount(line.amount)
            params[f"itemtaxed{number}"] = line.taxed
        return created_id(self._write("CreateInvoice", params), "invoiceid", "CreateInvoice")

    def _invoice_pages(self, client_id: int, status: str | None) -> Iterator[WhmcsInvoiceSummary]:
        start = 0
        while True:
            payload = self._read(
                "GetInvoices",
                {
                    "userid": client_id,
                    "status": status,
                    "limitstart": start,
                    "limitnum": PAGE_SIZE,
                    "orderby": "id",
                    "order": "asc",
                },
            )
            invoices = payload.get("invoices")
            rows = invoices.get("invoice", []) if isinstance(invoices, dict) else []
            for row in rows:
                yield self._parse(WhmcsInvoiceSummary, row, "GetInvoices")
            start += len(rows)
            if not rows or start >= int(payload.get("totalresults") or 0):
                return

    def get_invoices(self, client_id: int, status: str | None = None) -> list[WhmcsInvoiceSummary]:
        """Every invoice of the client (all pages), oldest first. ``status`` may be ``"Overdue"``."""
        return list(self._invoice_pages(client_id, status))

    def find_invoice_by_marker(self, client_id: int, marker: str) -> WhmcsInvoiceSummary | None:
        """The client's invoice whose notes contain ``marker`` (the oldest, if somehow several)."""
        if not marker:
            raise ValueError("an empty marker would match every invoice")
        matches = [inv for inv in self._invoice_pages(client_id, None) if marker in inv.notes]
        if len(matches) > 1:
            log.warning("whmcs invoices share a marker", client_id=client_id, invoice_ids=[m.id for m in matches])
        return matches[0] if matches else None

    def get_invoice(self, invoice_id: int, *, include_currency: bool = False) -> WhmcsInvoice:
        """GetInvoice; raises :class:`UpstreamNotFound`. With ``include_currency`` the currency code
        comes from the invoice's GetInvoices row (one more paged read)."""
        payload = self._read("GetInvoice", {"invoiceid": invoice_id})
        invoice = self._parse(WhmcsInvoice, payload, "GetInvoice")
        if include_currency:
            summary = next((s for s in self._invoice_pages(invoice.client_id, None) if s.id == invoice.id), None)
            if summary is not None:
                invoice = invoice.model_copy(update={"currency_code": summary.currency_code})
        return invoice

    def update_invoice(self, invoice_id: int, **fields: Any) -> None:
        """UpdateInvoice with WHMCS parameter names. Line edits take mappings keyed by line id
        (``itemamount={12: "9.99"}``), new lines lists (``newitemdescription=[...]``),
        ``deletelineids=[...]``; booleans go as 1/0, Decimals as text."""
        self._write("UpdateInvoice", {"invoiceid": invoice_id, **fields})

    def add_invoice_payment(
        self,
        invoice_id: int,
        *,
        transid: str,
        gateway: str,
        date: datetime,
        amount: Decimal | None = None,
        noemail: bool = False,
    ) -> None:
        """AddInvoicePayment, sent once; WHMCS does not reject a repeated ``transid`` here. Without
        ``amount`` the whole balance is paid."""
        if date.tzinfo is None:
            raise ValueError("the payment date must be timezone-aware")
        self._write(
            "AddInvoicePayment",
            {
                "invoiceid": invoice_id,
                "transid": transid,
                "gateway": gateway,
                "date": date.astimezone(self._timezone).strftime("%Y-%m-%d %H:%M:%S"),
                "amount": format_amount(amount) if amount is not None else None,
                "noemail": noemail,
            },
        )

    # -- sign-on and email -----------------------------------------------------------------------
    def create_sso_token(
        self, client_id: int, *, destination: str = "clientarea:homepage", redirect_path: str | None = None
    ) -> SsoToken:
        if redirect_path is not None and destination != "sso:custom_redirect":
            raise ValueError("redirect_path needs destination='sso:custom_redirect'")
        payload = self._write(
            "CreateSsoToken",
            {"client_id": client_id, "destination": destination, "sso_redirect_path": redirect_path},
        )
        token, url = payload.get("access_token"), payload.get("redirect_url")
        if not token or not url:
            raise UpstreamValidationError("whmcs CreateSsoToken: success without a token", upstream=UPSTREAM)
        return SsoToken(access_token=str(token), redirect_url=str(url))

    def send_email(
        self,
        *,
        messagename: str | None = None,
        related_id: int,
        customtype: str | None = None,
        subject: str | None = None,
        message: str | None = None,
        customvars: Mapping[str, Any] | None = None,
    ) -> None:
        """SendEmail: a template by ``messagename``, or an ad-hoc ``customtype`` + subject + message.
        ``related_id`` is the client id for general mails, the invoice id for invoice mails."""
        if not messagename and not (customtype and subject and message):
            raise ValueError("send a template (messagename) or a custom type, subject and message")
        self._write(
            "SendEmail",
            {
                "messagename": messagename,
                "id": related_id,
                "customtype": customtype if not messagename else None,
                "customsubject": subject if not messagename else None,
                "custommessage": message if not messagename else None,
                "customvars": encode_base64(customvars) if customvars else None,
            },
        )
