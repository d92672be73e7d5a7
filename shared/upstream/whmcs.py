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

from collections.abc import Mapping
from typing import Any

from shared.settings import UpstreamSettings
from shared.upstream.errors import UpstreamValidationError
from shared.upstream.http import Timeouts
from shared.upstream.phpserialize import encode_base64
from shared.upstream.retries import RetryPolicy
from shared.upstream.whmcs_accounts import WhmcsAccountCalls
from shared.upstream.whmcs_invoices import WhmcsInvoiceCalls
from shared.upstream.whmcs_models import SsoToken
from shared.upstream.whmcs_wire import UPSTREAM


class WhmcsClient(WhmcsAccountCalls, WhmcsInvoiceCalls):
    """One WHMCS installation. Thread-safe: httpx's pool is shared by the calling threads.

    The connection (endpoint, credentials, retries, pacing) is :class:`WhmcsConnection`
    (whmcs_connection.py); the client and user calls are in whmcs_accounts.py, the invoice calls in
    whmcs_invoices.py; sign-on and email are here."""

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
