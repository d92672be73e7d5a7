"""What the SolusVM 2 and WHMCS clients share: sending one logged request over their connection (the
retry policy around it is shared.upstream.retries).

Each request first takes a place under its upstream's in-flight limit (``pacing.AdaptiveLimit``), and
its answer (latency, a 503/429, a timeout) then moves that limit. Waiting for a place sends nothing,
so it adds no uncertainty to a write.
"""

from __future__ import annotations

import http.cookiejar
import json
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import quote, urlencode, urlsplit

import httpx

from shared.logging import get_logger
from shared.metrics import UPSTREAM_ERRORS, UPSTREAM_IN_FLIGHT_LIMIT, UPSTREAM_SECONDS, labelled
from shared.upstream.errors import (
    UpstreamError,
    UpstreamOutcomeUnknown,
    UpstreamUnavailable,
)
from shared.upstream.pacing import CONGESTION_STATUSES, AdaptiveLimit, PacingPolicy, Slot
from shared.upstream.transport import Headers, Origin, StdlibTransport, env_proxies_configured

log = get_logger("postpay.upstream")


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


class Answer:
    """An upstream's answer as the clients read it: the part of ``httpx.Response`` they use."""

    __slots__ = ("status_code", "reason_phrase", "headers", "content")

    def __init__(self, status_code: int, reason_phrase: str, headers: Headers, content: bytes) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers  # case-insensitive ``get``, as httpx's
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)


class UpstreamHttp:
    """The clients' own HTTP client: what they ask of ``httpx.Client`` (``request``, ``close``), sent
    straight through :class:`StdlibTransport`. httpx's request and response models, header merging and
    URL parsing were ~0.4 CPU-ms of a call's ~1 (cProfile, no latency); the bytes on the wire, the
    timeouts, TLS verification and the httpx exception types ``send`` classifies by are the
    transport's and stay the same. No cookies are kept: there is no jar (see :class:`NoCookies`)."""

    def __init__(self, timeouts: Timeouts, max_connections: int) -> None:
        self._timeouts = _timeout_dict(timeouts.as_httpx())
        self._transport = StdlibTransport(max_connections=max_connections)
        self._origins: dict[str, tuple[Origin, bytes]] = {}

    def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> Answer:
        origin, host, path = self._target(str(url))
        if params:
            path = f"{path}{'&' if '?' in path else '?'}{urlencode({k: _query_value(v) for k, v in params.items()})}"
        body = content
        if json is not None:
            body = _json_bytes(json)
        lines = [f"{method} {path} HTTP/1.1\r\n".encode("ascii"), host]
        for name, value in (headers or {}).items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} has a line break in it")  # the value is not shown: a secret
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        if body is not None:
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        if body:
            lines.append(body)
        times = self._timeouts if timeout is None else _timeout_dict(timeout)
        raw = self._transport.exchange(method, origin, b"".join(lines), times)
        content = raw.content
        coding = raw.headers.get("Content-Encoding")
        if coding:  # none is asked for (no Accept-Encoding), but a server may compress anyway
            content = _decoded(content, coding, origin)
        return Answer(raw.status, raw.reason, raw.headers, content)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> UpstreamHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _target(self, url: str) -> tuple[Origin, bytes, str]:
        """Origin, Host header line and request target of ``url``; the origin part is parsed once."""
        start = url.find("//")
        cut = url.find("/", start + 2) if start >= 0 else -1
        base, path = (url, "/") if cut < 0 else (url[:cut], url[cut:])
        if not (path.isascii() and path.isprintable()) or " " in path:
            path = quote(path, safe="/?&=%:@!$'()*+,;~-._[]")  # as httpx would send it
        known = self._origins.get(base)
        if known is None:
            parts = urlsplit(base)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise httpx.UnsupportedProtocol(f"unsupported URL scheme {parts.scheme!r}")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            netloc = parts.netloc.rpartition("@")[2]  # never credentials in a Host header
            known = (parts.scheme, parts.hostname, port), b"Host: " + netloc.encode("idna") + b"\r\n"
            self._origins[base] = known
        return known[0], known[1], path


HttpClient = httpx.Client | UpstreamHttp
Reply = httpx.Response | Answer


def _decoded(content: bytes, coding: str, origin: Origin) -> bytes:
    """The body without its gzip/deflate coding, as httpx would hand it over, and httpx's
    ``DecodingError`` where it would raise one (a coding it does not know, a body that does not decode)."""
    for name in reversed([part.strip().lower() for part in coding.split(",")]):
        try:
            if name in ("gzip", "x-gzip"):
                content = zlib.decompress(content, wbits=zlib.MAX_WBITS | 16)
            elif name == "deflate":
                try:
                    content = zlib.decompress(content)
                except zlib.error:
                    content = zlib.decompress(content, wbits=-zlib.MAX_WBITS)  # raw deflate, as some send
            elif name not in ("identity", ""):
                raise httpx.DecodingError(f"{origin[1]} answered in an unsupported coding {name!r}")
        except zlib.error as exc:
            raise httpx.DecodingError(f"{origin[1]} sent a body that does not decode as {name}") from exc
    return content


def _timeout_dict(timeout: httpx.Timeout) -> dict[str, float | None]:
    return {"connect": timeout.connect, "read": timeout.read, "write": timeout.write, "pool": timeout.pool}


def _query_value(value: Any) -> str:
    # As httpx writes them: true/false, an empty value for None.
    if value is True or value is False:
        return "true" if value else "false"
    return "" if value is None else str(value)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def new_http_client(timeouts: Timeouts, max_connections: int) -> HttpClient:
    """The connection pool an upstream client owns: :class:`UpstreamHttp` on ``http.client``, or an
    ``httpx.Client`` on httpx's own transport when an HTTP(S)_PROXY is configured, as that honours it."""
    if env_proxies_configured():
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        return httpx.Client(timeout=timeouts.as_httpx(), cookies=NoCookies(), limits=limits)
    return UpstreamHttp(timeouts, max_connections)


def new_pacing(upstream: str, pacing: PacingPolicy | AdaptiveLimit | None) -> AdaptiveLimit | None:
    """A client's own limit (one client per upstream per process), or the one it was given to share."""
    if pacing is None or isinstance(pacing, AdaptiveLimit):
        return pacing
    return AdaptiveLimit(upstream, pacing)


class UpstreamConnection:
    """What every upstream client holds: its connection pool, closed with it unless it was lent one, and
    its pacing (its own limit, or one it was given to share)."""

    def __init__(
        self,
        upstream: str,
        http: HttpClient | None,
        timeouts: Timeouts,
        max_connections: int,
        pacing: PacingPolicy | AdaptiveLimit | None,
    ) -> None:
        self._owns_http = http is None
        self._http = http or new_http_client(timeouts, max_connections)
        self.pacing = new_pacing(upstream, pacing)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send(
    client: HttpClient,
    *,
    upstream: str,
    label: str,
    method: str,
    url: httpx.URL | str,
    write: bool,
    pacing: AdaptiveLimit | None = None,
    **kwargs: Any,
) -> Reply:
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
        labelled(UPSTREAM_IN_FLIGHT_LIMIT, upstream).set(pacing.limit)


def _send(
    client: HttpClient,
    upstream: str,
    label: str,
    method: str,
    url: httpx.URL | str,
    write: bool,
    slot: Slot | None,
    kwargs: dict[str, Any],
) -> Reply:
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
    labelled(UPSTREAM_SECONDS, upstream, label).observe(elapsed)
    # An answer that went well is a DEBUG line: three of a month close's six lines per invoice were these,
    # each ~20 µs of CPU and a write; the latency histogram above still counts every call, and an error
    # status (which the client raises or a retry follows) stays an INFO line.
    (log.info if response.status_code >= 400 else log.debug)(
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


def retry_after_seconds(response: Reply) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
