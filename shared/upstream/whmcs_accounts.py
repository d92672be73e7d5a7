"""The WHMCS calls about clients (billing accounts) and users (their logins).

Writes here are sent once (see :class:`shared.upstream.whmcs_connection.WhmcsConnection`), so
:meth:`WhmcsAccountCalls.find_or_add_client` resolves an unknown outcome, or an email WHMCS says is
taken, by looking the client up by email before anything is created again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from shared.logging import get_logger
from shared.upstream.errors import (
    UpstreamNotFound,
    UpstreamOutcomeUnknown,
    UpstreamUnavailable,
    UpstreamValidationError,
)
from shared.upstream.phpserialize import encode_base64
from shared.upstream.whmcs_connection import PAGE_SIZE, WhmcsConnection
from shared.upstream.whmcs_models import WhmcsClientDetails, WhmcsUser
from shared.upstream.whmcs_wire import UPSTREAM, created_id, is_duplicate_client_email, is_duplicate_user_email

log = get_logger("postpay.upstream.whmcs")


class WhmcsAccountCalls(WhmcsConnection):
    """GetClientsDetails, GetUsers, AddClient (and its reconciliation) and UpdateClient."""

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
