"""What the SolusVM 2 and WHMCS clients share: sending one logged request, and the retry policy.

Only transient failures are retried, with jittered exponential backoff inside a total deadline, and a
server's ``Retry-After`` is honoured. A write whose outcome is unknown is never retried here: the
client looks the object up first (see each client's create methods).

Each request first takes a place under its upstream's in-flight limit (``pacing.AdaptiveLimit``), and
its answer (latency, a 503/429, a timeout) then moves that limit. Waiting for a place sends nothing,
so it adds no uncertainty to a write.
"""

from __future__ import annotations

import http.cookiejar
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from shared.logging import get_logger
from shared.metrics import UPSTREAM_ERRORS, UPSTREAM_IN_FLIGHT_LIMIT, UPSTREAM_SECONDS
from shared.upstream.errors import (
    UpstreamError,
    UpstreamOutcomeUnknown,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from shared.upstream.pacing import CONGESTION_STATUSES, AdaptiveLimit, PacingPolicy, Slot
from shared.upstream.transport import StdlibTransport, env_proxies_configured

T = TypeVar("T")
log = get_logger("postpay.upstream")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a client tries before it gives the failure to its caller (and so to the bus)."""

    max_attempts: int = 5
    deadline_seconds: float = 20.0
    initial_backoff: float = 0.1
    max_backoff: float = 3.0
    max_retry_after: float = 15.0

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        return cls(max_attempts=1)


@dataclass(frozen=True)
class Timeouts:
    connect: float = 3.0
    read: float = 10.0

    def as_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(self.read, connect=self.connect)


class NoCookies(http.cookiejar.CookieJar):
    """A jar that keeps nothing. Both APIs authenticate every call with its own credentials; a session
    cookie an upstream sets (WHMCS's PHPSESSID) must not ride along on the next customer's calls, and
    storing one costs CPU on every response."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


def new_http_client(timeouts: Timeouts, max_connections: int) -> httpx.Client:
    """The connection pool an upstream client owns: ``http.client`` underneath (see transport.py), or
    httpx's own transport when an HTTP(S)_PROXY is configured, because that one honours it."""
    pool: dict[str, Any] = (
        {"limits": httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)}
        if env_proxies_configured()
        else {"transport": StdlibTransport(max_connections=max_connections)}
    )
    return httpx.Client(timeout=timeouts.as_httpx(), cookies=NoCookies(), **pool)


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and exc.transient and not isinstance(exc, UpstreamOutcomeUnknown)


def with_retries(policy: RetryPolicy, call: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``call`` until it succeeds, fails for good, or the policy's attempts or deadline run out."""
    backoff = wait_random_exponential(multiplier=policy.initial_backoff, max=policy.max_backoff)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, UpstreamRateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, policy.max_retry_after)
        return backoff(state)

    retrying = Retrying(
        retry=retry_if_exception(is_retryable),
        stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(policy.deadline_seconds),
        wait=wait,
        sleep=sleep,
        reraise=True,
    )
    return retrying(call)


def new_pacing(upstream: str, pacing: PacingPolicy | AdaptiveLimit | None) -> AdaptiveLimit | None:
    """A client's own limit (one client per upstream per process), or the one it was given to share."""
    if pacing is None or isinstance(pacing, AdaptiveLimit):
        return pacing
    return AdaptiveLimit(upstream, pacing)


def send(
    client: httpx.Client,
    *,
    upstream: str,
    label: str,
    method: str,
    url: httpx.URL | str,
    write: bool,
    pacing: AdaptiveLimit | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request under the upstream's in-flight limit; turn transport failures into typed
    errors; log and measure it.

    ``label`` names the call for logs and metrics (a path template or a WHMCS action), never a URL
    with secrets or personal data in it.
    """
    if pacing is None:
        return _send(client, upstream, label, method, url, write, None, kwargs)
    slot = pacing.acquire(label)  # raises UpstreamUnavailable after a long wait: nothing was sent
    try:
        return _send(client, upstream, label, method, url, write, slot, kwargs)
    finally:
        pacing.release(slot)
        UPSTREAM_IN_FLIGHT_LIMIT.labels(upstream).set(pacing.limit)


def _send(
    client: httpx.Client,
    upstream: str,
    label: str,
    method: str,
    url: httpx.URL | str,
    write: bool,
    slot: Slot | None,
    kwargs: dict[str, Any],
) -> httpx.Response:
    started = time.perf_counter()
    try:
        response = client.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # Nothing reached the server: even a write is safe to retry.
        if slot is not None and isinstance(exc, httpx.ConnectTimeout):
            slot.congested()  # a full listen queue; a refused connection says nothing about load
        _record_failure(upstream, label, method, started, "connect", exc)
        raise UpstreamUnavailable(f"{upstream} unreachable: {type(exc).__name__}", upstream=upstream) from exc
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        if slot is not None and isinstance(exc, httpx.TimeoutException):
            slot.congested()
        _record_failure(upstream, label, method, started, "timeout", exc)
        error_class = UpstreamOutcomeUnknown if write else UpstreamUnavailable
        raise error_class(f"{upstream} {label}: no complete answer ({type(exc).__name__})", upstream=upstream) from exc
    elapsed = time.perf_counter() - started
    if slot is not None:
        if response.status_code in CONGESTION_STATUSES:
            slot.congested()
        elif response.status_code < 500:
            slot.answered(elapsed)
    UPSTREAM_SECONDS.labels(upstream, label).observe(elapsed)
    log.info(
        "upstream call",
        upstream=upstream,
        method=method,
        call=label,
        status=response.status_code,
        latency_ms=round(elapsed * 1000, 1),
    )
    return response


def _record_failure(upstream: str, label: str, method: str, started: float, kind: str, exc: BaseException) -> None:
    elapsed = time.perf_counter() - started
    UPSTREAM_SECONDS.labels(upstream, label).observe(elapsed)
    UPSTREAM_ERRORS.labels(upstream, label, kind).inc()
    log.warning(
        "upstream call failed",
        upstream=upstream,
        method=method,
        call=label,
        error=type(exc).__name__,
        latency_ms=round(elapsed * 1000, 1),
    )


def count_error(upstream: str, label: str, error: UpstreamError) -> None:
    UPSTREAM_ERRORS.labels(upstream, label, type(error).__name__).inc()


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
