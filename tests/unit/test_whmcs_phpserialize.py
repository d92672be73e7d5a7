"""PHP serialize()/unserialize() and the base64 wrapping WHMCS uses for customfields and customvars."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.upstream.phpserialize import (
    PhpSerializeError,
    decode_base64,
    dumps,
    encode_base64,
    loads,
    php_array_key,
)

# Keys as PHP stores them: ints, and strings that are not canonical integers (PHP would turn those into ints).
php_keys = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text().filter(lambda text: php_array_key(text) == text),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
php_values = st.recursive(scalars, lambda inner: st.dictionaries(php_keys, inner, max_size=5), max_leaves=20)


@given(php_values)
def test_round_trip(value: Any) -> None:
    assert loads(dumps(value)) == value


@given(st.dictionaries(php_keys, st.text(), max_size=6))
def test_base64_round_trip(fields: dict[int | str, str]) -> None:
    assert decode_base64(encode_base64(fields)) == fields


@given(st.text())
def test_string_length_is_the_utf8_byte_count(text: str) -> None:
    raw = text.encode("utf-8")
    assert dumps(text) == b's:%d:"' % len(raw) + raw + b'";'


def test_known_php_output_for_a_custom_field_array() -> None:
    # What PHP's serialize(['1' => 'Zürich']) prints: the key becomes int, "ü" is two bytes.
    assert dumps({"1": "Zürich"}) == 'a:1:{i:1;s:7:"Zürich";}'.encode()
    assert encode_base64({1: "12345"}) == base64.b64encode(b'a:1:{i:1;s:5:"12345";}').decode()


def test_scalars_and_lists_as_php_writes_them() -> None:
    assert dumps(None) == b"N;"
    assert dumps(True) == b"b:1;"
    assert dumps(-7) == b"i:-7;"
    assert dumps(1.5) == b"d:1.5;"
    assert dumps(["a", "b"]) == b'a:2:{i:0;s:1:"a";i:1;s:1:"b";}'
    assert dumps(Decimal("10.50")) == b's:5:"10.50";'  # money stays text, never a PHP float


def test_canonical_integer_string_keys_become_ints_like_php() -> None:
    assert php_array_key("7") == 7
    assert php_array_key("-7") == -7
    assert php_array_key("07") == "07"
    assert php_array_key("7 ") == "7 "
    assert php_array_key(True) == 1
    assert php_array_key("9223372036854775808") == "9223372036854775808"  # beyond PHP_INT_MAX


def test_decoding_is_tolerant_of_line_wrapped_base64() -> None:
    encoded = encode_base64({1: "x" * 100})
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    assert decode_base64(wrapped) == {1: "x" * 100}


@pytest.mark.parametrize(
    "raw",
    [
        b's:5:"abc";',  # declared length longer than the string
        b's:2:"\xc3";',  # byte length cuts a UTF-8 character
        b"a:2:{i:0;N;}",  # fewer elements than declared
        b"i:1;i:2;",  # trailing data
        b'O:8:"stdClass":0:{}',  # objects are refused
        b"b:2;",
        b"i:x;",
        b"",
    ],
)
def test_malformed_input_is_an_error_not_a_guess(raw: bytes) -> None:
    with pytest.raises(PhpSerializeError):
        loads(raw)


def test_decode_base64_needs_base64_of_an_array() -> None:
    with pytest.raises(PhpSerializeError):
        decode_base64("%%%")
    with pytest.raises(PhpSerializeError):
        decode_base64(base64.b64encode(b's:1:"x";').decode())


def test_unserializable_values_are_refused() -> None:
    with pytest.raises(PhpSerializeError):
        dumps(object())
    with pytest.raises(PhpSerializeError):
        dumps(float("nan"))
    with pytest.raises(PhpSerializeError):
        dumps({1.5: "float keys do not exist in PHP"})
