"""An HTTP/1.1 connection pool on the standard library's ``http.client``, for the upstream clients.

At month close every invoice costs three upstream calls from 16 handler threads. httpcore's shared
pool made each cost ~2.1 CPU-ms against ~1.5 through ``http.client`` under httpx's API
(``python -m bench.upstream_calls``, docs/benchmarks.md); httpx's own request and response layer was
most of what remained, so the clients now send through :meth:`StdlibTransport.exchange` directly
(``shared.upstream.http.UpstreamHttp``). The transport still plugs into httpx (``handle_request``)
for callers and tests that hold an ``httpx.Client``; both paths share the code below.

What is kept from httpcore: keep-alive connections pooled per origin, at most ``max_connections`` in
use (waiting longer than the pool timeout is ``PoolTimeout``), a connection the server closed while it
sat idle is dropped before reuse, and every failure is raised as the httpx exception that says where
it happened (``ConnectError``: nothing reached the server; ``ReadTimeout``/``RemoteProtocolError``:
the request went out and no complete answer came back), which is what ``send`` classifies by.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import urllib.request
from typing import BinaryIO

import httpx

Origin = tuple[str, str, int]
Timeouts = dict[str, float | None]


def env_proxies_configured() -> bool:
    """Whether HTTP(S)_PROXY / ALL_PROXY is set: then httpx's own transport, which honours it, is used."""
    return any(scheme in urllib.request.getproxies() for scheme in ("http", "https", "all"))


class RawAnswer:
    """A whole answer as read off the wire: status, reason, headers (case-insensitive ``get``), body."""

    __slots__ = ("status", "reason", "headers", "content", "will_close")

    def __init__(self, status: int, reason: str, headers: Headers, content: bytes, will_close: bool) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content = content
        self.will_close = will_close


class StdlibTransport(httpx.BaseTransport):
    """HTTP/1.1 through ``http.client``; thread-safe, as the clients are shared by handler threads."""

    def __init__(self, *, max_connections: int = 64, ssl_context: ssl.SSLContext | None = None) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._idle: dict[Origin, list[socket.socket]] = {}
        self._lock = threading.Lock()
        self._ssl_context = ssl_context
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        url = request.url
        lines = [f"{request.method} {url.raw_path.decode('ascii')} HTTP/1.1".encode("ascii")]
        lines.extend(name + b": " + value for name, value in request.headers.raw)
        lines.extend((b"", b""))
        if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            # httpx announces a body of unknown length (an iterator) as chunked; it is all read here.
            body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        answer = self.exchange(
            request.method,
            _origin(url),
            b"\r\n".join(lines) + body,
            request.extensions.get("timeout", {}),
            request=request,
        )
        return httpx.Response(
            status_code=answer.status,
            # Bytes, as http.client read them (latin-1): httpx would refuse a non-ASCII str value.
            headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers.items()],
            stream=httpx.ByteStream(answer.content),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason.encode("latin-1")},
        )

    def exchange(
        self, method: str, origin: Origin, message: bytes, timeouts: Timeouts, request: httpx.Request | None = None
    ) -> RawAnswer:
        """Send ``message`` (request line, headers and body, framed by the caller) to ``origin`` over a
        pooled connection and read the whole answer; failures are raised as httpx's exceptions."""
        if not self._slots.acquire(timeout=timeouts.get("pool")):
            raise httpx.PoolTimeout("every upstream connection is busy", request=request)
        try:
            sock = self._idle_connection(origin) or self._connect(origin, timeouts, request)
            try:
                answer = _exchange(sock, method, message, timeouts, request)
            except BaseException:
                sock.close()
                raise
            if answer.will_close:
                sock.close()
            else:
                self._keep(origin, sock)
            return answer
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for sock in connections:
                sock.close()

    def _idle_connection(self, origin: Origin) -> socket.socket | None:
        while True:
            with self._lock:
                pooled = self._idle.get(origin)
                sock = pooled.pop() if pooled else None
            if sock is None or _still_open(sock):
                return sock
            sock.close()

    def _tls(self) -> ssl.SSLContext:
        # httpx's own default: certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR when set.
        with self._lock:
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context()
            return self._ssl_context

    def _keep(self, origin: Origin, sock: socket.socket) -> None:
        with self._lock:
            if not self._closed:
                self._idle.setdefault(origin, []).append(sock)
                return
        sock.close()

    def _connect(self, origin: Origin, timeouts: Timeouts, request: httpx.Request | None) -> socket.socket:
        """A connected (and, for https, verified) socket; ``http.client`` opens it, the pool owns it."""
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
        sock: socket.socket = connection.sock
        # Request line, headers and body go out in one write: no wait on the peer's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def _origin(url: httpx.URL) -> Origin:
    if url.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


def _still_open(sock: socket.socket) -> bool:
    """An idle keep-alive connection has nothing to read: readable means the server closed it."""
    poller = select.poll()  # not select(): it fails on descriptors above 1023, a busy web process has them
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)


def _exchange(
    sock: socket.socket, method: str, message: bytes, timeouts: Timeouts, request: httpx.Request | None
) -> RawAnswer:
    """Send one framed request and read the whole answer."""
    try:
        sock.settimeout(timeouts.get("write"))
        sock.sendall(message)
    except TimeoutError as exc:
        raise httpx.WriteTimeout("sending the request timed out", request=request) from exc
    except OSError as exc:
        raise httpx.WriteError(f"sending the request failed: {exc}", request=request) from exc
    try:
        sock.settimeout(timeouts.get("read"))
        reader = sock.makefile("rb")
        try:
            return _read_answer(reader, method)
        finally:
            reader.close()
    except TimeoutError as exc:
        raise httpx.ReadTimeout("no answer within the read timeout", request=request) from exc
    except http.client.HTTPException as exc:  # a cut-off or malformed answer (RemoteDisconnected too)
        raise httpx.RemoteProtocolError(f"incomplete answer: {type(exc).__name__}", request=request) from exc
    except OSError as exc:
        raise httpx.ReadError(f"reading the answer failed: {exc}", request=request) from exc


class Headers:
    """An answer's header fields in the order they came: ``get`` is case-insensitive and gives the
    first of a repeated name, as ``email.message.Message.get`` (what ``http.client`` made) does."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields

    def get(self, name: str, default: str | None = None) -> str | None:
        wanted = name.lower()
        for field, value in self._fields:
            if field.lower() == wanted:
                return value
        return default

    def __getitem__(self, name: str) -> str | None:
        return self.get(name)  # None when missing, as Message's

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)


# http.client's limits on what it reads.
_MAX_LINE = 65536
_MAX_HEADERS = 100


def _read_answer(reader: BinaryIO, method: str) -> RawAnswer:
    """One answer, read as ``http.client.HTTPResponse`` reads it (status line, 1xx answers skipped,
    headers, a body by Content-Length, chunked or to the end; the same exceptions for what is cut off
    or malformed), without its header parser: ``email``'s feed parser was about half of a call's CPU."""
    version, status, reason = _status_line(reader)
    while status == 100:  # 100 Continue: its headers are skipped, the answer follows
        _header_fields(reader)
        version, status, reason = _status_line(reader)
    headers = Headers(_header_fields(reader))
    will_close = _will_close(version, headers)
    chunked = (headers.get("Transfer-Encoding") or "").lower() == "chunked"
    length: int | None = None
    if not chunked:
        length = _content_length(headers)
    if status in (204, 304) or status < 200 or method == "HEAD":
        chunked, length = False, 0
    if not will_close and not chunked and length is None:
        will_close = True  # the body ends when the server closes the connection
    if chunked:
        content = _read_chunked(reader)
    elif length is None:
        content = reader.read()
    else:
        content = reader.read(length) if length else b""
        if len(content) < length:
            raise http.client.IncompleteRead(content, length - len(content))
    return RawAnswer(status, reason, headers, content, will_close)


def _line(reader: BinaryIO) -> bytes:
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise http.client.LineTooLong("line")
    return line


def _status_line(reader: BinaryIO) -> tuple[int, int, str]:
    line = str(_line(reader), "iso-8859-1")
    if not line:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    try:
        protocol, status_text, reason = line.split(None, 2)
    except ValueError:
        try:
            protocol, status_text = line.split(None, 1)
            reason = ""
        except ValueError:
            protocol = status_text = reason = ""
    if not protocol.startswith("HTTP/"):
        raise http.client.BadStatusLine(line)
    try:
        status = int(status_text)
    except ValueError:
        raise http.client.BadStatusLine(line) from None
    if not 100 <= status <= 999:
        raise http.client.BadStatusLine(line)
    if protocol == "HTTP/1.0" or protocol.startswith("HTTP/0."):
        version = 10
    elif protocol.startswith("HTTP/1."):
        version = 11
    else:
        raise http.client.UnknownProtocol(protocol)
    return version, status, reason.strip()


def _header_fields(reader: BinaryIO) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []  # values with their line endings until the block is read
    while True:
        line = _line(reader)
        if line in (b"\r\n", b"\n", b""):
            return [(name, value.rstrip("\r\n")) for name, value in fields]
        if len(fields) >= _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        text = str(line, "iso-8859-1")
        if text[0] in " \t" and fields:  # an obsolete folded continuation, kept as email's parser kept it
            name, value = fields[-1]
            fields[-1] = (name, value + text)
            continue
        name, colon, value = text.partition(":")
        if colon:  # a line that is no field is dropped (email's parser counted it a defect)
            fields.append((name, value.lstrip(" \t")))


def _will_close(version: int, headers: Headers) -> bool:
    connection = (headers.get("Connection") or "").lower()
    if "close" in connection:
        return True
    if version == 11:
        return False
    proxy = (headers.get("Proxy-Connection") or "").lower()
    return not (headers.get("Keep-Alive") or "keep-alive" in connection or "keep-alive" in proxy)


def _content_length(headers: Headers) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None


def _read_chunked(reader: BinaryIO) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = _line(reader)
        try:
            size = int(size_line.split(b";", 1)[0], 16)
        except ValueError as exc:
            raise http.client.IncompleteRead(b"".join(parts)) from exc
        if size == 0:
            break
        chunk = reader.read(size)
        if len(chunk) < size:
            raise http.client.IncompleteRead(b"".join(parts) + chunk, size - len(chunk))
        parts.append(chunk)
        reader.read(2)  # the CRLF after the chunk
    while _line(reader) not in (b"\r\n", b"\n", b""):
        pass  # trailer fields, not used
    return b"".join(parts)
