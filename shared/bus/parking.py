"""The parking lot: messages that need a person, and the operator's actions on them.

Every requeue and purge writes an audit log line naming who, when (the log timestamp), why, which
parking lot and which messages.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from shared.bus.messages import (
    ATTEMPT_HEADER,
    CONTENT_TYPE,
    PARKED_AT_HEADER,
    PARKED_ERROR_HEADER,
    PARKED_QUEUE_HEADER,
    PARKED_REASON_HEADER,
    REQUEUE_WALK_HEADER,
    REQUEUED_BY_HEADER,
    REQUEUED_REASON_HEADER,
    ParkedMessage,
)
from shared.bus.policy import clean_headers
from shared.events.base import EnvelopeError, decode_json
from shared.logging import get_logger

log = get_logger("postpay.dlq")

_PARKING_HEADERS = (
    PARKED_AT_HEADER,
    PARKED_ERROR_HEADER,
    PARKED_QUEUE_HEADER,
    PARKED_REASON_HEADER,
    REQUEUE_WALK_HEADER,
)


@dataclass(frozen=True)
class Selection:
    """Which parked messages an action applies to: by position in the listing, by id, or all."""

    positions: frozenset[int] = field(default_factory=frozenset)
    message_ids: frozenset[str] = field(default_factory=frozenset)
    everything: bool = False

    def __post_init__(self) -> None:
        if not (self.positions or self.message_ids or self.everything):
            raise ValueError("select messages by position, by id, or all of them")

    def matches(self, parked: ParkedMessage) -> bool:
        return (
            self.everything
            or parked.position in self.positions
            or (parked.message_id is not None and parked.message_id in self.message_ids)
        )


def describe_parked(
    parking_lot: str,
    position: int,
    message_id: str | None,
    headers: dict[str, Any],
    body: bytes,
    content_type: str | None = CONTENT_TYPE,
) -> ParkedMessage:
    reason = headers.get(PARKED_REASON_HEADER)
    if reason is None:
        reason = _broker_reason(headers)
    event_type = None
    try:
        document = decode_json(body)
        if isinstance(document, dict) and isinstance(document.get("event_type"), str):
            event_type = document["event_type"]
            message_id = message_id or str(document.get("event_id") or "") or None
    except EnvelopeError:
        pass  # listed as it is: the operator sees the body and the reason it was parked
    return ParkedMessage(
        queue=parking_lot,
        position=position,
        message_id=message_id,
        event_type=event_type,
        reason=str(reason),
        error=str(headers.get(PARKED_ERROR_HEADER, "")),
        parked_at=_text(headers.get(PARKED_AT_HEADER)),
        headers=dict(headers),
        body=body,
        content_type=content_type,
    )


def _broker_reason(headers: dict[str, Any]) -> str:
    # Parked by RabbitMQ itself: the message kept crashing its consumer (delivery limit) or was rejected.
    deaths = headers.get("x-death") or []
    if deaths and isinstance(deaths, list) and isinstance(deaths[0], dict):
        return f"broker:{deaths[0].get('reason', 'dead-lettered')}"
    return str(headers.get("x-first-death-reason", "unknown"))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def requeued_headers(headers: dict[str, Any], actor: str, reason: str) -> dict[str, Any]:
    """A requeued message starts its retries afresh and says who sent it back, and why."""
    kept = {key: value for key, value in clean_headers(headers).items() if key not in _PARKING_HEADERS}
    return {**kept, ATTEMPT_HEADER: 0, REQUEUED_BY_HEADER: actor, REQUEUED_REASON_HEADER: reason}


class ParkingLot(ABC):
    """Operator actions on parked messages, the same for both buses."""

    @abstractmethod
    def queues(self) -> Mapping[str, int | None]:
        """Every known parking lot and how many messages it holds (None: not declared on the broker yet)."""

    @abstractmethod
    def list(self, parking_lot: str, limit: int = 1000) -> list[ParkedMessage]: ...

    @abstractmethod
    def _requeue(
        self, parking_lot: str, selection: Selection, actor: str, reason: str, done: builtins.list[ParkedMessage]
    ) -> None:
        """Move the selected messages, appending each to ``done`` as soon as it has moved."""

    @abstractmethod
    def _purge(self, parking_lot: str, selection: Selection, done: builtins.list[ParkedMessage]) -> None:
        """Delete the selected messages, appending each to ``done`` as soon as it is gone."""

    def requeue(
        self, parking_lot: str, selection: Selection, *, actor: str, reason: str
    ) -> builtins.list[ParkedMessage]:
        """Send selected messages back to the queue they were parked from."""
        _require_reason(reason)
        moved: list[ParkedMessage] = []
        # The audit line is written even when the walk fails halfway: what already moved is recorded.
        with _audited("requeue", parking_lot, moved, actor, reason):
            self._requeue(parking_lot, selection, actor, reason, moved)
        return moved

    def purge(self, parking_lot: str, selection: Selection, *, actor: str, reason: str) -> builtins.list[ParkedMessage]:
        """Delete selected messages for good."""
        _require_reason(reason)
        removed: list[ParkedMessage] = []
        with _audited("purge", parking_lot, removed, actor, reason):
            self._purge(parking_lot, selection, removed)
        return removed


class ParkingLotMissing(LookupError):
    """The parking lot does not exist (yet): its service never declared its queues on this broker."""


@contextmanager
def _audited(action: str, parking_lot: str, messages: list[ParkedMessage], actor: str, reason: str) -> Iterator[None]:
    outcome = "failed"
    try:
        yield
        outcome = "done"
    finally:
        log.warning(
            "parking lot action",
            audit=True,
            action=action,
            outcome=outcome,
            actor=actor,
            why=reason,
            parking_lot=parking_lot,
            count=len(messages),
            message_ids=[m.message_id for m in messages],
        )


def _require_reason(reason: str) -> None:
    if not reason.strip():
        raise ValueError("say why: the audit log records the reason for every requeue and purge")
