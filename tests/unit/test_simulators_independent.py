"""The simulators check the product, so they must share none of its code: a bug in a module both used
would be agreed with, not caught. And the WHMCS simulator's PHP decoder reads what postpay's encoder
writes, and what PHP itself writes."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.upstream.phpserialize import encode_base64, php_array_key
from simulators.whmcs.phpunserialize import SerializedError, decode_array, unserialize

SIMULATORS = Path(__file__).resolve().parents[2] / "simulators"


# Any import statement, at any indentation (inside a function too), of a product package.
PRODUCT_IMPORT = re.compile(r"^\s*(?:from|import)\s+(shared|services|postpay)\b", re.MULTILINE)


def test_no_simulator_module_imports_the_product() -> None:
    files = sorted(SIMULATORS.rglob("*.py"))
    assert len(files) > 20  # the walk found the simulators
    offenders = [
        f"{path.relative_to(SIMULATORS.parent)} imports {match.group(1)}"
        for path in files
        for match in PRODUCT_IMPORT.finditer(path.read_text())
    ]
    assert offenders == []
    assert PRODUCT_IMPORT.search("def f():\n    from shared.x import y\n")  # the pattern sees nested imports


def test_reads_what_php_writes() -> None:
    # serialize(array(7 => "café", "note" => array(true, null, 1.5), "-3" => -3)) in PHP 8; "é" is 2 bytes.
    php = b'a:3:{i:7;s:5:"caf\xc3\xa9";s:4:"note";a:3:{i:0;b:1;i:1;N;i:2;d:1.5;}i:-3;i:-3;}'
    assert unserialize(php) == {7: "café", "note": {0: True, 1: None, 2: 1.5}, -3: -3}
    assert decode_array(base64.b64encode(php).decode()) == unserialize(php)


def test_canonical_integer_string_keys_become_integers_as_in_php() -> None:
    assert unserialize(b'a:2:{s:1:"7";s:1:"x";s:2:"07";s:1:"y";}') == {7: "x", "07": "y"}


@pytest.mark.parametrize(
    "bad",
    [
        b's:5:"caf\xc3\xa9"',  # no terminator
        b's:4:"caf\xc3\xa9";',  # length in characters, not bytes: the bug the codec must not have
        b'a:2:{i:1;s:1:"x";}',  # fewer entries than declared
        b"i:1;i:2;",  # trailing bytes
        b'O:8:"stdClass":0:{}',  # objects never appear in these parameters
        b"b:2;",
    ],
)
def test_refuses_what_php_would_not_read_as_such(bad: bytes) -> None:
    with pytest.raises(SerializedError):
        unserialize(bad)


def test_refuses_non_base64_and_non_arrays() -> None:
    with pytest.raises(SerializedError):
        decode_array("not base64!")
    with pytest.raises(SerializedError):
        decode_array(base64.b64encode(b's:1:"x";').decode())


keys = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text().filter(lambda text: php_array_key(text) == text)
)
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text()),
    lambda inner: st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=10, deadline=None)
@given(st.dictionaries(keys, values, max_size=6))
def test_reads_back_what_postpay_encodes(array: dict[Any, Any]) -> None:
    assert decode_array(encode_base64(array)) == array
