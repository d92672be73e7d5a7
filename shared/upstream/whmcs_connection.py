"""One WHMCS installation's endpoint, credentials and pacing: the part of the client every call shares.

Each call is one form POST to ``includes/api.php``; its answer is classified
(:func:`shared.upstream.whmcs_wire.classify`) before anything reads it. Reads go through
:meth:`WhmcsConnection._read` (retried with backoff), writes through :meth:`WhmcsConnection._write`
(sent once). The calls themselves live in whmcs_accounts.py, whmcs_invoices.py and whmcs.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, tzinfo
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from shared.upstream.errors import UpstreamError, UpstreamValidationError
from shared.upstream.http import HttpClient, Timeouts, UpstreamConnection, count_error, send
from shared.upstream.pacing import AdaptiveLimit, PacingPolicy
from shared.upstream.retries import RetryPolicy, with_retries
from shared.upstream.whmcs_wire import FORM_HEADERS, UPSTREAM, classify, encode_form, form_urlencode

PAGE_SIZE = 100
ModelT = TypeVar("ModelT", bound=BaseModel)


class WhmcsConnection(UpstreamConnection):
    """Sends one action to a WHMCS installation and returns its classified answer; the calls build on it."""

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
        super().__init__(UPSTREAM, http, timeouts, max_connections, pacing)

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
