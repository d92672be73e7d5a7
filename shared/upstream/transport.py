"""An httpx transport on the standard library's ``http.client``, for the upstream clients.

At month close every invoice costs three upstream calls from 16 handler threads, and httpcore's
shared pool made each cost ~2.1 CPU-ms against ~1.5 through ``http.client``
(``python -m bench.upstream_calls``, docs/benchmarks.md). The clients keep httpx's API, its timeouts
and its exception types (and tests keep ``MockTransport``); only the bytes on the wire go through
``http.client``.

What is kept from httpcore: keep-alive connections pooled per origin, at most ``max_connections`` in
use (waiting longer than the pool timeout is ``PoolTimeout``), a connection the server closed while it
sat idle is dropped before reuse, and every failure is raised as the httpx exception that says where
it happened (``ConnectError``: nothing reached the server; ``ReadTimeout``/``RemoteProtocolError``:
the request went out and no complete answer came back), which is what ``send`` classifies by.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import urllib.request
from typing import Any

import httpx

Origin = tuple[str, str, int]


def env_proxies_configured() -> bool:
    """Whether HTTP(S)_PROXY / ALL_PROXY is set: then httpx's own transport, which honours it, is used."""
    return any(scheme in urllib.request.getproxies() for scheme in ("http", "https", "all"))


class StdlibTransport(httpx.BaseTransport):
    """HTTP/1.1 through ``http.client``; thread-safe, as the clients are shared by handler threads."""

    def __init__(self, *, max_connections: int = 64, ssl_context: ssl.SSLContext | None = None) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._ssl_context = ssl_context
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        pool_timeout = timeouts.get("pool")
        if not self._slots.acquire(timeout=pool_timeout):
            raise httpx.PoolTimeout("every upstream connection is busy", request=request)
        try:
            origin = _origin(request.url)
            connection = self._idle_connection(origin) or self._connect(origin, timeouts, request)
            try:
                response, reusable = _exchange(connection, request, timeouts)
            except BaseException:
                connection.close()
                raise
            if reusable:
                self._keep(origin, connection)
            else:
                connection.close()
            return response
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _idle_connection(self, origin: Origin) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                pooled = self._idle.get(origin)
                connection = pooled.pop() if pooled else None
            if connection is None or _still_open(connection):
                return connection
            connection.close()

    def _tls(self) -> ssl.SSLContext:
        # httpx's own default: certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR when set.
        with self._lock:
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context()
            return self._ssl_context

    def _keep(self, origin: Origin, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.setdefault(origin, []).append(connection)
                return
        connection.close()

    def _connect(
        self, origin: Origin, timeouts: dict[str, float | None], request: httpx.Request
    ) -> http.client.HTTPConnection:
        scheme, host, port = origin
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=timeouts.get("connect"), context=self._tls())
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeouts.get("connect"))
        try:
            connection.connect()
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from exc
        except OSError as exc:  # refused, unreachable, name not resolved, TLS handshake refused
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}", request=request) from exc
        return connection


def _origin(url: httpx.URL) -> Origin:
    if url.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection has nothing to read: readable means the server closed it."""
    sock = connection.sock
    if sock is None:
        return False
    poller = select.poll()  # not select(): it fails on descriptors above 1023, a busy web process has them
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)


def _exchange(
    connection: http.client.HTTPConnection, request: httpx.Request, timeouts: dict[str, float | None]
) -> tuple[httpx.Response, bool]:
    """Send ``request`` and read the whole answer; return it and whether the connection may be reused."""
    body = request.read()
    # httpx announces a body of unknown length (an iterator) as chunked; http.client frames it so.
    chunked = request.headers.get("Transfer-Encoding", "").lower() == "chunked"
    sock: Any = connection.sock
    try:
        sock.settimeout(timeouts.get("write"))
        connection.putrequest(
            request.method, request.url.raw_path.decode("ascii"), skip_host=True, skip_accept_encoding=True
        )
        for name, value in request.headers.raw:
            connection.putheader(name, value)
        connection.endheaders(body or None, encode_chunked=chunked)
    except TimeoutError as exc:
        raise httpx.WriteTimeout("sending the request timed out", request=request) from exc
    except OSError as exc:
        raise httpx.WriteError(f"sending the request failed: {exc}", request=request) from exc
    try:
        sock.settimeout(timeouts.get("read"))
        answer = connection.getresponse()
        content = answer.read()
    except TimeoutError as exc:
        raise httpx.ReadTimeout("no answer within the read timeout", request=request) from exc
    except http.client.HTTPException as exc:  # a cut-off or malformed answer (RemoteDisconnected too)
        raise httpx.RemoteProtocolError(f"incomplete answer: {type(exc).__name__}", request=request) from exc
    except OSError as exc:
        raise httpx.ReadError(f"reading the answer failed: {exc}", request=request) from exc
    response = httpx.Response(
        status_code=answer.status,
        # Bytes, as http.client read them (latin-1): httpx would refuse a non-ASCII str value.
        headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in answer.getheaders()],
        stream=httpx.ByteStream(content),
        request=request,
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason.encode("latin-1")},
    )
    return response, not answer.will_close
