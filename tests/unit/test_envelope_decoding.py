"""A body a hostile or broken producer sends is refused by ``parse_envelope`` with a reason, never with
an exception the consumer did not expect: anything that is not UTF-8 JSON of ordinary size and depth is
``undecodable``."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.bus.messages import PARKED_REASON_HEADER
from shared.bus.parking import describe_parked
from shared.events import EnvelopeError, UserProvisioned, new_envelope, parse_envelope
from shared.events.base import EVENT_TYPES, Event, _parse_in_steps, _plain_envelope
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


class FloatProbe(Event):
    """A toy event with room for a float: a number that overflows to infinity must still be refused."""

    producers = ("test",)

    ratio: float


def _both(body: bytes) -> tuple[str, object]:
    """What ``parse_envelope`` makes of ``body``, and what its steps alone make of it, comparably."""
    outcomes = []
    for parse in (parse_envelope, _parse_in_steps):
        try:
            outcomes.append(("ok", parse(body).model_dump()))
        except EnvelopeError as error:
            outcomes.append((error.reason, error.detail))
    assert outcomes[0] == outcomes[1], body
    return outcomes[0]


def test_every_catalog_event_is_read_straight_from_its_bytes() -> None:
    # An event class whose schema had room for a float would be read in steps, three times the CPU.
    catalog = [cls for cls in EVENT_TYPES.all() if cls.__module__.startswith("shared.events")]
    assert [cls.event_type for cls in catalog if _plain_envelope(cls) is None] == []


def test_a_float_overflowing_to_infinity_is_undecodable_as_before() -> None:
    assert _plain_envelope(FloatProbe) is None
    text = new_envelope(FloatProbe(ratio=0.5), producer="test").to_json()
    assert _both(text.encode())[0] == "ok"
    for number in ("1e400", "-1e400", "1" + "0" * 400 + ".5", "NaN", "Infinity"):
        assert _both(text.replace('"ratio":0.5', f'"ratio":{number}').encode())[0] == "undecodable"


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_reading_from_bytes_agrees_with_the_steps_on_any_change_to_a_body(data: st.DataObject) -> None:
    body = bytearray(valid_body())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body)))
        cut = data.draw(st.integers(0, 3))
        insert = data.draw(
            st.one_of(
                st.binary(max_size=4),
                st.sampled_from([b'"', b"\\", b"\\udcff", b"1e400", b"NaN", b"9" * 4301, b"\xff", b"\xef\xbb\xbf"]),
                st.sampled_from([b'"event_type":"UserProvisioned",', b'"schema_version":2,', b'"event_type":"X",']),
            )
        )
        body[at : at + cut] = insert
    _both(bytes(body))


@pytest.mark.parametrize(
    "change",
    [
        ('"schema_version":1', '"schema_version":"1"'),
        ('"schema_version":1', '"schema_version":1.0'),
        ('"schema_version":1', '"schema_version":2'),
        ('"event_type":"UserProvisioned"', '"event_type":"UserProvisioned","event_type":"NoSuchEvent"'),
        ('"event_type":"UserProvisioned"', '"event_type":"NoSuchEvent","event_type":"UserProvisioned"'),
        ('"email":"ada@example.com"', '"email":"ada@example.com","event_type":"UserProvisioned"'),
        ('"producer":"', '"producer":"\\ud83d\\ude00'),
        ("{", "{\n "),
    ],
)
def test_odd_but_parseable_bodies_read_as_the_steps_read_them(change: tuple[str, str]) -> None:
    text = valid_body().decode()
    assert change[0] in text
    _both(text.replace(change[0], change[1], 1).encode())
