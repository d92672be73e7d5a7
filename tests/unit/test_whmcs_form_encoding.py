"""The WHMCS form body is encoded without urllib's urlencode, but must stay byte for byte the same."""

from __future__ import annotations

import random
import string
from urllib.parse import urlencode

import pytest

from shared.upstream.whmcs_wire import form_urlencode


@pytest.mark.parametrize(
    "pairs",
    [
        [("action", "CreateInvoice"), ("itemamount1", "15.95"), ("date", "2026-11-30")],
        [("notes", "postpay:inv 1/2 & more=yes"), ("itemdescription1", "VM «web-1» — 720 h")],
        [("customfields[3]", "a+b"), ("email", "o'neil+tag@example.com"), ("", "")],
        [("secret", "~._-AZaz09"), ("x y", "\r\n\t%")],
    ],
)
def test_form_encoding_matches_urlencode(pairs: list[tuple[str, str]]) -> None:
    assert form_urlencode(pairs) == urlencode(pairs)


def test_form_encoding_matches_urlencode_on_random_text() -> None:
    rng = random.Random(21)
    alphabet = string.printable + "éü€[]«»"
    for _ in range(2000):
        pairs = [
            (
                "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))),
                "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))),
            )
            for _ in range(3)
        ]
        assert form_urlencode(pairs) == urlencode(pairs), pairs
