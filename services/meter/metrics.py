"""The meter's Prometheus series, on the process's registry (``/metrics``).

``postpay_meter_last_sweep_timestamp_seconds`` is the one to alert on: more than two intervals old, and
the month being metered has a gap (docs/usage-sources.md).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import REGISTRY

SWEEPS = Counter(
    "postpay_meter_sweeps_total",
    "Sweeps by outcome: done, dropped (another meter committed it first) or failed (nothing of it was recorded).",
    ["outcome"],
    registry=REGISTRY,
)
SWEEP_SECONDS = Histogram(
    "postpay_meter_sweep_seconds",
    "Wall time of a sweep, reading and committing.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
    registry=REGISTRY,
)
LAST_SWEEP = Gauge(
    "postpay_meter_last_sweep_timestamp_seconds", "When the last committed sweep began (Unix time).", registry=REGISTRY
)
SERVERS = Gauge(
    "postpay_meter_servers", "Servers the last sweep listed, and how many ran.", ["state"], registry=REGISTRY
)
TRANSITIONS = Counter(
    "postpay_meter_transitions_total",
    "Transitions published (run starts and ends, resizes, deletions).",
    registry=REGISTRY,
)
UNREADABLE = Counter(
    "postpay_meter_unreadable_total", "List objects and log entries the meter could not read.", registry=REGISTRY
)
UNATTRIBUTED = Counter(
    "postpay_meter_unattributed_total",
    "Logged deletions of VMs never listed whose owner or plan the log does not tell (not billed).",
    registry=REGISTRY,
)
