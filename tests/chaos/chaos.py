"""The chaos month close's moving parts: who gets killed when, the fault mix, and what is reported.

Kills are planned by progress, not by the clock: each process is killed when the stage it serves has
reached fractions of its work drawn from a seeded random generator, so on a fast or a slow (shared,
noisy) machine alike every kill lands while that process has work in hand.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulators.solusvm.seeding import seed as seed_solusvm
from simulators.whmcs.state import Client as WhmcsClientRecord
from tests.support.billing import CURRENCY_IDS, LONG_AGO, BillingHarness, Customer, VmHistory
from tests.support.service_processes import ServiceProcess

# What the upstream simulators do to the close's calls. Rules are tried in order and the first that
# fires wins, so "commit then fail" on CreateInvoice comes before the blanket 5xx.
WHMCS_FAULTS: list[dict[str, Any]] = [
    {"kind": "commit_then_fail", "route": "CreateInvoice", "probability": 0.03, "then": "server_error"},
    {"kind": "commit_then_fail", "route": "CreateInvoice", "probability": 0.01, "then": "drop"},
    {"kind": "server_error", "route": "*", "probability": 0.10},
    {"kind": "timeout", "route": "*", "probability": 0.02, "hang_seconds": 2.0},
    {"kind": "rate_limit", "route": "*", "probability": 0.01, "retry_after": 1},
]
SOLUSVM_FAULTS: list[dict[str, Any]] = [
    {"kind": "server_error", "route": "GET /api/v1/users/*", "probability": 0.10},
    {"kind": "timeout", "route": "GET /api/v1/users/*", "probability": 0.02, "hang_seconds": 2.0},
    {"kind": "rate_limit", "route": "GET /api/v1/users/*", "probability": 0.01, "retry_after": 1},
]


@dataclass
class Victim:
    """A process and the progress fractions of its stage at which it is killed."""

    process: ServiceProcess
    stage: str
    ready_text: str
    kill_at: list[float]
    restart_delay: Callable[[], float]
    killed_at_progress: list[float] = field(default_factory=list)
    restart_due: float | None = None
    min_uptime: float = 1.0
    started_at: float = field(default_factory=time.monotonic)

    def due(self, progress: float) -> bool:
        return bool(self.kill_at) and progress >= self.kill_at[0]

    def step(self, progress: float, now: float) -> None:
        """Kill if a kill point is passed and this run is up and working; restart when its delay is over."""
        process = self.process
        if self.restart_due is not None:
            if now >= self.restart_due:
                process.start()
                self.started_at = now
                self.restart_due = None
            return
        if not self.due(progress) or not process.running:
            return
        if not process.ready(self.ready_text) or now - self.started_at < self.min_uptime:
            return  # a process killed before it took any work proves nothing
        process.kill()
        self.killed_at_progress.append(round(progress, 3))
        self.kill_at.pop(0)
        self.restart_due = now + self.restart_delay()


def plan_kills(rng: random.Random, kills: int, low: float = 0.04, high: float = 0.85) -> list[float]:
    """One kill point in each of ``kills`` equal slices of [low, high]: random, yet far enough apart that
    a restarted process has taken work again before its next kill."""
    width = (high - low) / kills
    return [round(low + width * (n + rng.uniform(0.1, 0.9)), 3) for n in range(kills)]


@dataclass
class ChaosReport:
    victims: Sequence[Victim]
    broker_restarts: int
    whmcs_faults: dict[str, int]
    solusvm_faults: dict[str, int]
    whmcs_calls: dict[str, int]
    seconds: float

    def lines(self) -> list[str]:
        out = [f"chaos month close finished in {self.seconds:.1f}s", f"broker restarts: {self.broker_restarts}"]
        for victim in self.victims:
            out.append(
                f"SIGKILL {victim.process.label}: {victim.process.kills} times at {victim.stage} progress "
                f"{victim.killed_at_progress} (started {victim.process.starts} times)"
            )
        out.append(
            f"WHMCS faults injected: {sum(self.whmcs_faults.values())} {dict(sorted(self.whmcs_faults.items()))}"
        )
        out.append(
            f"SolusVM 2 faults injected: {sum(self.solusvm_faults.values())} "
            f"{dict(sorted(self.solusvm_faults.items()))}"
        )
        out.append(f"WHMCS calls: {dict(sorted(self.whmcs_calls.items()))}")
        return out


def add_customers(harness: BillingHarness, specs: Sequence[tuple[str, list[VmHistory], datetime]]) -> list[Customer]:
    """Many customers at once, like ``BillingHarness.add_customer`` (whose seeding call per customer
    snapshots the whole simulator state, and so grows quadratically): one WHMCS client each, then one
    seeding call for all SolusVM 2 users and one for all their servers."""
    whmcs = harness.upstreams.whmcs.state
    customers = []
    with whmcs.lock:
        for n, (currency, vms, enrolled_at) in enumerate(specs):
            email = f"chaos-{n}-{uuid.uuid4().hex[:8]}@example.com"
            client = WhmcsClientRecord(
                id=whmcs.next_id("client"),
                uuid=str(uuid.uuid4()),
                owner_user_id=0,
                firstname="Chaos",
                lastname=f"Customer {n}",
                email=email,
                currency_id=CURRENCY_IDS[currency],
            )
            whmcs.add_client(client)
            customers.append(Customer(client.id, 0, email, currency, enrolled_at, list(vms)))
    solusvm = harness.upstreams.solusvm_state
    user_ids = seed_solusvm(solusvm, {"users": [{"email": c.email} for c in customers]}, LONG_AGO)["users"]
    servers = []
    for customer, user_id in zip(customers, user_ids, strict=True):
        customer.solusvm_user_id = user_id
        servers += [
            {
                "user_id": user_id,
                "plan_id": vm.plan.id,
                "name": vm.name,
                "created_at": _iso(vm.runs[0][0]),
                "deleted_at": _iso(vm.deleted_at) if vm.deleted_at else None,
                "intervals": [[_iso(start), _iso(end) if end else None] for start, end in vm.runs],
            }
            for vm in customer.vms
        ]
    server_ids = iter(seed_solusvm(solusvm, {"servers": servers}, LONG_AGO)["servers"])
    for customer in customers:
        for vm in customer.vms:
            vm.server_id = next(server_ids)
    return customers


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
