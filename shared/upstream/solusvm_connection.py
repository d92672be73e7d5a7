"""One SolusVM 2 panel's origin, token and pacing: the part of the client every call shares.

Each request is one attempt through ``shared.upstream.http.send``; a failure status becomes its typed
upstream error (:meth:`SolusVMConnection._error_for`), a success its JSON envelope, and an answer that
breaks the contract :class:`SolusVMResponseError`. ``_get`` and ``_write`` retry what may be retried
(see solusvm.py for why a write is safe to repeat); ``_pages`` walks a paged list. The calls themselves
live in solusvm.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError

from shared.errors import PermanentError
from shared.upstream.errors import (
    UpstreamAuthError,
    UpstreamError,
    UpstreamNotFound,
    UpstreamOutcomeUnknown,
    UpstreamRateLimited,
    UpstreamUnavailable,
    UpstreamValidationError,
)
from shared.upstream.http import HttpClient, Reply, Timeouts, UpstreamConnection, count_error, retry_after_seconds, send
from shared.upstream.pacing import AdaptiveLimit, PacingPolicy
from shared.upstream.retries import RetryPolicy, with_retries
from shared.upstream.solusvm_models import coerce_int

UPSTREAM = "solusvm"
DEFAULT_USAGE_PATH = "/api/v1/users/{id}/usage"
DEFAULT_SSO_PATH = "/auth/by_token"
# A server whose paging never ends must not keep a handler looping (§1.6).
DEFAULT_MAX_PAGES = 200

ModelT = TypeVar("ModelT", bound=BaseModel)


class SolusVMResponseError(UpstreamError, PermanentError):
    """SolusVM 2 answered with a success status but a body that breaks the contract (retrying won't help)."""


def _panel_origin(base_url: str) -> str:
    origin = base_url.rstrip("/")
    # Accept a base URL given with the API path, as some configurations do.
    return origin[: -len("/api/v1")] if origin.endswith("/api/v1") else origin


def _validation_errors(body: Any) -> dict[str, list[str]]:
    raw = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(raw, dict):
        return {}
    return {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in raw.items()}


class SolusVMConnection(UpstreamConnection):
    """Sends one request to a SolusVM 2 panel and returns its checked envelope; the calls build on it."""

    def __init__(
        self,
        base_url: str,
        api_token: SecretStr,
        *,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        usage_path: str = DEFAULT_USAGE_PATH,
        sso_path: str = DEFAULT_SSO_PATH,
        http: HttpClient | None = None,
        max_connections: int = 64,
        sleep: Callable[[float], None] = time.sleep,
        max_pages: int = DEFAULT_MAX_PAGES,
        pacing: PacingPolicy | AdaptiveLimit | None = PacingPolicy(),
    ) -> None:
        """``pacing``: how many calls may be in flight at once (see shared/upstream/pacing.py); None: no
        limit at all."""
        if "{id}" not in usage_path:
            raise ValueError("usage_path must contain {id}")
        self.origin = _panel_origin(base_url)
        self._api_token = api_token
        self._timeout = timeouts.as_httpx()
        self._retry = retry
        self._usage_path = usage_path
        self._sso_path = sso_path
        self._sleep = sleep
        self._max_pages = max_pages
        super().__init__(UPSTREAM, http, timeouts, max_connections, pacing)

    # Plumbing --------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._api_token.get_secret_value()}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    def _request(
        self,
        method: str,
        path: str,
        label: str,
        *,
        write: bool,
        expected: tuple[int, ...],
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One attempt: send, map a failure status to its typed error, return the JSON envelope."""
        call = f"{method} {label}"
        response = send(
            self._http,
            upstream=UPSTREAM,
            label=call,
            method=method,
            url=self.origin + path,
            write=write,
            pacing=self.pacing,
            params=params,
            json=json,
            headers=self._headers(),
            timeout=self._timeout,
        )
        try:
            if response.status_code not in expected:
                raise self._error_for(response, call, write)
            return self._envelope(response, call, write)
        except UpstreamError as error:
            count_error(UPSTREAM, call, error)
            raise

    def _get(self, path: str, label: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return with_retries(
            self._retry,
            lambda: self._request("GET", path, label, write=False, expected=(200,), params=params),
            sleep=self._sleep,
        )

    def _write(
        self, method: str, path: str, label: str, payload: dict[str, Any], *, expected: tuple[int, ...]
    ) -> dict[str, Any]:
        return with_retries(
            self._retry,
            lambda: self._request(method, path, label, write=True, expected=expected, json=payload),
            sleep=self._sleep,
        )

    def _pages(self, path: str, params: dict[str, Any], *, max_pages: int | None = None) -> Iterator[list[Any]]:
        """Each page's ``data``, asking ``?page=N`` with the same filters until the last page.

        Page URLs are built here rather than taken from ``links.next``, so filters survive even if a
        server's links drop them; ``meta`` (or, without it, ``links.next``) says when to stop.
        """
        page = 1
        limit = self._max_pages if max_pages is None else max_pages
        while True:
            if page > limit:
                raise SolusVMResponseError(f"SolusVM {path}: more than {limit} pages", upstream=UPSTREAM)
            body = self._get(path, path, {**params, "page": page})
            items = body["data"]
            if not isinstance(items, list):
                raise SolusVMResponseError(f"SolusVM {path}: data is not a list", upstream=UPSTREAM)
            yield items
            meta, links = json_object(body.get("meta")), json_object(body.get("links"))
            if not items:
                return
            try:
                current = coerce_int(meta.get("current_page", page))
                last = coerce_int(meta["last_page"]) if meta.get("last_page") is not None else None
            except ValueError:
                raise SolusVMResponseError(f"SolusVM {path}: unreadable paging meta", upstream=UPSTREAM) from None
            if (last is not None and current >= last) or (last is None and not links.get("next")):
                return
            page = max(current, page) + 1

    def _envelope(self, response: Reply, call: str, write: bool) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "data" not in body:
            # A maintenance page or a proxy's answer: not the API's reply, so nothing is known.
            error_class = UpstreamOutcomeUnknown if write else UpstreamUnavailable
            raise error_class(
                f"SolusVM {call} answered {response.status_code} without the JSON envelope",
                upstream=UPSTREAM,
                status=response.status_code,
            )
        return body

    def _error_for(self, response: Reply, call: str, write: bool) -> UpstreamError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        text = f"SolusVM {call} answered {status}: {message if isinstance(message, str) else response.reason_phrase}"
        if status in (401, 403):
            return UpstreamAuthError(text, upstream=UPSTREAM, status=status)
        if status == 404:
            return UpstreamNotFound(text, upstream=UPSTREAM, status=status)
        if status == 429:
            return UpstreamRateLimited(text, upstream=UPSTREAM, retry_after=retry_after_seconds(response))
        if status == 408 or status >= 500 or status < 400:
            error_class = UpstreamOutcomeUnknown if write else UpstreamUnavailable
            return error_class(text, upstream=UPSTREAM, status=status)
        return UpstreamValidationError(text, upstream=UPSTREAM, status=status, errors=_validation_errors(body))

    def _parse(self, model: type[ModelT], raw: Any) -> ModelT:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            # Field locations and reasons only: the input values may be personal data.
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise SolusVMResponseError(
                f"SolusVM answer does not fit {model.__name__}: {problems}", upstream=UPSTREAM
            ) from None


def json_object(value: Any) -> dict[str, Any]:
    """A JSON object of the answer, or an empty one where it has something else."""
    return value if isinstance(value, dict) else {}
