"""PHP ``serialize()``/``unserialize()`` for the values WHMCS exchanges, and its base64 wrapping.

WHMCS takes ``customfields`` (AddClient, UpdateClient) and ``customvars`` (SendEmail) as
``base64_encode(serialize(array(...)))``. Only scalars and arrays are supported: objects never appear
in these parameters. PHP's ``s:<n>`` counts **bytes** of the UTF-8 text, not characters, which is the
bug this module exists to avoid.

PHP arrays are ordered maps; they come back as ``dict``. As in PHP, a string key that is a canonical
decimal integer (``"7"``, not ``"07"``) becomes an integer key, so ``{"1": "x"}`` is written ``i:1``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

_CANONICAL_INT = re.compile(r"^(0|-?[1-9][0-9]*)$")
PHP_INT_MAX = 2**63 - 1
PHP_INT_MIN = -(2**63)


class PhpSerializeError(ValueError):
    """The value cannot be serialized, or the bytes are not a PHP-serialized value."""


def php_array_key(key: object) -> int | str:
    """The key PHP would store: ints stay, canonical integer strings become ints, bools become 0/1."""
    if isinstance(key, bool):
        return int(key)
    if isinstance(key, int):
        return key
    if isinstance(key, str):
        if _CANONICAL_INT.match(key) and PHP_INT_MIN <= int(key) <= PHP_INT_MAX:
            return int(key)
        return key
    raise PhpSerializeError(f"PHP array keys are ints or strings, not {type(key).__name__}")


def dumps(value: Any) -> bytes:
    out: list[bytes] = []
    _dump(value, out)
    return b"".join(out)


def _dump_string(text: str, out: list[bytes]) -> None:
    raw = text.encode("utf-8")
    out.append(b's:%d:"' % len(raw))
    out.append(raw)
    out.append(b'";')


def _dump(value: Any, out: list[bytes]) -> None:
    if value is None:
        out.append(b"N;")
    elif isinstance(value, bool):
        out.append(b"b:1;" if value else b"b:0;")
    elif isinstance(value, int):
        out.append(b"i:%d;" % value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise PhpSerializeError("only finite floats are serialized")
        out.append(f"d:{value!r};".encode())
    elif isinstance(value, Decimal):
        # Money travels as text, exactly as WHMCS sends amounts; a PHP float would round it.
        _dump_string(str(value), out)
    elif isinstance(value, str):
        _dump_string(value, out)
    elif isinstance(value, Mapping):
        out.append(b"a:%d:{" % len(value))
        for key, item in value.items():
            _dump(php_array_key(key), out)
            _dump(item, out)
        out.append(b"}")
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        _dump(dict(enumerate(value)), out)
    else:
        raise PhpSerializeError(f"cannot serialize {type(value).__name__} for PHP")


def loads(data: bytes | str) -> Any:
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    value, end = _Parser(raw).parse(0)
    if end != len(raw):
        raise PhpSerializeError(f"trailing data after the serialized value at byte {end}")
    return value


class _Parser:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def _expect(self, pos: int, token: bytes) -> int:
        if self.raw[pos : pos + len(token)] != token:
            raise PhpSerializeError(f"expected {token!r} at byte {pos}")
        return pos + len(token)

    def _until(self, pos: int, stop: bytes) -> tuple[bytes, int]:
        end = self.raw.find(stop, pos)
        if end < 0:
            raise PhpSerializeError(f"unterminated value at byte {pos}")
        return self.raw[pos:end], end + len(stop)

    def _int(self, text: bytes, pos: int) -> int:
        try:
            return int(text)
        except ValueError:
            raise PhpSerializeError(f"bad integer {text!r} at byte {pos}") from None

    def parse(self, pos: int) -> tuple[Any, int]:
        kind = self.raw[pos : pos + 1]
        if kind == b"N":
            return None, self._expect(pos + 1, b";")
        pos = self._expect(pos + 1, b":")
        if kind == b"b":
            text, end = self._until(pos, b";")
            if text not in (b"0", b"1"):
                raise PhpSerializeError(f"bad boolean {text!r} at byte {pos}")
            return text == b"1", end
        if kind == b"i":
            text, end = self._until(pos, b";")
            return self._int(text, pos), end
        if kind == b"d":
            text, end = self._until(pos, b";")
            try:
                return float(text), end
            except ValueError:
                raise PhpSerializeError(f"bad float {text!r} at byte {pos}") from None
        if kind == b"s":
            text, pos = self._until(pos, b":")
            length = self._int(text, pos)
            pos = self._expect(pos, b'"')
            body = self.raw[pos : pos + length]
            if len(body) != length:
                raise PhpSerializeError("string shorter than its declared byte length")
            pos = self._expect(pos + length, b'";')
            try:
                return body.decode("utf-8"), pos
            except UnicodeDecodeError:
                raise PhpSerializeError("string is not valid UTF-8 (wrong byte length?)") from None
        if kind == b"a":
            text, pos = self._until(pos, b":")
            count = self._int(text, pos)
            pos = self._expect(pos, b"{")
            result: dict[int | str, Any] = {}
            for _ in range(count):
                key, pos = self.parse(pos)
                if not isinstance(key, (int, str)) or isinstance(key, bool):
                    raise PhpSerializeError(f"array key must be int or string at byte {pos}")
                result[key], pos = self.parse(pos)
            return result, self._expect(pos, b"}")
        raise PhpSerializeError(f"unsupported PHP type {kind!r} at byte {pos - 1}")


def encode_base64(value: Mapping[Any, Any]) -> str:
    """``base64_encode(serialize($value))``, the form of ``customfields`` and ``customvars``."""
    return base64.b64encode(dumps(value)).decode("ascii")


def decode_base64(text: str) -> dict[int | str, Any]:
    """The inverse of :func:`encode_base64`; raises :class:`PhpSerializeError` for anything else."""
    try:
        # PHP's base64_decode() skips whitespace (line-wrapped encoders exist); nothing else is lenient.
        raw = base64.b64decode("".join(text.split()).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise PhpSerializeError("not base64") from None
    value = loads(raw)
    if not isinstance(value, dict):
        raise PhpSerializeError("the serialized value is not an array")
    return value
