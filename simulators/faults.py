"""Deterministic fault injection for the simulators.

A rule names a fault kind, the routes it applies to (an fnmatch pattern over the simulator's route key,
e.g. ``"POST /api/v1/users"`` or ``"CreateInvoice"``), a probability and optionally a count (the next N
matching requests). Random choices come from one ``random.Random(seed)``, so a run with the same seed
and the same request order injects the same faults.

``commit_then_fail`` is the fault that matters most for billing: the call takes effect, then the reply
is an error, never arrives, or is cut off. The caller cannot know whether it worked. ``late_commit`` is
its slow twin: the request is still being worked on after the caller gave up (``hang_seconds``, longer
than its read timeout), and only then takes effect, as a WHMCS busy under load does: a look-up made
before that finds nothing.
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

from simulators.capacity import Capacity, CapacityConfig


class FaultKind(str, Enum):
    LATENCY = "latency"
    SERVER_ERROR = "server_error"
    RATE_LIMIT = "rate_limit"
    TIMEOUT = "timeout"
    DROP = "drop"
    HTML = "html"
    COMMIT_THEN_FAIL = "commit_then_fail"
    LATE_COMMIT = "late_commit"
    STATUS_ERROR = "status_error"
    WARNING = "warning"


class FailureMode(str, Enum):
    """How a ``commit_then_fail`` reply fails after the change was made."""

    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    DROP = "drop"


class FaultRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    route: str = "*"
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    count: int | None = Field(default=None, ge=1, description="Apply to the next N matches only.")
    latency_ms: float = Field(default=0.0, ge=0.0)
    jitter_ms: float = Field(default=0.0, ge=0.0)
    status: int | None = Field(default=None, ge=500, le=599)
    retry_after: int = Field(default=1, ge=0)
    hang_seconds: float = Field(default=30.0, ge=0.0)
    then: FailureMode = FailureMode.SERVER_ERROR


class FaultConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    rules: list[FaultRule] = Field(default_factory=list)
    capacity: CapacityConfig = Field(default_factory=CapacityConfig)


@dataclass
class FaultPlan:
    """What to do to one request: wait, fail before doing anything, or fail after committing."""

    delay_seconds: float = 0.0
    before: FaultRule | None = None
    after: FaultRule | None = None
    late: FaultRule | None = None


ERROR_STATUSES = (500, 502, 503, 504)


class FaultInjector:
    """Holds the active rules and counts what it injected (thread-safe)."""

    def __init__(
        self, seed: int = 0, rules: list[FaultRule] | None = None, capacity: CapacityConfig | None = None
    ) -> None:
        self._lock = threading.Lock()
        self.capacity = Capacity()
        self.configure(FaultConfig(seed=seed, rules=rules or [], capacity=capacity or CapacityConfig()))

    def configure(self, config: FaultConfig) -> None:
        self.capacity.configure(config.capacity)
        with self._lock:
            self._random = random.Random(config.seed)
            self._rules: list[FaultRule] = list(config.rules)
            self._remaining: dict[int, int | None] = {i: r.count for i, r in enumerate(self._rules)}
            self.injected: Counter[str] = Counter()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)
            self._remaining[len(self._rules) - 1] = rule.count

    def clear(self) -> None:
        with self._lock:
            self._rules = []
            self._remaining = {}

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self.injected)

    def plan(self, route_key: str) -> FaultPlan:
        """Decide the faults for one request to ``route_key``."""
        plan = FaultPlan()
        with self._lock:
            for index, rule in enumerate(self._rules):
                if not fnmatch.fnmatchcase(route_key, rule.route):
                    continue
                remaining = self._remaining.get(index)
                if remaining == 0:
                    continue
                if rule.kind is FaultKind.LATENCY:
                    jitter = self._random.uniform(0, rule.jitter_ms) if rule.jitter_ms else 0.0
                    plan.delay_seconds += (rule.latency_ms + jitter) / 1000
                    continue
                if plan.before or plan.after or plan.late:
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                if remaining is not None:
                    self._remaining[index] = remaining - 1
                self.injected[f"{rule.kind.value}:{route_key}"] = self.injected[f"{rule.kind.value}:{route_key}"] + 1
                if rule.kind is FaultKind.COMMIT_THEN_FAIL:
                    plan.after = rule
                elif rule.kind is FaultKind.LATE_COMMIT:
                    plan.late = rule
                else:
                    plan.before = rule
        return plan

    def choose_status(self, rule: FaultRule) -> int:
        if rule.status:
            return rule.status
        with self._lock:
            return self._random.choice(ERROR_STATUSES)

    def coin(self) -> bool:
        with self._lock:
            return self._random.random() < 0.5


class Flavor(str, Enum):
    """How a product's error pages look on the wire."""

    SOLUSVM = "solusvm"
    WHMCS = "whmcs"


MAINTENANCE_PAGE = (
    "<!DOCTYPE html><html><head><title>Down for Maintenance</title></head>"
    "<body><h1>Down for Maintenance</h1><p>An upgrade is currently in progress. "
    "Please come back soon.</p></body></html>"
)


class _DroppedResponse:
    """Sends the headers and half a body, then fails: the server closes the connection mid-response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"data": {"id"', "more_body": True})
        raise ConnectionAbortedError("simulated connection drop")


async def failure_response(
    injector: FaultInjector, rule: FaultRule, flavor: Flavor, kind: FaultKind | None = None
) -> Any:
    """The wire reply for a fault (``kind`` overrides the rule's kind, used by commit-then-fail)."""
    kind = kind or rule.kind
    if kind is FaultKind.TIMEOUT:
        await asyncio.sleep(rule.hang_seconds)
        return Response(status_code=504)
    if kind is FaultKind.DROP:
        return _DroppedResponse()
    if kind is FaultKind.RATE_LIMIT:
        headers = {
            "Retry-After": str(rule.retry_after),
            "X-RateLimit-Limit": "60",
            "X-RateLimit-Remaining": "0",
        }
        return JSONResponse({"message": "Too Many Attempts."}, status_code=429, headers=headers)
    if kind is FaultKind.HTML:
        return HTMLResponse(MAINTENANCE_PAGE, status_code=200)
    if kind is FaultKind.STATUS_ERROR:
        return JSONResponse({"status": "error", "message": "Client ID Not Found"})
    if kind is FaultKind.WARNING:
        return JSONResponse({"warning": "Invalid or Missing Payment Information - Please Reload and Try Again"})
    status = injector.choose_status(rule)
    if flavor is Flavor.WHMCS:
        if injector.coin():
            return HTMLResponse(f"<html><body><h1>{status} Server Error</h1></body></html>", status_code=status)
        return Response(status_code=status)
    if injector.coin():
        return JSONResponse({"message": "Server Error"}, status_code=status)
    return Response(b"<html><body>Bad Gateway</body></html>", status_code=status, media_type="text/html")


_AFTER_KIND = {
    FailureMode.SERVER_ERROR: FaultKind.SERVER_ERROR,
    FailureMode.TIMEOUT: FaultKind.TIMEOUT,
    FailureMode.DROP: FaultKind.DROP,
}


async def with_faults(
    injector: FaultInjector,
    route_key: str,
    flavor: Flavor,
    handle: Callable[[], Awaitable[Any]],
) -> Any:
    """Run a simulator route under the faults planned for it, and under the capacity model if one is set."""
    admission = injector.capacity.admit()
    if admission.shed:
        return await overload_response(injector.capacity.config, flavor)
    try:
        plan = injector.plan(route_key)
        if plan.delay_seconds:
            await asyncio.sleep(plan.delay_seconds * admission.slowdown)
        if plan.before is not None:
            return await failure_response(injector, plan.before, flavor)
        if plan.late is not None:
            # Still working when the caller's read timeout fires; the change lands afterwards all the same.
            await asyncio.sleep(plan.late.hang_seconds)
        response = await handle()
        if plan.after is not None:
            return await failure_response(injector, plan.after, flavor, _AFTER_KIND[plan.after.then])
        return response
    finally:
        if admission.counted:
            injector.capacity.leave()


async def overload_response(config: CapacityConfig, flavor: Flavor) -> Response:
    """A request shed past 2C, before anything ran: what a saturated front server answers."""
    if config.overload == "timeout":
        await asyncio.sleep(config.hang_seconds)
        return Response(status_code=504)
    if flavor is Flavor.WHMCS:
        return HTMLResponse("<html><body><h1>503 Service Unavailable</h1></body></html>", status_code=503)
    return JSONResponse({"message": "Service Unavailable"}, status_code=503)
