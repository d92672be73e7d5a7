"""SolusVM 2 simulator fixtures, imported explicitly by the ``test_solusvm_*`` modules.

One real simulator per test module on loopback (``ServerThread``), reset before each test: the fresh
panel (admin user id 1, plans 1-3, location 1, limit group 1), no fault rules, the clock fixed at NOW.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from simulators.common import ServerThread, SimClock
from simulators.faults import FaultConfig, FaultInjector, FaultRule
from simulators.solusvm import SimState, create_app

ADMIN_TOKEN = "demo-solusvm-admin-token"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Accept": "application/json"}
NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)

# §8.3 worked example: May 2024, plan S at 7 tokens/h capped at 5000; the expected answer is §8.2's.
WORKED_EXAMPLE_SEED: dict[str, Any] = {
    "plans": [{"id": 3, "name": "S", "tokens_per_hour": 7, "tokens_per_month": 5000}],
    "users": [{"id": 12, "email": "may@example.com"}],
    "servers": [
        {
            "id": 100,
            "uuid": "0b6f1d0e-3c55-4c1a-9a39-2f4f6b1c1a00",
            "name": "vps-100",
            "user_id": 12,
            "plan_id": 3,
            "created_at": "2024-04-20T09:00:00Z",
        },
        {
            "id": 101,
            "uuid": "5a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "name": "vps-101",
            "user_id": 12,
            "plan_id": 3,
            "created_at": "2024-05-02T20:00:00Z",
        },
        {
            "id": 102,
            "uuid": "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f",
            "name": "tmp",
            "user_id": 12,
            "plan_id": 3,
            "created_at": "2024-05-10T08:00:00Z",
            "deleted_at": "2024-05-10T08:05:00Z",
        },
        # Stopped for the whole month: ran in April only, so May omits it.
        {
            "id": 103,
            "uuid": "d4e5f6a7-b8c9-4d0e-8f1a-2b3c4d5e6f70",
            "name": "idle",
            "user_id": 12,
            "plan_id": 3,
            "created_at": "2024-04-01T00:00:00Z",
            "intervals": [["2024-04-01T00:00:00Z", "2024-04-30T00:00:00Z"]],
        },
    ],
}
WORKED_EXAMPLE_ANSWER: dict[str, Any] = {
    "data": {
        "user_id": 12,
        "period": {"from": "2024-05-01T00:00:00Z", "to": "2024-06-01T00:00:00Z"},
        "servers": [
            {
                "id": 100,
                "uuid": "0b6f1d0e-3c55-4c1a-9a39-2f4f6b1c1a00",
                "name": "vps-100",
                "plan": {"id": 3, "name": "S", "tokens_per_hour": 7, "tokens_per_month": 5000},
                "created_at": "2024-04-20T09:00:00Z",
                "deleted_at": None,
                "hours": 744,
                "tokens": 5000,
            },
            {
                "id": 101,
                "uuid": "5a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                "name": "vps-101",
                "plan": {"id": 3, "name": "S", "tokens_per_hour": 7, "tokens_per_month": 5000},
                "created_at": "2024-05-02T20:00:00Z",
                "deleted_at": None,
                "hours": 700,
                "tokens": 4900,
            },
            {
                "id": 102,
                "uuid": "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f",
                "name": "tmp",
                "plan": {"id": 3, "name": "S", "tokens_per_hour": 7, "tokens_per_month": 5000},
                "created_at": "2024-05-10T08:00:00Z",
                "deleted_at": "2024-05-10T08:05:00Z",
                "hours": 1,
                "tokens": 7,
            },
        ],
        "total_tokens": 9907,
    }
}


@dataclass
class RunningSim:
    app: Starlette
    server: ServerThread

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def state(self) -> SimState:
        return self.app.state.sim  # type: ignore[no-any-return]

    @property
    def faults(self) -> FaultInjector:
        return self.app.state.faults  # type: ignore[no-any-return]

    @property
    def clock(self) -> SimClock:
        return self.app.state.clock  # type: ignore[no-any-return]

    def reset(self) -> None:
        self.faults.configure(FaultConfig(seed=0))
        self.clock.set(NOW)
        with self.state.lock:
            self.state.clear()
            self.state.add_defaults(NOW)

    def add_fault(self, **rule: Any) -> None:
        self.faults.add(FaultRule.model_validate(rule))

    def seed(self, payload: dict[str, Any]) -> dict[str, list[int]]:
        response = httpx.post(f"{self.url}/_sim/seed", json=payload)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def users_with_email(self, email: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_sim/users", params={"email": email})
        assert response.status_code == 200
        return response.json()["data"]  # type: ignore[no-any-return]


@contextmanager
def running_simulator(**options: Any) -> Iterator[RunningSim]:
    """A simulator on a free loopback port; ``options`` go to ``create_app``."""
    clock = options.pop("clock", None) or SimClock(NOW)
    app = create_app(clock=clock, **options)
    with ServerThread(app) as server:
        yield RunningSim(app=app, server=server)


@pytest.fixture(scope="module")
def solusvm_module_sim() -> Iterator[RunningSim]:
    with running_simulator() as sim:
        yield sim


@pytest.fixture
def solusvm_sim(solusvm_module_sim: RunningSim) -> RunningSim:
    solusvm_module_sim.reset()
    return solusvm_module_sim


@pytest.fixture
def solusvm_api(solusvm_sim: RunningSim) -> Iterator[httpx.Client]:
    """A raw HTTP client with the admin token: contract tests look at the wire, not at a client."""
    with httpx.Client(base_url=solusvm_sim.url, headers=ADMIN_HEADERS, timeout=10) as client:
        yield client
