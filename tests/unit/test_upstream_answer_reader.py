"""The transport's own answer reader gives what ``http.client.HTTPResponse`` read before it: status,
reason, headers (``get`` case-insensitive, first of a repeated name), body, whether the connection
closes after it, and the same exception types for what is cut off or malformed."""

from __future__ import annotations

import http.client
import io
import socket
from typing import Any

import pytest

from shared.upstream.transport import _read_answer


class _FakeSocket:
    """What HTTPResponse needs of a socket: ``makefile``."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self.data))  # type: ignore[arg-type]


def by_http_client(data: bytes, method: str) -> dict[str, Any]:
    answer = http.client.HTTPResponse(_FakeSocket(data), method=method)  # type: ignore[arg-type]
    answer.begin()
    content = answer.read()
    return {
        "status": answer.status,
        "reason": answer.reason,
        "headers": list(answer.msg.items()),
        "get": {name: answer.msg.get(name) for name in NAMES},
        "content": content,
        "will_close": bool(answer.will_close),
    }


def by_reader(data: bytes, method: str) -> dict[str, Any]:
    answer = _read_answer(io.BufferedReader(io.BytesIO(data)), method)  # type: ignore[arg-type]
    return {
        "status": answer.status,
        "reason": answer.reason,
        "headers": answer.headers.items(),
        "get": {name: answer.headers.get(name) for name in NAMES},
        "content": answer.content,
        "will_close": answer.will_close,
    }


NAMES = ("content-type", "Content-Encoding", "RETRY-AFTER", "X-Twice", "Set-Cookie", "x-missing")

ANSWERS = {
    "length": b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": true}',
    "no reason": b"HTTP/1.1 503\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
    "reason with spaces": b"HTTP/1.1 429 Too Many  Requests \r\nretry-after:  3 \r\nContent-Length: 2\r\n\r\nno",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n",
    "chunked upper": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "to the end": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it until close",
    "connection close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
    "http 1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    "http 1.0 keep-alive": b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nabc",
    "http 1.0 keep-alive header": b"HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\n\r\nabc",
    "no content": b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    "not modified": b"HTTP/1.1 304 Not Modified\r\n\r\n",
    "continue first": b"HTTP/1.1 100 Continue\r\nX-Skip: 1\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    "repeated and cased": (
        b"HTTP/1.1 200 OK\r\nx-twice: first\r\nX-Twice: second\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"CONTENT-ENCODING: gzip\r\nContent-Length: 0\r\n\r\n"
    ),
    "folded": b"HTTP/1.1 200 OK\r\nX-Twice: one\r\n  two\r\nContent-Length: 0\r\n\r\n",
    "latin-1 value": b"HTTP/1.1 200 OK\r\nX-Twice: caf\xe9\r\nContent-Length: 0\r\n\r\n",
    "bare newlines": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "bad length": b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nread to the end",
    "negative length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nread to the end",
}


@pytest.mark.parametrize("name", list(ANSWERS))
@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
def test_the_reader_reads_what_http_client_read(name: str, method: str) -> None:
    assert by_reader(ANSWERS[name], method) == by_http_client(ANSWERS[name], method)


BROKEN = {
    "nothing": b"",
    "cut in the body": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    "cut in a chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nabc",
    "bad chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "not http": b"SSH-2.0-OpenSSH_9.6\r\n",
    "bad status": b"HTTP/1.1 2x0 OK\r\n\r\n",
    "status out of range": b"HTTP/1.1 042 Odd\r\n\r\n",
    "unknown version": b"HTTP/2.0 200 OK\r\n\r\n",
    "line too long": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
    "too many headers": b"HTTP/1.1 200 OK\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n",
}


def outcome(read: Any, data: bytes) -> type[BaseException] | None:
    try:
        read(data, "GET")
    except Exception as exc:
        return type(exc)
    return None


@pytest.mark.parametrize("name", list(BROKEN))
def test_what_is_cut_off_or_malformed_raises_what_http_client_raised(name: str) -> None:
    expected = outcome(by_http_client, BROKEN[name])
    assert expected is not None and issubclass(expected, http.client.HTTPException)
    assert outcome(by_reader, BROKEN[name]) is expected


def test_a_timeout_while_reading_is_raised_as_it_is() -> None:
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        ours.settimeout(0.05)
        with ours.makefile("rb") as reader, pytest.raises(TimeoutError):
            _read_answer(reader, "GET")
    finally:
        ours.close()
        theirs.close()
