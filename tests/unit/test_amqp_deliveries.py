"""The consumer's short way for whole deliveries (``handle_frames``) hands its callback the same message
py-amqp's own frame handling does, byte for byte, in the same order as everything else on the
connection; whatever is not a whole plain delivery still goes through py-amqp."""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

import amqp
import pytest
from amqp.method_framing import frame_handler, frame_writer
from amqp.serialization import dumps

from shared.bus.amqp_wire import ack_frames, handle_frames, take_buffered_frames

CHANNEL = 1


def fake_connection() -> Any:
    """A py-amqp connection's frame side, without a socket: a real channel and py-amqp's frame handler."""
    connection = SimpleNamespace(channels={}, confirm_publish=False, bytes_recv=0)
    connection._claim_channel_id = lambda channel_id: None
    channel = amqp.Channel(connection, CHANNEL, auto_decode=False)

    def on_inbound_method(channel_id: int, method_sig: Any, payload: bytes, content: Any) -> Any:
        return connection.channels[channel_id].dispatch_method(method_sig, payload, content)

    connection.on_inbound_frame = frame_handler(connection, on_inbound_method)
    received: list[tuple[str, Any]] = []
    channel.callbacks["ctag"] = lambda message: received.append(("deliver", message))
    channel._callbacks[(60, 80)] = lambda tag, multiple: received.append(("ack", (tag, multiple)))
    connection.received = received
    return connection


def delivery_frames(tag: int, body: bytes, *, redelivered: bool = False, split: int | None = None) -> list[Any]:
    method = struct.pack(">HH", 60, 60) + dumps("sLbss", ("ctag", tag, redelivered, "events", "Tick"))
    message = amqp.Message(
        body,
        content_type="application/json",
        delivery_mode=2,
        message_id=f"id-{tag}",
        user_id="svc",
        application_headers={"x-postpay-schema-version": 1, "x-attempt": tag},
    )
    header = struct.pack(">HHQ", 60, 0, len(body)) + message._serialize_properties()
    bodies = [body] if split is None else [body[:split], body[split:]]
    return [(1, CHANNEL, method), (2, CHANNEL, header)] + [(3, CHANNEL, part) for part in bodies if part]


def ack_frame(tag: int) -> Any:
    return (1, CHANNEL, struct.pack(">HH", 60, 80) + dumps("Lb", (tag, False)))


def through_py_amqp(frames: list[Any]) -> list[tuple[str, Any]]:
    connection = fake_connection()
    for frame in frames:
        connection.on_inbound_frame(frame)
    return connection.received


def described(received: list[tuple[str, Any]]) -> list[Any]:
    return [
        (kind, (m.body, m.properties, m.delivery_info, m.channel.channel_id) if kind == "deliver" else m)
        for kind, m in received
    ]


@pytest.mark.parametrize(
    "frames",
    [
        delivery_frames(1, b'{"a": 1}'),
        delivery_frames(1, b"x") + [ack_frame(7)] + delivery_frames(2, b"\xff\xfe not utf-8", redelivered=True),
        # A body in two frames and an empty body are left to py-amqp, between plain ones.
        delivery_frames(1, b"a") + delivery_frames(2, b"split body", split=5) + delivery_frames(3, b""),
    ],
)
def test_deliveries_arrive_as_py_amqp_would_deliver_them(frames: list[Any]) -> None:
    connection = fake_connection()
    handle_frames(connection, frames)
    assert described(connection.received) == described(through_py_amqp(frames))
    assert connection.bytes_recv == len(frames)


def test_whole_plain_deliveries_skip_py_amqps_frame_handling() -> None:
    connection = fake_connection()
    handled: list[Any] = []
    py_amqp = connection.on_inbound_frame
    connection.on_inbound_frame = lambda frame: handled.append(frame) or py_amqp(frame)
    frames = delivery_frames(1, b"a") + [ack_frame(1)] + delivery_frames(2, b"b")
    handle_frames(connection, frames)
    assert handled == [ack_frame(1)]
    assert [kind for kind, _ in connection.received] == ["deliver", "ack", "deliver"]


def test_a_delivery_cut_between_two_reads_is_finished_by_py_amqp() -> None:
    frames = delivery_frames(1, b"one") + delivery_frames(2, b"two")
    connection = fake_connection()
    handle_frames(connection, frames[:2])
    assert connection.received == []
    handle_frames(connection, frames[2:])
    assert described(connection.received) == described(through_py_amqp(frames))


def test_a_delivery_for_no_known_consumer_goes_to_py_amqp() -> None:
    frames = delivery_frames(1, b"x")
    connection = fake_connection()
    connection.channels[CHANNEL].callbacks.clear()
    rejected: list[Any] = []
    connection.channels[CHANNEL].basic_reject = lambda tag, requeue: rejected.append((tag, requeue))
    handle_frames(connection, frames)
    assert rejected == [(1, True)], "py-amqp's own handling: back to the queue"


def test_buffered_frames_are_taken_whole_and_the_rest_kept() -> None:
    wire = b"".join(struct.pack(">BHI", t, c, len(p)) + p + b"\xce" for t, c, p in delivery_frames(5, b"body"))
    transport = SimpleNamespace(_read_buffer=wire + wire[:9])
    frames = take_buffered_frames(transport, 1024)
    assert frames == delivery_frames(5, b"body")
    assert transport._read_buffer == wire[:9], "a partial frame stays for the next read"
    transport._read_buffer = wire
    assert take_buffered_frames(transport, 2) == delivery_frames(5, b"body")[:2]
    assert take_buffered_frames(transport, 2) == delivery_frames(5, b"body")[2:]
    transport._read_buffer = wire[:-1] + b"\x00"
    with pytest.raises(amqp.exceptions.UnexpectedFrame):
        take_buffered_frames(transport, 1024)


@pytest.mark.parametrize("acks", [[(1, False)], [(7, True), (9, False), (2**40, False)]])
def test_ack_frames_are_the_frames_py_amqp_writes(acks: list[tuple[int, bool]]) -> None:
    written: list[bytes] = []
    transport = SimpleNamespace(write=lambda data: written.append(bytes(data)))
    connection = SimpleNamespace(transport=transport, frame_max=131072, bytes_sent=0)
    writer = frame_writer(connection, transport)  # type: ignore[arg-type]
    for tag, multiple in acks:
        writer(1, CHANNEL, (60, 80), dumps("Lb", (tag, multiple)), None)
    assert ack_frames(CHANNEL, acks) == b"".join(written)
