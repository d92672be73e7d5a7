"""What every part of the RabbitMQ bus shares about py-amqp: which errors mean the connection is gone,
what a timeout looks like, and a message body as bytes."""

from __future__ import annotations

import errno
import functools
import socket
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from struct import pack, unpack_from
from typing import Any

import amqp
import amqp.transport
import kombu.exceptions
from amqp.serialization import dumps

from shared.bus.amqp_properties import decode_properties, encode_properties

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    amqp.exceptions.AMQPError,
    kombu.exceptions.KombuError,
)

# The broker cannot be reached (refused, reset, not answering): worth waiting out. Narrower than the
# above on purpose: a channel error, such as a queue declared with other arguments, is a configuration
# fault that waiting would only hide.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    kombu.exceptions.OperationalError,
    amqp.exceptions.RecoverableConnectionError,
)


# What a broker still forming its quorum queues answers a declare with: a fresh cluster where four
# services declared at once answered one of them 404 "home node ... of durable queue ... is down or
# inaccessible" while the queue's members were starting; a member restarting answers "stopped by
# supervisor"; a queue whose Raft cluster could not start in time, 541 INTERNAL_ERROR. Each passes.
_TRANSIENT_NOT_FOUND = ("home node", "down or inaccessible", "stopped by supervisor", "nodedown", "noproc")


def is_transient_topology_error(exc: BaseException) -> bool:
    """A declare failed for a reason that passes on its own (as opposed to a configuration fault such
    as a queue declared with other arguments, 406, or a user without permission, 403)."""
    if isinstance(exc, amqp.exceptions.InternalError):
        return True
    if isinstance(exc, amqp.exceptions.NotFound):
        text = str(getattr(exc, "reply_text", None) or exc).lower()
        return any(marker in text for marker in _TRANSIENT_NOT_FOUND)
    return False


def coalesced_acks(tags: Iterable[int], still_unsettled: AbstractSet[int]) -> list[tuple[int, bool]]:
    """``(delivery_tag, multiple)`` acks that acknowledge exactly ``tags`` on a channel whose other
    unacknowledged deliveries are ``still_unsettled``.

    A ``multiple`` ack covers every unacknowledged delivery up to its tag, so the tags below the
    lowest delivery still being handled go as one frame; those above it, one by one.
    """
    ordered = sorted(set(tags))
    floor = min(still_unsettled, default=None)
    below = [tag for tag in ordered if floor is None or tag < floor]
    acks = [(below[-1], len(below) > 1)] if below else []
    return acks + [(tag, False) for tag in ordered[len(below) :]]


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (socket.timeout, TimeoutError))


def body_bytes(raw: amqp.Message) -> bytes:
    body = raw.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode(raw.properties.get("content_encoding") or "utf-8", "surrogatepass")
    return bytes(body)


# How much one read asks the socket for. py-amqp reads each frame's header, payload and end octet with
# a recv of exactly that size, three system calls per frame and three frames per delivery; reading
# what the socket has (up to this) serves the next frames from memory.
READ_CHUNK = 16_384


class BufferedTCPTransport(amqp.transport.TCPTransport):  # type: ignore[misc]  # py-amqp is untyped
    """py-amqp's plain TCP transport, reading ahead (installed on a consumer's connection by
    ``read_ahead``). Its buffer is py-amqp's own ``_read_buffer``, so a read that times out part-way
    through a frame keeps what it read, as py-amqp's does. No slots of its own: the object's layout
    stays its class's, so an existing transport can become one."""

    _read_buffer: bytes

    def _read(self, n: int, initial: bool = False, _errnos: tuple[int, ...] = (errno.EAGAIN, errno.EINTR)) -> bytes:
        rbuf = self._read_buffer
        if len(rbuf) < n:
            recv = self._quick_recv
            try:
                while len(rbuf) < n:
                    try:
                        data = recv(max(n - len(rbuf), READ_CHUNK))
                    except OSError as exc:
                        if exc.errno in _errnos:
                            if initial and self.raise_on_initial_eintr:
                                raise TimeoutError() from exc
                            continue
                        raise
                    if not data:
                        raise OSError("Server unexpectedly closed connection")
                    rbuf += data
            except BaseException:
                self._read_buffer = rbuf
                raise
        result: bytes = rbuf[:n]
        self._read_buffer = rbuf[n:]
        return result


def read_ahead(connection: Any) -> Any:
    """Make a connected kombu connection's py-amqp transport read ahead; returns the transport, or
    None when it is not the plain TCP one (TLS, a test double), which is then left as it is."""
    transport = getattr(getattr(connection, "connection", None), "transport", None)
    if type(transport) is amqp.transport.TCPTransport:
        transport.__class__ = BufferedTCPTransport
        return transport
    return None


def take_buffered_frames(transport: Any, limit: int) -> list[tuple[int, int, bytes]]:
    """The whole frames already read ahead (at most ``limit``), as ``read_frame`` returns them, taken
    off the buffer at once: ``read_frame`` takes header, payload and end octet off it in three slices,
    each copying the rest of the buffer."""
    buffer: bytes = transport._read_buffer
    frames: list[tuple[int, int, bytes]] = []
    offset, size = 0, len(buffer)
    while len(frames) < limit and size - offset >= 7:
        frame_type, channel, length = unpack_from(">BHI", buffer, offset)
        end = offset + 7 + length
        if end >= size:
            break
        if buffer[end] != 0xCE:
            raise amqp.exceptions.UnexpectedFrame(f"Received frame_end {buffer[end]:#04x} while expecting 0xce")
        frames.append((frame_type, channel, buffer[offset + 7 : end]))
        offset = end + 1
    transport._read_buffer = buffer[offset:]
    return frames


_BASIC_CLASS = 60
_DELIVER = (_BASIC_CLASS, 60)
_DELIVER_PREFIX = pack(">HH", *_DELIVER)


def handle_frames(connection: Any, frames: list[tuple[int, int, bytes]]) -> None:
    """Hand ``frames`` to the py-amqp ``connection``; a delivery whose three frames (``basic.deliver``,
    content header, one body frame) are all here goes straight to its consumer's callback as the same
    ``amqp.Message`` py-amqp would build. py-amqp's way (a state machine step per frame, a generic
    argument decoder, a dispatch table) cost more than half the consumer thread's CPU per delivery.
    Anything else, and any delivery its channel would not dispatch as usual, goes through py-amqp.

    A ``basic.deliver`` frame only ever comes when its channel's previous content is complete (content
    frames of a channel are never interleaved with its methods), so py-amqp is never left half-way
    through a message this skips."""
    on_frame = connection.on_inbound_frame
    index, count = 0, len(frames)
    while index < count:
        frame_type, channel_id, payload = frames[index]
        if frame_type == 1 and index + 2 < count and payload[:4] == _DELIVER_PREFIX:
            if _deliver(connection, channel_id, payload, frames[index + 1], frames[index + 2]):
                index += 3
                continue
        on_frame(frames[index])
        index += 1


def _shortstr(payload: bytes, offset: int) -> tuple[str, int]:
    length = payload[offset]
    end = offset + 1 + length
    return payload[offset + 1 : end].decode("utf-8", "surrogatepass"), end


def _deliver(
    connection: Any, channel_id: int, method: bytes, header: tuple[int, int, bytes], body: tuple[int, int, bytes]
) -> bool:
    """One whole delivery to its callback, as py-amqp's ``_on_basic_deliver`` would; False (nothing
    done) if it is not the plain case."""
    if header[0] != 2 or header[1] != channel_id or body[0] != 3 or body[1] != channel_id:
        return False
    class_id, body_size = unpack_from(">HxxQ", header[2], 0)
    channel = (connection.channels or {}).get(channel_id)
    if body_size != len(body[2]) or body_size == 0 or channel is None:
        return False
    if channel.is_closing or channel.auto_decode or _DELIVER in channel._pending:
        return False
    consumer_tag, offset = _shortstr(method, 4)
    callback = channel.callbacks.get(consumer_tag)
    if callback is None:
        return False  # py-amqp rejects it back to the queue
    delivery_tag, bits = unpack_from(">QB", method, offset)
    exchange, offset = _shortstr(method, offset + 9)
    routing_key, _ = _shortstr(method, offset)
    message = amqp.Message(body[2], frame_method=_DELIVER, frame_args=method)
    if class_id == _BASIC_CLASS:
        message.properties = decode_properties(header[2], 12)
    else:
        message._load_properties(class_id, header[2], 12)
    message.body_size = message.body_received = body_size
    message.ready = True
    message.channel = channel
    message.delivery_info = {
        "consumer_tag": consumer_tag,
        "delivery_tag": delivery_tag,
        "redelivered": bool(bits & 1),
        "exchange": exchange,
        "routing_key": routing_key,
    }
    connection.bytes_recv += 3  # three frames in, for the heartbeat check, as py-amqp counts them
    callback(message)
    return True


def read_available(transport: Any, poller: Any, timeout: float) -> None:
    """Wait up to ``timeout`` for the socket of a read-ahead ``transport`` (``poller``: a ``select.poll``
    registered for it) and append what it has to the read-ahead, unless a whole frame is already there.

    The consumer's loop reads this way instead of py-amqp's ``drain_events``, which takes one frame per
    call through py-amqp's frame handling (and sets the socket's timeout twice): with deliveries
    arriving one at a time, the first frame of each went that way and the rest of it too."""
    if frame_buffered(transport):
        return
    if not poller.poll(max(0, int(timeout * 1000))):
        return
    data = transport.sock.recv(READ_CHUNK)  # readable: returns at once
    if not data:
        raise OSError("Server unexpectedly closed connection")
    transport._read_buffer += data


# basic.ack (class 60, method 80): the method frame's header and the ack's fixed size.
_BASIC_ACK = pack(">HH", 60, 80)


def ack_frames(channel_id: int, acks: Iterable[tuple[int, bool]]) -> bytes:
    """The frames of ``basic.ack``s (``(delivery_tag, multiple)``), as py-amqp's ``basic_ack`` writes
    them, for one write: py-amqp builds and sends each through its generic method writer."""
    return b"".join(
        pack(">BHI4sQB", 1, channel_id, 13, _BASIC_ACK, tag, multiple) + _FRAME_END for tag, multiple in acks
    )


def frame_buffered(transport: Any) -> bool:
    """Whether a whole frame is already read: handling it needs no wait on the socket."""
    buffer = transport._read_buffer
    return len(buffer) >= 7 and len(buffer) >= int.from_bytes(buffer[3:7], "big") + 8


# basic.publish (class 60, method 40), and the end octet of every frame.
_BASIC_PUBLISH = pack(">HH", 60, 40)
_FRAME_END = b"\xce"


def publish_frames(
    channel_id: int, exchange: str, routing_key: str, body: bytes, properties: Mapping[str, Any], frame_max: int
) -> bytes:
    """The frames of one mandatory ``basic.publish`` of ``body`` with ``properties`` (those of an
    ``amqp.Message``), as py-amqp writes them: the method, the content header, the body in frames of
    at most ``frame_max``.

    A batch's frames go out in one write (``write_frames``): py-amqp's ``basic_publish`` makes a system
    call per message and, on a broker that can block connections, first polls the socket for a
    ``connection.blocked`` each time; those were most of the relay's CPU per event."""
    header = pack(">HHQ", _BASIC_CLASS, 0, len(body)) + encode_properties(properties)
    parts = [_publish_method(channel_id, exchange, routing_key)]
    parts += [pack(">BHI", 2, channel_id, len(header)), header, _FRAME_END]
    chunk = frame_max - 8
    for start in range(0, len(body), chunk):
        piece = body[start : start + chunk]
        parts += [pack(">BHI", 3, channel_id, len(piece)), piece, _FRAME_END]
    return b"".join(parts)


@functools.lru_cache(maxsize=1024)
def _publish_method(channel_id: int, exchange: str, routing_key: str) -> bytes:
    """The method frame of a mandatory publish, the same for every event of one type: made once."""
    method: bytes = _BASIC_PUBLISH + dumps("Bssbb", (0, exchange, routing_key, True, False))
    return pack(">BHI", 1, channel_id, len(method)) + method + _FRAME_END


def write_frames(amqp_connection: Any, frames: bytes) -> None:
    """Send ready frames on a py-amqp connection (the one thread that uses it), counted as sent for its
    heartbeats as py-amqp's own writes are."""
    amqp_connection.transport.write(frames)
    amqp_connection.bytes_sent += 1
