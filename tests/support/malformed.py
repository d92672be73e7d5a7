"""Messages a broken or hostile producer could put in a postpay queue, one builder per kind, and the
parking reason each must get.

Every builder takes the subscription it aims at, so "wrong types" and "missing fields" use the very
event type that queue consumes (the hardest case: it passes the routing, only validation can stop it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from shared.bus.messages import CONTENT_TYPE
from shared.bus.topology import Subscription
from shared.events.base import EnvelopeError, new_envelope, parse_envelope
from shared.events.billing import NothingToBill
from shared.events.enrollment import VerificationEmailRequested

Malformed = tuple[bytes, str | None]

# The reason the processor must park each kind with (the header ``x-postpay-parked-reason``).
REASONS = {
    "bad-json": "undecodable",
    "wrong-content-type": "wrong-content-type",
    "wrong-types": "invalid",
    "unknown-type": "unknown-type",
    "missing-fields": "invalid",
    "oversized": "oversized",
    "wrong-event": "unexpected-type",
    "deep-nesting": "undecodable",
    "not-utf8": "undecodable",
    "huge-number": "undecodable",
}
KINDS = tuple(REASONS)


def envelope_document(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A well-formed envelope around any payload (valid or not)."""
    event_id = str(uuid.uuid4())
    return {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "correlation_id": event_id,
        "causation_id": None,
        "producer": "malformed-test",
        "payload": payload,
    }


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def _consumed(subscription: Subscription) -> Any:
    return subscription.events[0]


def bad_json(subscription: Subscription, n: int) -> Malformed:
    cut = b'{"event_type": "' + _consumed(subscription).event_type.encode() + b'", "payload": {"'
    variants = [cut, b"\xff\xfe\x00not json at all", b"", b"{'single': 'quotes'}", b"[1, 2,", b"NaN-ish \x80\x81"]
    return variants[n % len(variants)], CONTENT_TYPE


def wrong_content_type(subscription: Subscription, n: int) -> Malformed:
    body = _json(envelope_document(_consumed(subscription).event_type, {}))
    return body, ["text/plain", "application/xml", None, "application/x-www-form-urlencoded"][n % 4]


def wrong_types(subscription: Subscription, n: int) -> Malformed:
    fields = _consumed(subscription).model_fields
    odd: list[Any] = [{"nested": n}, [n], True, "not-a-number-or-id", -n - 1]
    payload = {name: odd[(n + i) % len(odd)] for i, name in enumerate(fields)}
    return _json(envelope_document(_consumed(subscription).event_type, payload)), CONTENT_TYPE


def unknown_type(subscription: Subscription, n: int) -> Malformed:
    return _json(envelope_document(f"NoSuchEvent{n % 5}", {"anything": n})), CONTENT_TYPE


def missing_fields(subscription: Subscription, n: int) -> Malformed:
    return _json(envelope_document(_consumed(subscription).event_type, {})), CONTENT_TYPE


def oversized(max_bytes: int) -> Callable[[Subscription, int], Malformed]:
    def build(subscription: Subscription, n: int) -> Malformed:
        payload = {"padding": "x" * (max_bytes + n % 100)}
        return _json(envelope_document(_consumed(subscription).event_type, payload)), CONTENT_TYPE

    return build


def wrong_event(subscription: Subscription, n: int) -> Malformed:
    """A perfectly valid event, of a type this queue does not consume."""
    for event in (
        NothingToBill(whmcs_client_id=n + 1, period="2026-11"),
        VerificationEmailRequested(signup_id=uuid.uuid4(), email=f"wrong-{n}@example.com"),
    ):
        if not subscription.accepts(event.event_type):
            return new_envelope(event, producer="malformed-test").to_json().encode(), CONTENT_TYPE
    raise AssertionError(f"{subscription.queue} consumes every candidate event")


_PRODUCER, _VERSION = '"producer": "', '"schema_version": 1'
_HOSTILE: dict[str, Callable[[str, int], str | bytes]] = {
    "brackets": lambda text, depth: "[" * depth,
    "objects": lambda text, depth: '{"a": ' * (depth // 6),
    "nested-in-envelope": lambda text, depth: text.replace(
        '"payload": {', '"payload": {"deep": ' + "[" * (depth - len(text)), 1
    ),
    "utf-16": lambda text, depth: text.encode("utf-16"),
    "utf-32": lambda text, depth: text.encode("utf-32"),
    "latin-1": lambda text, depth: text.replace(_PRODUCER, _PRODUCER + "\u00e4", 1).encode("latin-1"),
    "utf-8-bom": lambda text, depth: b"\xef\xbb\xbf" + text.encode(),
    "lone-surrogate": lambda text, depth: text.replace(_PRODUCER, _PRODUCER + "\\udcff", 1),
    "huge-integer": lambda text, depth: text.replace(_VERSION, '"schema_version": ' + "9" * 5000, 1),
    "million-digit-integer": lambda text, depth: text.replace(_VERSION, '"schema_version": ' + "9" * 1_000_000, 1),
    "huge-float": lambda text, depth: text.replace(_VERSION, '"schema_version": 1e1000000', 1),
    "nan": lambda text, depth: text.replace(_VERSION, '"schema_version": NaN', 1),
    "infinity": lambda text, depth: text.replace(_VERSION, '"schema_version": -Infinity', 1),
}
HOSTILE_NAMES = tuple(_HOSTILE)


def hostile_bodies(
    valid: bytes, max_bytes: int | None = None, names: Sequence[str] = HOSTILE_NAMES
) -> dict[str, bytes]:
    """Bodies that break a naive JSON decoder, built around a valid envelope ``valid``: each must be
    parked as ``undecodable`` (never raise, never be retried). Deep nesting is 100,000 levels, or as
    deep as ``max_bytes`` allows; with ``max_bytes``, only the bodies that fit."""
    text = json.dumps(json.loads(valid))  # one spacing, whatever produced ``valid``
    depth = 100_000 if max_bytes is None else max_bytes - 64
    bodies = {}
    for name in names:
        body = _HOSTILE[name](text, depth)
        body = body.encode() if isinstance(body, str) else body
        assert body != text.encode(), f"{name}: the replacement found nothing to replace"
        if max_bytes is None or len(body) <= max_bytes:
            bodies[name] = body
    return bodies


def _hostile(names: Sequence[str], max_bytes: int | None = None) -> Callable[[Subscription, int], Malformed]:
    def build(subscription: Subscription, n: int) -> Malformed:
        name = names[n % len(names)]
        return hostile_bodies(_valid_body(subscription, n), max_bytes, [name])[name], CONTENT_TYPE

    return build


def _valid_body(subscription: Subscription, n: int) -> bytes:
    """An envelope of the type the queue consumes (the hostile part is what matters, not its payload)."""
    return json.dumps(envelope_document(_consumed(subscription).event_type, {"n": n})).encode()


def builders(max_bytes: int) -> dict[str, Callable[[Subscription, int], Malformed]]:
    return {
        "bad-json": bad_json,
        "wrong-content-type": wrong_content_type,
        "wrong-types": wrong_types,
        "unknown-type": unknown_type,
        "missing-fields": missing_fields,
        "oversized": oversized(max_bytes),
        "wrong-event": wrong_event,
        "deep-nesting": _hostile(("brackets", "objects", "nested-in-envelope"), max_bytes),
        "not-utf8": _hostile(("utf-16", "utf-32", "latin-1", "utf-8-bom", "lone-surrogate")),
        "huge-number": _hostile(("huge-integer", "huge-float", "nan", "infinity")),
    }


def check_is_malformed(kind: str, body: bytes, content_type: str | None, subscription: Subscription) -> None:
    """The builder's own test: the message really is what its kind says (else the flood proves nothing)."""
    if kind in ("wrong-content-type", "oversized"):
        return
    if kind == "wrong-event":
        assert not subscription.accepts(parse_envelope(body).event_type)
        return
    try:
        parse_envelope(body)
    except EnvelopeError as error:
        assert error.reason == REASONS[kind], (kind, error)
        return
    raise AssertionError(f"{kind} message for {subscription.queue} is valid: {body[:200]!r}")
