"""A capacity model for the simulators: an upstream that slows down, then refuses, under concurrency.

A real WHMCS is PHP on MySQL with a fixed pool of workers; SolusVM 2 is Laravel behind the same kind of
pool. Up to ``limit`` (C) requests in flight each answer after the base latency (the injected LATENCY
rules' delay); beyond C the workers share the machine, so a request arriving when n are in flight
takes ``base × n / C`` (processor sharing: the throughput stays C / base however many wait, and only
the latency grows with the excess). Past ``2 C`` in flight the front server sheds the request
without running it: an immediate 503, or (``overload: timeout``) no answer for ``hang_seconds`` and
then a 504, as a request left in a full listen queue.

Off by default (``limit`` None): no other test sees any of this. Set it in the fault configuration
(``PUT /_sim/faults`` with ``{"capacity": {"limit": 8}}``, or the ``capacity`` key of a faults file).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CapacityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int | None = Field(default=None, ge=1, description="C: requests in flight at the base latency.")
    overload: Literal["unavailable", "timeout"] = Field(
        default="unavailable", description="Past 2C in flight: 503 at once, or a hang then 504."
    )
    hang_seconds: float = Field(default=30.0, ge=0.0, description="How long an overload timeout hangs.")


@dataclass(frozen=True)
class Admission:
    """What the capacity model does to one request: stretch its latency, or shed it."""

    slowdown: float = 1.0
    shed: bool = False
    counted: bool = False  # in flight until ``leave()``


class Capacity:
    """Requests in flight against the configured C (thread-safe), and what it shed."""

    def __init__(self, config: CapacityConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(config or CapacityConfig())

    def configure(self, config: CapacityConfig) -> None:
        with self._lock:
            self.config = config
            self._in_flight = 0
            self.peak_in_flight = 0
            self.admitted = 0
            self.slowed = 0
            self.shed = 0

    def admit(self) -> Admission:
        """Count one request in; when ``counted``, the caller must ``leave()`` once it is answered."""
        with self._lock:
            limit = self.config.limit
            if limit is None:
                return Admission()
            if self._in_flight + 1 > 2 * limit:
                self.shed += 1
                return Admission(shed=True)
            self._in_flight += 1
            self.admitted += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            if self._in_flight <= limit:
                return Admission(counted=True)
            self.slowed += 1
            return Admission(slowdown=self._in_flight / limit, counted=True)

    def leave(self) -> None:
        with self._lock:
            if self._in_flight > 0:  # a reconfiguration meanwhile started the count over
                self._in_flight -= 1

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "limit": self.config.limit,
                "overload": self.config.overload,
                "in_flight": self._in_flight,
                "peak_in_flight": self.peak_in_flight,
                "admitted": self.admitted,
                "slowed": self.slowed,
                "shed": self.shed,
            }
