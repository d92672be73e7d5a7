"""AMQP basic properties (a content header's flags and property list) to and from bytes, as py-amqp's
``Message._serialize_properties`` and ``decode_properties_basic`` make and read them, for the plain
ones every postpay event has: short strings, octets, a timestamp, a headers table of strings, ints
and booleans.

py-amqp's own go through its generic ``dumps``/``loads`` (a format string walked per value, a BytesIO
per table): on a relay publishing a batch and a consumer receiving one, those were the largest single
cost per event of either thread. Anything else (another value type, a string too long for its
length octet, bytes that are not UTF-8) is left to py-amqp, which then does or raises exactly what it
always did.
"""

from __future__ import annotations

from collections.abc import Mapping
from struct import pack, unpack_from
from typing import Any

import amqp
from amqp.serialization import decode_properties_basic

# (name, type) in flag order, the first property on the highest bit: py-amqp's own list.
_PROPERTIES: tuple[tuple[str, str], ...] = tuple(amqp.Message.PROPERTIES)
_BITS = tuple(1 << (15 - index) for index in range(len(_PROPERTIES)))
_LAYOUT = tuple((name, kind, bit) for (name, kind), bit in zip(_PROPERTIES, _BITS, strict=True))
_LENGTHS = tuple(bytes((n,)) for n in range(256))  # a length octet; an octet
_INT32 = 2147483647  # py-amqp writes an int beyond +-this (its bounds) as a 64-bit 'L'


class _Unusual(Exception):
    """A value this module leaves to py-amqp."""


def encode_properties(properties: Mapping[str, Any]) -> bytes:
    """The property flags and list of ``properties`` (``amqp.Message.properties``), byte for byte as
    py-amqp's ``_serialize_properties`` writes them."""
    try:
        return _encode(properties)
    except Exception:  # what py-amqp does with it, raising included, is py-amqp's to say
        return bytes(amqp.Message(**properties)._serialize_properties())


def _encode(properties: Mapping[str, Any]) -> bytes:
    flags = 0
    parts = [b""]
    for name, kind, bit in _LAYOUT:
        value = properties.get(name)
        if value is None:
            continue
        flags |= bit
        if kind == "s":
            encoded = value.encode("utf-8", "surrogatepass") if type(value) is str else _bytes(value)
            parts += (_LENGTHS[len(encoded)], encoded)  # IndexError past 255, as py-amqp's pack fails
        elif kind == "o" and type(value) is int and value >= 0:
            parts.append(_LENGTHS[value])
        elif kind == "L" and type(value) is int and 0 <= value < 1 << 64:
            parts.append(pack(">Q", value))
        elif kind == "F" and type(value) is dict:
            parts.append(_table(value))
        else:
            raise _Unusual(name)
    parts[0] = pack(">H", flags)
    return b"".join(parts)


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        return value
    raise _Unusual(type(value).__name__)


def _shortstr(value: Any) -> bytes:
    encoded = _bytes(value)
    return _LENGTHS[len(encoded)] + encoded


def _table(table: dict[Any, Any]) -> bytes:
    parts = []
    for key, value in table.items():
        parts.append(_shortstr(key))
        if isinstance(value, (str, bytes)):
            encoded = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
            parts.append(pack(">cI", b"S", len(encoded)) + encoded)
        elif isinstance(value, bool):
            parts.append(b"t\x01" if value else b"t\x00")
        elif isinstance(value, int):
            big = value > _INT32 or value < -_INT32
            parts.append(pack(">cq", b"L", value) if big else pack(">ci", b"I", value))
        else:
            raise _Unusual(type(value).__name__)
    data = b"".join(parts)
    return pack(">I", len(data)) + data


# Table value types read here (py-amqp's letters and its reading of each); any other: py-amqp reads it.
_FIXED = {"I": (">i", 4), "l": (">q", 8), "L": (">q", 8), "b": (">b", 1), "B": (">B", 1), "s": (">h", 2)}
_FIXED |= {"U": (">h", 2), "u": (">H", 2), "i": (">I", 4)}

# Per flags word: the properties present, in order.
_LAYOUTS: dict[int, tuple[tuple[str, str], ...]] = {}


def decode_properties(buf: bytes, offset: int) -> dict[str, Any]:
    """The properties of a Basic content header from ``offset`` (after class, weight and body size), as
    py-amqp's ``decode_properties_basic`` reads them (or raises, for what it cannot)."""
    try:
        return _decode(buf, offset)
    except Exception:
        properties, _ = decode_properties_basic(buf, offset)
        return properties  # type: ignore[no-any-return]  # py-amqp is untyped


def _decode(buf: bytes, offset: int) -> dict[str, Any]:
    flags = (buf[offset] << 8) | buf[offset + 1]
    layout = _LAYOUTS.get(flags)
    if layout is None:
        layout = _LAYOUTS[flags] = tuple(p for p, bit in zip(_PROPERTIES, _BITS, strict=True) if flags & bit)
    offset += 2
    properties: dict[str, Any] = {}
    for name, kind in layout:
        if kind == "s":
            end = offset + 1 + buf[offset]
            properties[name] = buf[offset + 1 : end].decode("utf-8", "surrogatepass")
            offset = end
        elif kind == "o":
            properties[name] = buf[offset]
            offset += 1
        elif kind == "L":
            (properties[name],) = unpack_from(">Q", buf, offset)
            offset += 8
        elif kind == "F":
            properties[name], offset = _read_table(buf, offset)
        else:
            raise _Unusual(kind)
    return properties


def _read_table(buf: bytes, offset: int) -> tuple[dict[Any, Any], int]:
    (length,) = unpack_from(">I", buf, offset)
    offset += 4
    limit = offset + length
    if limit > len(buf):
        raise _Unusual("a table past the end of the header")  # py-amqp says how
    table: dict[Any, Any] = {}
    while offset < limit:
        end = offset + 1 + buf[offset]
        key: Any = buf[offset + 1 : end]
        try:
            key = key.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            pass  # py-amqp keeps such a key as bytes
        kind = chr(buf[end])
        offset = end + 1
        if kind == "S":
            (size,) = unpack_from(">I", buf, offset)
            value: Any = buf[offset + 4 : offset + 4 + size]
            try:
                value = value.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                pass  # py-amqp hands such a value over as bytes
            offset += 4 + size
        elif kind == "t":
            value = bool(buf[offset])
            offset += 1
        elif kind == "V":
            value = None
        elif kind in _FIXED:
            form, size = _FIXED[kind]
            (value,) = unpack_from(form, buf, offset)
            offset += size
        else:
            raise _Unusual(kind)
        table[key] = value
    return table, offset
