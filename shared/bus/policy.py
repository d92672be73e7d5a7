"""What the bus does with an outcome: acknowledge, send to a retry queue, or park.

Shared by the RabbitMQ and in-process buses so both retry and park the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from shared.bus.messages import (
    ATTEMPT_HEADER,
    PARKED_AT_HEADER,
    PARKED_ERROR_HEADER,
    PARKED_QUEUE_HEADER,
    PARKED_REASON_HEADER,
)
from shared.bus.processing import Outcome

# Headers the broker adds on dead-lettering; carrying them into a retry copy only grows the message.
_BROKER_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-delivery-count",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)


@dataclass(frozen=True)
class Step:
    action: Literal["ack", "retry", "park"]
    delay: float = 0.0
    reason: str = ""
    counted: bool = True  # a retry that uses up one of the message's attempts


def next_step(outcome: Outcome, attempt: int, retry_delays: list[float]) -> Step:
    """``attempt`` counts the failures before this one (0 on the first delivery)."""
    if outcome.acknowledges:
        return Step("ack")
    if outcome.kind == "park":
        return Step("park", reason=outcome.reason)
    if outcome.wait is not None and retry_delays:
        # Waiting is not failing: the shortest retry queue that waits long enough (else the longest),
        # and the attempt is not counted, so a long wait never exhausts the retries.
        long_enough = [delay for delay in retry_delays if delay >= outcome.wait]
        return Step("retry", delay=min(long_enough) if long_enough else max(retry_delays), counted=False)
    if attempt < len(retry_delays):
        return Step("retry", delay=retry_delays[attempt])
    return Step("park", reason="retries-exhausted")


def clean_headers(headers: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in headers.items() if key not in _BROKER_HEADERS}


def retry_headers(headers: dict[str, Any], attempt: int, counted: bool = True) -> dict[str, Any]:
    return {**clean_headers(headers), ATTEMPT_HEADER: attempt + (1 if counted else 0)}


def parked_headers(headers: dict[str, Any], queue: str, outcome: Outcome, reason: str, attempt: int) -> dict[str, Any]:
    return {
        **clean_headers(headers),
        ATTEMPT_HEADER: attempt + (0 if outcome.kind == "park" else 1),
        PARKED_REASON_HEADER: reason,
        PARKED_ERROR_HEADER: outcome.error,
        PARKED_AT_HEADER: datetime.now(UTC).isoformat(),
        PARKED_QUEUE_HEADER: queue,
    }
