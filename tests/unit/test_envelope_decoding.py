"""A body a hostile or broken producer sends is refused by ``parse_envelope`` with a reason, never with
an exception the consumer did not expect: anything that is not UTF-8 JSON of ordinary size and depth is
``undecodable``."""

from __future__ import annotations

import json

import pytest

from shared.bus.messages import PARKED_REASON_HEADER
from shared.bus.parking import describe_parked
from shared.events import EnvelopeError, UserProvisioned, new_envelope, parse_envelope
from tests.support.malformed import hostile_bodies


def valid_body() -> bytes:
    event = UserProvisioned(
        signup_id="0b6f3a9e-3a43-4b55-9a51-2b1e6f0c8d44",
        email="ada@example.com",
        whmcs_client_id=7,
        solusvm_user_id=8,
        enrolled_at="2026-10-01T00:00:00Z",
    )
    return new_envelope(event, producer="provisioner").to_json().encode()


@pytest.mark.parametrize("name", sorted(hostile_bodies(valid_body())))
def test_a_hostile_body_is_undecodable_not_an_exception(name: str) -> None:
    body = hostile_bodies(valid_body())[name]
    with pytest.raises(EnvelopeError) as raised:
        parse_envelope(body)
    assert raised.value.reason == "undecodable", raised.value


def test_deep_nesting_of_100000_brackets_is_undecodable() -> None:
    with pytest.raises(EnvelopeError) as raised:
        parse_envelope(b"[" * 100_000)
    assert raised.value.reason == "undecodable"
    assert "deep" in raised.value.detail


def test_a_valid_envelope_in_utf16_is_refused_the_wire_format_is_utf8() -> None:
    # json.loads(bytes) would detect UTF-16 and accept it; the contract says UTF-8.
    text = valid_body().decode()
    assert parse_envelope(text.encode()).event_type == "UserProvisioned"
    with pytest.raises(EnvelopeError) as raised:
        parse_envelope(text.encode("utf-16"))
    assert raised.value.reason == "undecodable"


def test_ordinary_numbers_and_escaped_characters_still_decode() -> None:
    document = json.loads(valid_body())
    document["payload"]["whmcs_client_id"] = 4242
    document["payload"]["email"] = "ad\u00e4+\U0001f600@example.com"
    envelope = parse_envelope(json.dumps(document).encode())
    assert envelope.payload.whmcs_client_id == 4242 and envelope.payload.email.startswith("ad\u00e4+\U0001f600")


def test_the_parking_lot_lists_a_hostile_body_without_choking_on_it() -> None:
    for body in hostile_bodies(valid_body()).values():
        parked = describe_parked("toy.apply_probe.parked", 0, "m-1", {PARKED_REASON_HEADER: "undecodable"}, body)
        assert (parked.event_type, parked.reason, parked.body) == (None, "undecodable", body)
