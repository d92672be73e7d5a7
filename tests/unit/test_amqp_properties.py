"""The relay's and the consumer's own reading and writing of AMQP basic properties (``amqp_properties``)
and of publish frames make and read exactly the bytes py-amqp does, and leave to py-amqp, with its own
errors, whatever they do not handle."""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import amqp
import pytest
from amqp.method_framing import frame_writer
from amqp.serialization import decode_properties_basic, dumps
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.bus.amqp_properties import decode_properties, encode_properties
from shared.bus.amqp_wire import publish_frames
from shared.bus.messages import OutgoingMessage
from shared.bus.rabbit_publish import amqp_properties, to_amqp_message


def py_amqp_bytes(properties: dict[str, Any]) -> bytes | type[BaseException]:
    try:
        return bytes(amqp.Message(**properties)._serialize_properties())
    except Exception as exc:
        return type(exc)


def ours(properties: dict[str, Any]) -> bytes | type[BaseException]:
    try:
        return encode_properties(properties)
    except Exception as exc:
        return type(exc)


def relay_properties(**changes: Any) -> dict[str, Any]:
    message = OutgoingMessage(
        event_id=uuid.uuid4(),
        event_type="UsageCollected",
        body=b"{}",
        correlation_id=str(uuid.uuid4()),
        producer="usage_collector",
        occurred_at=datetime(2026, 11, 1, tzinfo=UTC),
        headers={"x-postpay-schema-version": 1, "x-postpay-published-by": "not sent"},
    )
    return {**amqp_properties(message, "postpay-usage"), **changes}


_INTS = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.sampled_from([2147483647, 2147483648, -2147483647, -2147483648, 0])
)
_PLAIN_VALUES = st.one_of(st.text(max_size=20), st.binary(max_size=20), st.booleans(), _INTS)
_ODD_VALUES = st.one_of(
    st.floats(allow_nan=False),
    st.none(),
    st.just(Decimal("1.25")),
    st.just(datetime(2026, 1, 1)),  # py-amqp writes naive times
    st.lists(st.integers(0, 9), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=2),
)
_SHORT = st.one_of(st.text(max_size=30), st.binary(max_size=30), st.just("x" * 256), st.just(b"\xff\xfe"))
_KEYS = st.one_of(st.text(max_size=12), st.binary(max_size=12))


def _properties(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, kind in amqp.Message.PROPERTIES:
        if kind == "s":
            fields[name] = _SHORT
        elif kind == "o":
            fields[name] = st.one_of(st.integers(0, 255), st.sampled_from([256, -1, True]))
        elif kind == "L":
            fields[name] = st.one_of(st.integers(0, 2**64 - 1), st.just(-1))
        else:
            fields[name] = st.dictionaries(_KEYS, values, max_size=4)
    return st.fixed_dictionaries({}, optional=fields)


@given(_properties(_PLAIN_VALUES))
@settings(max_examples=400, deadline=None)
def test_plain_properties_are_written_as_py_amqp_writes_them(properties: dict[str, Any]) -> None:
    assert ours(properties) == py_amqp_bytes(properties)


@given(_properties(st.one_of(_PLAIN_VALUES, _ODD_VALUES)))
@settings(max_examples=300, deadline=None)
def test_any_other_value_is_left_to_py_amqp(properties: dict[str, Any]) -> None:
    assert ours(properties) == py_amqp_bytes(properties)


def _read_both(encoded: bytes) -> tuple[Any, Any]:
    results = []
    for read in (lambda: decode_properties(encoded, 0), lambda: decode_properties_basic(encoded, 0)[0]):
        try:
            results.append(read())
        except Exception as exc:
            results.append(type(exc))
    return results[0], results[1]


@given(_properties(st.one_of(_PLAIN_VALUES, _ODD_VALUES)))
@settings(max_examples=400, deadline=None)
def test_properties_are_read_as_py_amqp_reads_them(properties: dict[str, Any]) -> None:
    encoded = py_amqp_bytes(properties)
    if isinstance(encoded, bytes):
        ours_read, theirs = _read_both(encoded)
        assert ours_read == theirs


@given(st.binary(max_size=60), st.binary(max_size=4))
@settings(max_examples=400, deadline=None)
def test_broken_headers_are_read_or_refused_as_py_amqp_does(garbage: bytes, flags: bytes) -> None:
    for encoded in (garbage, flags + garbage, py_amqp_bytes(relay_properties())[:-3] + garbage):
        assert isinstance(encoded, bytes)
        ours_read, theirs = _read_both(encoded)
        assert ours_read == theirs


def test_table_value_types_other_senders_use_are_read_as_py_amqp_reads_them() -> None:
    # Letters py-amqp never writes but pika and RabbitMQ do ('s', 'l', 'u', ...), and a value in bytes.
    items = [b"s" + struct.pack(">h", -2), b"l" + struct.pack(">q", -(2**40)), b"u" + struct.pack(">H", 7)]
    items += [b"U" + struct.pack(">h", -7), b"i" + struct.pack(">I", 2**31), b"b\xff", b"B\xff", b"V"]
    items += [b"S" + struct.pack(">I", 2) + b"\xff\xfe", b"d" + struct.pack(">d", 0.5)]
    for item in items:
        table = b"\x01k" + item
        encoded = struct.pack(">H", 0x2000) + struct.pack(">I", len(table)) + table
        ours_read, theirs = _read_both(encoded)
        assert ours_read == theirs, item


def test_the_relays_properties_are_the_messages_it_used_to_build() -> None:
    properties = relay_properties()
    assert "x-postpay-published-by" not in properties["application_headers"]
    message = OutgoingMessage(
        event_id=uuid.uuid4(),
        event_type="Tick",
        body=b"{}",
        correlation_id="c",
        producer="p",
        occurred_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    assert to_amqp_message(message, "u").properties == amqp_properties(message, "u")


@pytest.mark.parametrize("body", [b"", b"{}", b"x" * 300_000])
def test_publish_frames_are_the_frames_py_amqp_writes(body: bytes) -> None:
    written: list[bytes] = []
    transport = SimpleNamespace(write=lambda data: written.append(bytes(data)))
    connection = SimpleNamespace(transport=transport, frame_max=131072, bytes_sent=0)
    writer = frame_writer(connection, transport)  # type: ignore[arg-type]
    properties = relay_properties()
    method = dumps("Bssbb", (0, "postpay.events", "UsageCollected", True, False))
    writer(1, 3, (60, 40), method, amqp.Message(body, **properties))
    ours_frames = publish_frames(3, "postpay.events", "UsageCollected", body, properties, 131072)
    assert ours_frames == b"".join(written)
