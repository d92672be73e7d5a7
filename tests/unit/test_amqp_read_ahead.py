"""The consumer's read-ahead transport: frames come out whole and in order whatever the socket hands
over at once, a read that times out mid-frame loses nothing, and ``frame_buffered`` says exactly when
the next frame can be handled without waiting on the socket."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from types import SimpleNamespace

import amqp.transport
import pytest

from shared.bus.amqp_wire import READ_CHUNK, BufferedTCPTransport, frame_buffered, read_ahead


def frame(channel: int, payload: bytes, frame_type: int = 1) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


@pytest.fixture
def wire() -> Iterator[tuple[BufferedTCPTransport, socket.socket]]:
    ours, theirs = socket.socketpair()
    transport = amqp.transport.TCPTransport("localhost:5672")
    transport.sock = ours
    transport._setup_transport()
    connection = SimpleNamespace(connection=SimpleNamespace(transport=transport))
    assert read_ahead(connection) is transport and type(transport) is BufferedTCPTransport
    ours.settimeout(0.2)
    yield transport, theirs
    ours.close()
    theirs.close()


def test_frames_sent_together_are_read_whole_in_order_and_then_known_buffered(wire) -> None:
    transport, peer = wire
    frames = [(1, b"method"), (1, b"h" * 40), (2, b"b" * 3000), (1, b"")]
    peer.sendall(b"".join(frame(channel, payload) for channel, payload in frames))
    assert not frame_buffered(transport), "nothing read from the socket yet"
    read = [transport.read_frame()]
    # The first read took everything the socket had: the rest is served from memory.
    assert frame_buffered(transport)
    while frame_buffered(transport):
        read.append(transport.read_frame())
    assert [(channel, payload) for _, channel, payload in read] == frames
    assert not frame_buffered(transport)


def test_a_frame_cut_by_a_timeout_is_completed_by_the_next_read(wire) -> None:
    transport, peer = wire
    whole = frame(3, b"x" * 100)
    peer.sendall(whole[:50])
    with pytest.raises(socket.timeout):
        transport.read_frame()
    assert not frame_buffered(transport), "half a frame is not a frame"
    peer.sendall(whole[50:] + frame(4, b"next"))
    assert transport.read_frame() == (1, 3, b"x" * 100)
    assert frame_buffered(transport)
    assert transport.read_frame() == (1, 4, b"next")


def test_a_frame_larger_than_one_read_is_assembled(wire) -> None:
    transport, peer = wire
    payload = bytes(range(256)) * (3 * READ_CHUNK // 256)
    peer.sendall(frame(1, payload))
    assert transport.read_frame() == (1, 1, payload)


def test_only_the_plain_tcp_transport_is_changed() -> None:
    class Other(amqp.transport.TCPTransport):
        __slots__ = ()

    other = Other("localhost:5672")
    assert read_ahead(SimpleNamespace(connection=SimpleNamespace(transport=other))) is None
    assert type(other) is Other
    assert read_ahead(SimpleNamespace()) is None  # a test double without a py-amqp connection
