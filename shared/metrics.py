"""Prometheus metrics of a postpay process.

One module-level registry per process; every process serves it on ``/metrics`` (see ``shared.health``).
Label sets stay small: handler (queue) names, upstream names and call labels are bounded sets.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES_HANDLED = Counter(
    "postpay_messages_handled_total",
    "Messages a handler processed successfully (duplicates included, see the outcome label).",
    ["handler", "outcome"],
    registry=REGISTRY,
)
MESSAGES_FAILED = Counter(
    "postpay_messages_failed_total", "Handler attempts that raised.", ["handler"], registry=REGISTRY
)
MESSAGES_RETRIED = Counter(
    "postpay_messages_retried_total", "Messages sent to a retry queue.", ["handler"], registry=REGISTRY
)
MESSAGES_PARKED = Counter(
    "postpay_messages_parked_total", "Messages sent to the parking lot.", ["handler", "reason"], registry=REGISTRY
)
HANDLER_SECONDS = Histogram(
    "postpay_handler_seconds",
    "Time spent in a handler, transaction included.",
    ["handler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
UPSTREAM_SECONDS = Histogram(
    "postpay_upstream_call_seconds",
    "Latency of calls to SolusVM 2 and WHMCS.",
    ["upstream", "call"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "postpay_upstream_errors_total",
    "Failed calls to SolusVM 2 and WHMCS by error class.",
    ["upstream", "call", "error"],
    registry=REGISTRY,
)
UPSTREAM_IN_FLIGHT_LIMIT = Gauge(
    "postpay_upstream_in_flight_limit",
    "Calls this process lets be in flight to an upstream at once, as its pacing has found it.",
    ["upstream"],
    registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge(
    "postpay_outbox_backlog",
    "Events written to an outbox and not yet confirmed by the broker.",
    ["service"],
    registry=REGISTRY,
)
EVENTS_PUBLISHED = Counter(
    "postpay_events_published_total", "Events confirmed by the broker.", ["service"], registry=REGISTRY
)


@functools.lru_cache(maxsize=4096)
def labelled(metric: Any, *labels: str) -> Any:
    """``metric``'s child for ``labels``, looked up once: ``labels()`` validates and locks on every call,
    and the hot paths (each delivery, each upstream call) observe a few. Label sets are small and fixed."""
    return metric.labels(*labels)
