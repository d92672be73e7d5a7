"""The upstream clients' http.client transport, against a real HTTP/1.1 server on loopback.

What ``send`` relies on is checked here: keep-alive reuse, a connection the server closed while idle
replaced before use, the pool limit, and each failure raised as the httpx type that tells whether the
request reached the server (``send`` turns those into retryable or "outcome unknown" errors).
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.upstream.errors import UpstreamOutcomeUnknown, UpstreamUnavailable
from shared.upstream.http import Timeouts, UpstreamHttp, new_http_client, send
from shared.upstream.transport import StdlibTransport


class Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections: list[tuple[str, int]] = []
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.closed_idle = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Upstream

    def setup(self) -> None:
        super().setup()
        self.server.connections.append(self.client_address)

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = (
            self._chunked_body()
            if self.headers.get("Transfer-Encoding") == "chunked"
            else self.rfile.read(int(self.headers.get("Content-Length", 0)))
        )
        self.server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
        route = self.path.split("?")[0]
        if route == "/drop":  # the request arrived, and no answer ever comes back
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if route == "/slow":
            self.server.release.wait(5)
        if route == "/chunked-gzip":
            self._chunked_gzip(b'{"result": "success", "note": "' + b"x" * 5000 + b'"}')
            return
        if route == "/set-cookie":
            self.send_response(200)
            self.send_header("Set-Cookie", "PHPSESSID=abc123; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if route == "/latin-1-header":
            self.send_response(200)
            self.send_header("X-Note", "caf\u00e9")  # written as latin-1, as http.server does
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._json(b'{"result": "success"}', close_after=route == "/close-after")

    def _chunked_body(self) -> bytes:
        body = b""
        while size := int(self.rfile.readline().strip(), 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        self.rfile.readline()
        return body

    def _json(self, payload: bytes, *, close_after: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
        if close_after:  # keep-alive promised, then the idle connection is closed (a server's idle timeout)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)
            self.server.closed_idle.set()

    def _chunked_gzip(self, payload: bytes) -> None:
        packed = gzip.compress(payload)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(packed), 1000):
            chunk = packed[start : start + 1000]
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(2.0, connect=1.0), transport=StdlibTransport()) as http:
        yield http


def test_requests_share_one_keep_alive_connection_and_arrive_intact(upstream: Upstream, client: httpx.Client) -> None:
    for n in range(5):
        response = client.post(
            f"{upstream.url}/api?n={n}",
            content=b"action=GetClientsDetails&clientid=7",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200 and response.json() == {"result": "success"}
    assert len(upstream.connections) == 1
    assert [r["path"] for r in upstream.requests] == [f"/api?n={n}" for n in range(5)]
    last = upstream.requests[-1]
    assert last["body"] == b"action=GetClientsDetails&clientid=7"
    assert last["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert last["headers"]["Host"] == upstream.url.removeprefix("http://")


def test_a_body_of_unknown_length_is_sent_chunked_and_arrives_whole(upstream: Upstream, client: httpx.Client) -> None:
    response = client.post(f"{upstream.url}/api", content=iter([b"first part, ", b"second part"]))
    assert response.status_code == 200
    assert upstream.requests[0]["headers"]["Transfer-Encoding"] == "chunked"
    assert upstream.requests[0]["body"] == b"first part, second part"
    assert client.get(f"{upstream.url}/api").status_code == 200  # the framing left the connection usable
    assert len(upstream.connections) == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_not_used(
    upstream: Upstream, client: httpx.Client
) -> None:
    assert client.get(f"{upstream.url}/close-after").status_code == 200
    assert upstream.closed_idle.wait(5)  # the server has closed its end; the pooled socket reads EOF
    response = client.post(f"{upstream.url}/api", content=b"write")
    assert response.status_code == 200
    assert len(upstream.connections) == 2
    assert [r["body"] for r in upstream.requests] == [b"", b"write"]  # the write was sent exactly once


def test_chunked_gzip_answers_are_decoded(upstream: Upstream, client: httpx.Client) -> None:
    response = client.get(f"{upstream.url}/chunked-gzip")
    assert response.json()["note"] == "x" * 5000


def test_a_non_ascii_header_value_is_read_not_refused(upstream: Upstream, client: httpx.Client) -> None:
    assert client.get(f"{upstream.url}/latin-1-header").headers["X-Note"] == "caf\u00e9"


def test_refused_connection_is_a_connect_error_so_even_a_write_may_be_retried(client: httpx.Client) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connecting is refused
        with pytest.raises(httpx.ConnectError):
            client.get(f"http://127.0.0.1:{port}/")
        with pytest.raises(UpstreamUnavailable) as raised:
            send(client, upstream="test", label="Create", method="POST", url=f"http://127.0.0.1:{port}/", write=True)
    assert not isinstance(raised.value, UpstreamOutcomeUnknown)


def test_no_answer_in_time_is_a_read_timeout_and_a_write_outcome_is_unknown(upstream: Upstream) -> None:
    with httpx.Client(timeout=httpx.Timeout(0.3), transport=StdlibTransport()) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.get(f"{upstream.url}/slow")
        with pytest.raises(UpstreamOutcomeUnknown):
            send(http, upstream="test", label="Create", method="POST", url=f"{upstream.url}/slow", write=True)
        with pytest.raises(UpstreamUnavailable):
            send(http, upstream="test", label="Get", method="GET", url=f"{upstream.url}/slow", write=False)


def test_a_connection_dropped_after_the_request_is_a_protocol_error(upstream: Upstream, client: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(f"{upstream.url}/drop", content=b"x")
    with pytest.raises(UpstreamOutcomeUnknown):
        send(
            client, upstream="test", label="Create", method="POST", url=f"{upstream.url}/drop", write=True, content=b"x"
        )
    assert client.get(f"{upstream.url}/api").status_code == 200  # the broken connection was not pooled


def test_waiting_longer_than_the_pool_timeout_for_a_connection_is_a_pool_timeout(upstream: Upstream) -> None:
    transport = StdlibTransport(max_connections=1)
    with httpx.Client(timeout=httpx.Timeout(5.0, pool=0.2), transport=transport) as http:
        busy = threading.Thread(target=lambda: http.get(f"{upstream.url}/slow"))
        busy.start()
        while not upstream.requests:
            time.sleep(0.01)
        with pytest.raises(httpx.PoolTimeout):
            http.get(f"{upstream.url}/api")
        upstream.release.set()
        busy.join(5)
        assert http.get(f"{upstream.url}/api").status_code == 200


def test_closed_transport_keeps_no_connection(upstream: Upstream) -> None:
    transport = StdlibTransport()
    with httpx.Client(transport=transport) as http:
        http.get(f"{upstream.url}/api")
    assert transport._idle == {}


@pytest.mark.parametrize("proxied", [False, True])
def test_a_cookie_an_upstream_sets_is_never_sent_back(
    upstream: Upstream, proxied: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    if proxied:  # httpx's own transport, with the proxy bypassed for loopback
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with new_http_client(Timeouts(), max_connections=2) as http:
        assert isinstance(http, UpstreamHttp) is not proxied
        first = http.request("GET", f"{upstream.url}/set-cookie")
        assert first.headers["Set-Cookie"].startswith("PHPSESSID=")
        http.request("GET", f"{upstream.url}/api")
    assert "Cookie" not in upstream.requests[-1]["headers"], upstream.requests[-1]["headers"]


def test_an_https_proxy_in_the_environment_keeps_httpx_own_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    proxied = new_http_client(Timeouts(), max_connections=4)
    monkeypatch.delenv("HTTPS_PROXY")
    for name in ("HTTP_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    direct = new_http_client(Timeouts(), max_connections=4)
    try:
        assert isinstance(proxied, httpx.Client) and not isinstance(proxied._transport, StdlibTransport)
        assert any(mount is not None for mount in proxied._mounts.values())
        assert isinstance(direct, UpstreamHttp)
    finally:
        proxied.close()
        direct.close()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_https_is_verified_and_an_unknown_certificate_is_refused_before_anything_is_sent(
    upstream: Upstream, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    upstream.socket = server_tls.wrap_socket(upstream.socket, server_side=True)
    url = f"https://127.0.0.1:{upstream.server_address[1]}/api"

    trusting = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(timeout=2.0, transport=StdlibTransport(ssl_context=trusting)) as http:
        assert http.post(url, content=b"over tls").json() == {"result": "success"}
        assert http.get(url).status_code == 200
    assert len(upstream.connections) == 1 and upstream.requests[0]["body"] == b"over tls"

    with httpx.Client(timeout=2.0, transport=StdlibTransport()) as http:  # certifi's roots: not ours
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            http.post(url, content=b"must not arrive")
    assert [r["body"] for r in upstream.requests] == [b"over tls", b""]


# UpstreamHttp: what the clients send through, without httpx's client layer. Same transport, so the
# same failures must come out of ``send`` as the same typed errors.


@pytest.fixture
def direct() -> Iterator[UpstreamHttp]:
    with UpstreamHttp(Timeouts(connect=1.0, read=2.0), max_connections=4) as http:
        yield http


def test_direct_requests_share_a_connection_and_arrive_as_sent(upstream: Upstream, direct: UpstreamHttp) -> None:
    form = direct.request(
        "POST",
        f"{upstream.url}/api",
        content=b"action=GetClientsDetails&clientid=7",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 200 and form.json() == {"result": "success"}
    assert form.headers.get("content-type") == "application/json"  # any case, as httpx's headers
    typed = direct.request(
        "POST", f"{upstream.url}/api", params={"filter[search]": "a b@c.d", "page": 2}, json={"is_one_time": True}
    )
    assert typed.status_code == 200
    assert len(upstream.connections) == 1
    first, second = upstream.requests
    assert first["body"] == b"action=GetClientsDetails&clientid=7"
    assert first["headers"]["Host"] == upstream.url.removeprefix("http://")
    assert first["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert second["path"] == "/api?filter%5Bsearch%5D=a+b%40c.d&page=2"
    assert second["body"] == b'{"is_one_time":true}'
    assert "Cookie" not in second["headers"] and "Accept-Encoding" not in second["headers"]


def test_direct_failures_are_classified_as_through_httpx(upstream: Upstream) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{probe.getsockname()[1]}/"
        with UpstreamHttp(Timeouts(connect=1.0, read=0.3), max_connections=2) as http:
            with pytest.raises(UpstreamUnavailable) as raised:
                send(http, upstream="test", label="Create", method="POST", url=refused, write=True, content=b"x")
            assert not isinstance(raised.value, UpstreamOutcomeUnknown)  # nothing was sent: retry is safe
            for route in ("/slow", "/drop"):
                with pytest.raises(UpstreamOutcomeUnknown):
                    send(http, upstream="test", label="Create", method="POST", url=upstream.url + route, write=True)
                with pytest.raises(UpstreamUnavailable) as raised:
                    send(http, upstream="test", label="Get", method="GET", url=upstream.url + route, write=False)
                assert not isinstance(raised.value, UpstreamOutcomeUnknown)
            upstream.release.set()
            assert http.request("GET", f"{upstream.url}/api").status_code == 200  # nothing broken was pooled


def test_direct_idle_connection_closed_by_the_server_is_replaced(upstream: Upstream, direct: UpstreamHttp) -> None:
    assert direct.request("GET", f"{upstream.url}/close-after").status_code == 200
    assert upstream.closed_idle.wait(5)
    assert direct.request("POST", f"{upstream.url}/api", content=b"write").status_code == 200
    assert len(upstream.connections) == 2
    assert [r["body"] for r in upstream.requests] == [b"", b"write"]


def test_direct_compressed_answer_is_decoded(upstream: Upstream, direct: UpstreamHttp) -> None:
    assert direct.request("GET", f"{upstream.url}/chunked-gzip").json()["note"] == "x" * 5000


def test_direct_header_with_a_line_break_is_refused_unsent_and_unshown(
    upstream: Upstream, direct: UpstreamHttp
) -> None:
    with pytest.raises(ValueError) as raised:
        direct.request("GET", f"{upstream.url}/api", headers={"Authorization": "Bearer s3cret\r\nX-Evil: 1"})
    assert "s3cret" not in str(raised.value)
    assert upstream.requests == []


def test_direct_https_refuses_an_unknown_certificate_before_sending(upstream: Upstream, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    upstream.socket = server_tls.wrap_socket(upstream.socket, server_side=True)
    with UpstreamHttp(Timeouts(connect=2.0, read=2.0), max_connections=2) as http:
        with pytest.raises(UpstreamUnavailable, match="unreachable") as raised:
            send(
                http,
                upstream="test",
                label="Create",
                method="POST",
                url=f"https://127.0.0.1:{upstream.server_address[1]}/api",
                write=True,
                content=b"must not arrive",
            )
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value.__cause__)
    assert not isinstance(raised.value, UpstreamOutcomeUnknown)
    assert [r["body"] for r in upstream.requests] == []
