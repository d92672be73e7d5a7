"""The envelope every postpay event travels in, and the types events are made of.

An event is a small frozen pydantic model. Its class declares the routing key (``event_type``) and the
schema version; defining a subclass registers it. On the wire an event is one JSON document:

    {"event_id": UUID, "event_type": "UsageCollected", "schema_version": 1,
     "occurred_at": "2026-11-01T00:00:05Z", "correlation_id": UUID, "causation_id": UUID | null,
     "producer": "usage_collector", "payload": {...}}

Unknown fields are rejected at every level. Money travels as a decimal string, never a JSON number,
and times as RFC 3339 in UTC.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Generic, TypeVar, cast

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializeAsAny,
    ValidationError,
    WithJsonSchema,
)

EVENT_NAMESPACE = uuid.UUID("6f1c2a4e-8d1b-4c5e-9a3f-2b7d0e5c9a11")


def _decimal_from_string(value: Any) -> Any:
    # A float has already lost cents by the time it gets here: refuse it rather than round it.
    if isinstance(value, float):
        raise ValueError("money must be a decimal string, not a floating-point number")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        try:
            parsed = Decimal(value)
        except InvalidOperation as exc:
            raise ValueError(f"not a decimal number: {value!r}") from exc
        if not parsed.is_finite():
            raise ValueError("money must be finite")
        return parsed
    raise ValueError("money must be a decimal string")


Money = Annotated[
    Decimal,
    BeforeValidator(_decimal_from_string),
    PlainSerializer(lambda value: format(value, "f"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "description": "decimal string"}),
]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """RFC 3339 with a ``Z``; microseconds only when there are some."""
    value = value.astimezone(UTC)
    text = value.isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")


UtcDateTime = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    PlainSerializer(format_utc, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "description": "RFC 3339, UTC"}),
]


# The operators' tools (``postpay close-period``, ``replay``, ``accounts sync``, ``dlq requeue``): a
# producer of their own, with a broker user of their own.
OPERATOR = "operator"


class Event(BaseModel):
    """Base of every event payload. Subclasses set ``producers`` (who may publish it: service names, or
    ``OPERATOR``), and may set ``event_type`` (the class name by default) and ``schema_version``.

    ``producers`` is the one place that says who may state a fact: consumers refuse an event whose
    broker user is none of its producers' users, and the broker's topic permissions (deploy/) are
    generated from it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    producers: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        if "event_type" not in cls.__dict__:
            cls.event_type = cls.__name__
        producers = getattr(cls, "producers", ())
        if not isinstance(producers, tuple) or not producers or not all(isinstance(p, str) and p for p in producers):
            raise TypeError(f"{cls.__name__} must declare producers: a tuple of who may publish it")
        EVENT_TYPES.register(cls)


class EventRegistry:
    def __init__(self) -> None:
        self._by_type: dict[str, type[Event]] = {}

    def register(self, event_class: type[Event]) -> None:
        existing = self._by_type.get(event_class.event_type)
        if existing is not None and existing is not event_class:
            raise TypeError(f"two event classes claim the type {event_class.event_type!r}")
        self._by_type[event_class.event_type] = event_class

    def get(self, event_type: str) -> type[Event] | None:
        return self._by_type.get(event_type)

    def all(self) -> list[type[Event]]:
        return sorted(self._by_type.values(), key=lambda cls: cls.event_type)


EVENT_TYPES = EventRegistry()

E = TypeVar("E", bound=Event)


class Envelope(BaseModel, Generic[E]):
    """One event with the metadata every consumer needs to trace and deduplicate it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID
    event_type: str = Field(min_length=1, max_length=100)
    schema_version: int = Field(ge=1)
    occurred_at: UtcDateTime
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    producer: str = Field(min_length=1, max_length=100)
    payload: SerializeAsAny[E]

    def to_json(self) -> str:
        return self.model_dump_json()


class EnvelopeError(ValueError):
    """A message body that is not a valid postpay event; ``reason`` is short and stable."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _RawEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID
    event_type: str = Field(min_length=1, max_length=100)
    schema_version: int = Field(ge=1)
    occurred_at: UtcDateTime
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    producer: str = Field(min_length=1, max_length=100)
    payload: dict[str, Any]


def new_envelope(
    event: E,
    *,
    producer: str,
    event_id: uuid.UUID | None = None,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> Envelope[E]:
    event_id = event_id or uuid.uuid4()
    # Parametrised by the event's own class (built once per class), so pydantic checks the payload as that class.
    envelope_class = cast("type[Envelope[E]]", _typed_envelope(type(event)))
    return envelope_class(
        event_id=event_id,
        event_type=event.event_type,
        schema_version=event.schema_version,
        occurred_at=occurred_at or datetime.now(UTC),
        correlation_id=correlation_id or event_id,
        causation_id=causation_id,
        producer=producer,
        payload=event,
    )


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# A JSON string escape of half a surrogate pair decodes to a str that cannot be encoded again (in a
# log line, a database row); only bodies with such an escape pay for the check.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def decode_json(body: bytes | str) -> Any:
    """The JSON document of a body: strict UTF-8 (no BOM, no UTF-16/32 guessing), finite numbers of
    ordinary size, bounded depth, no half surrogate pairs. Raises ``EnvelopeError("undecodable")``."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        document = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(document, ensure_ascii=False).encode("utf-8")
    except RecursionError as exc:
        raise EnvelopeError("undecodable", "body is nested too deep") from exc
    except UnicodeError as exc:
        raise EnvelopeError("undecodable", f"body is not UTF-8 ({type(exc).__name__}: {exc})"[:300]) from exc
    except ValueError as exc:  # bad JSON, a number out of range or with too many digits
        raise EnvelopeError("undecodable", f"body is not JSON ({exc})"[:300]) from exc
    return document


# Envelope[SomeEvent] per event class, built once: indexing a generic model costs more than validating.
_TYPED_ENVELOPES: dict[type[Event], type[Envelope[Any]]] = {}


def _typed_envelope(event_class: type[Event]) -> type[Envelope[Any]]:
    typed = _TYPED_ENVELOPES.get(event_class)
    if typed is None:
        typed = _TYPED_ENVELOPES[event_class] = cast("type[Envelope[Any]]", Envelope.__class_getitem__(event_class))
    return typed


def parse_envelope(body: bytes | str) -> Envelope[Event]:
    """Decode and validate a message body into a typed envelope, or raise ``EnvelopeError``."""
    envelope = _parse_plain(body) if isinstance(body, bytes) else None
    return envelope if envelope is not None else _parse_in_steps(body)


def _parse_in_steps(body: bytes | str) -> Envelope[Event]:
    """``parse_envelope`` for any body: each step refuses what it must in its own words."""
    document = decode_json(body)
    if not isinstance(document, dict):
        raise EnvelopeError("invalid", "body is not a JSON object")
    # The common case, a known type at this build's version, in one validation of the whole document;
    # anything else (or any error) takes the steps below, which say what is wrong in their own words.
    event_type = document.get("event_type")
    event_class = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if event_class is not None and document.get("schema_version") == event_class.schema_version:
        try:
            return _typed_envelope(event_class).model_validate(document)
        except ValidationError:
            pass
    try:
        raw = _RawEnvelope.model_validate(document)
    except ValidationError as exc:
        raise EnvelopeError("invalid", _summary(exc)) from exc
    event_class = EVENT_TYPES.get(raw.event_type)
    if event_class is None:
        raise EnvelopeError("unknown-type", f"no event type {raw.event_type!r}")
    if raw.schema_version != event_class.schema_version:
        raise EnvelopeError(
            "unsupported-version",
            f"{raw.event_type} v{raw.schema_version}; this build reads v{event_class.schema_version}",
        )
    try:
        payload = event_class.model_validate(raw.payload)
    except ValidationError as exc:
        raise EnvelopeError("invalid", f"{raw.event_type} payload: {_summary(exc)}") from exc
    return Envelope[Event](**{**raw.__dict__, "payload": payload})


# Where postpay's own bodies (``to_json``: compact) name their type.
_EVENT_TYPE_KEY = b'"event_type":"'


def _parse_plain(body: bytes) -> Envelope[Event] | None:
    """The common body, a known type at this build's version, validated straight from its bytes: a
    third of the CPU of ``decode_json`` and a validation of the document it makes. None for anything
    else (and for any error), which ``parse_envelope``'s steps then decode, check and describe.

    pydantic's JSON parser refuses what ``decode_json`` refuses (bad UTF-8, a BOM, half a surrogate
    pair, NaN or Infinity where a float cannot go, over 4,300 digits, deep nesting) except a number
    that overflows to infinity: envelopes whose schema has room for a float (``_plain_envelope``)
    are not read this way. The type is found by a plain search, so the envelope read must say it is
    that type at that version, as the steps would have found it, or the steps decide."""
    start = body.find(_EVENT_TYPE_KEY)
    if start < 0:
        return None
    start += len(_EVENT_TYPE_KEY)
    event_class = EVENT_TYPES.get(body[start : body.find(b'"', start)].decode("latin-1"))
    envelope_class = _plain_envelope(event_class) if event_class is not None else None
    if event_class is None or envelope_class is None:
        return None
    try:
        envelope = envelope_class.model_validate_json(body)
    except ValidationError:
        return None
    if envelope.event_type != event_class.event_type or envelope.schema_version != event_class.schema_version:
        return None
    return cast("Envelope[Event]", envelope)


# Per event class: its typed envelope if it can be read by ``_parse_plain``, else None.
_PLAIN_ENVELOPES: dict[type[Event], type[Envelope[Any]] | None] = {}


def _plain_envelope(event_class: type[Event]) -> type[Envelope[Any]] | None:
    if event_class not in _PLAIN_ENVELOPES:
        typed = _typed_envelope(event_class)
        try:
            floats = _may_hold_float(typed.model_json_schema())
        except Exception:  # a type pydantic cannot describe: assume the worst
            floats = True
        _PLAIN_ENVELOPES[event_class] = None if floats else typed
    return _PLAIN_ENVELOPES[event_class]


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_NARROWING = ("type", "$ref", "anyOf", "oneOf", "allOf", "const", "enum")


def _may_hold_float(schema: Any) -> bool:
    """Whether a JSON schema lets a fraction or an exponent through anywhere: a number, or anything
    at all (no type, an object open to any key, an array of anything). Conservative: every $def counts."""
    if not isinstance(schema, dict):
        return schema is not False  # True: anything
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "number" in kinds or not any(key in schema for key in _NARROWING):
        return True
    if "object" in kinds and _may_hold_float(schema.get("additionalProperties", True)):
        return True
    if "array" in kinds and _may_hold_float(schema.get("items", "prefixItems" not in schema)):
        return True
    for key in _SCHEMA_MAPS:
        if any(_may_hold_float(sub) for sub in schema.get(key, {}).values()):
            return True
    for key in _SCHEMA_LISTS:
        if any(_may_hold_float(sub) for sub in schema.get(key, ())):
            return True
    return any(_may_hold_float(schema[key]) for key in ("not", "contains", "if", "then", "else") if key in schema)


def _summary(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(part) for part in error["loc"]) or "(root)"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


def deterministic_event_id(*parts: object) -> uuid.UUID:
    """The same inputs give the same id, so re-emitting the same fact is deduplicated downstream."""
    return uuid.uuid5(EVENT_NAMESPACE, "/".join(str(part) for part in parts))
