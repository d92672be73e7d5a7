"""The WHMCS simulator's own reading of ``base64_encode(serialize(array(...)))``.

WHMCS receives ``customfields`` and ``customvars`` in this form. The simulator decodes them with this
module, written apart from postpay's encoder (``shared/upstream/phpserialize``) on purpose: a checker
that shared the product's codec would agree with any bug in it. It only reads, and only what PHP's
``unserialize()`` would give for scalars and arrays; like PHP, a string key that is a canonical decimal
integer becomes an integer key.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

_INTEGER_KEY = re.compile(rb"-?(0|[1-9][0-9]*)")
_INT_BOUNDS = (-(2**63), 2**63 - 1)


class SerializedError(ValueError):
    """What WHMCS would fail to unserialize."""


class _Reader:
    """A cursor over the bytes; every ``s:<n>`` length counts bytes, as PHP does."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, literal: bytes) -> None:
        if not self.data.startswith(literal, self.at):
            raise SerializedError(f"expected {literal!r} at offset {self.at}")
        self.at += len(literal)

    def through(self, terminator: bytes) -> bytes:
        end = self.data.find(terminator, self.at)
        if end == -1:
            raise SerializedError(f"no {terminator!r} after offset {self.at}")
        chunk = self.data[self.at : end]
        self.at = end + len(terminator)
        return chunk

    def number(self, terminator: bytes) -> int:
        chunk = self.through(terminator)
        if not re.fullmatch(rb"[+-]?[0-9]+", chunk):
            raise SerializedError(f"not an integer: {chunk!r}")
        return int(chunk)

    def value(self) -> Any:
        tag = self.data[self.at : self.at + 1]
        if tag == b"N":
            self.take(b"N;")
            return None
        self.take(tag + b":")
        if tag == b"b":
            flag = self.through(b";")
            if flag not in (b"0", b"1"):
                raise SerializedError(f"not a boolean: {flag!r}")
            return flag == b"1"
        if tag == b"i":
            return self.number(b";")
        if tag == b"d":
            chunk = self.through(b";")
            try:
                return float(chunk)
            except ValueError:
                raise SerializedError(f"not a float: {chunk!r}") from None
        if tag == b"s":
            size = self.number(b":")
            self.take(b'"')
            raw = self.data[self.at : self.at + size]
            if size < 0 or len(raw) != size:
                raise SerializedError("string cut short")
            self.at += size
            self.take(b'";')
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise SerializedError("string is not UTF-8 at its declared byte length") from None
        if tag == b"a":
            count = self.number(b":")
            self.take(b"{")
            array: dict[int | str, Any] = {}
            for _ in range(count):
                key = self.value()
                if isinstance(key, str) and _INTEGER_KEY.fullmatch(key.encode()):
                    number = int(key)
                    key = number if _INT_BOUNDS[0] <= number <= _INT_BOUNDS[1] else key
                if isinstance(key, bool) or not isinstance(key, (int, str)):
                    raise SerializedError("an array key must be an integer or a string")
                array[key] = self.value()
            self.take(b"}")
            return array
        raise SerializedError(f"unknown type tag {tag!r}")


def unserialize(data: bytes) -> Any:
    reader = _Reader(data)
    result = reader.value()
    if reader.at != len(data):
        raise SerializedError("bytes left after the value")
    return result


def decode_array(text: str) -> dict[int | str, Any]:
    """``unserialize(base64_decode($text))`` when that is an array; ``SerializedError`` otherwise."""
    try:
        # base64_decode() skips whitespace; anything else that is not base64 fails.
        raw = base64.b64decode("".join(text.split()).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SerializedError("not base64") from None
    value = unserialize(raw)
    if not isinstance(value, dict):
        raise SerializedError("not an array")
    return value
