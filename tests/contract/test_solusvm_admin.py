"""Contract: the simulator's /_sim controls, its state file and ``serve`` (tests and demo only)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.common import ServerThread
from simulators.solusvm.cli import build_app
from tests.contract.conftest_solusvm import (  # noqa: F401  (fixtures)
    ADMIN_HEADERS,
    WORKED_EXAMPLE_SEED,
    RunningSim,
    running_simulator,
    solusvm_api,
    solusvm_module_sim,
    solusvm_sim,
)

MAY = {"from": "2024-05-01T00:00:00Z", "to": "2024-06-01T00:00:00Z"}
ROOT = Path(__file__).resolve().parents[2]


class TestSeed:
    def test_seed_answers_the_ids_it_created(self, solusvm_sim: RunningSim) -> None:
        created = solusvm_sim.seed(
            {
                "limit_groups": [{"id": 4, "name": "Post-pay"}],
                "locations": [{"name": "Frankfurt"}],
                "plans": [{"name": "XL", "tokens_per_hour": 50, "tokens_per_month": 30000}],
                "users": [
                    {"email": "a@example.com", "status": "suspended", "limit_group_id": 4, "billing_user_id": "17"}
                ],
            }
        )
        assert created == {"limit_groups": [4], "locations": [2], "plans": [4], "users": [2], "servers": []}
        user = solusvm_sim.users_with_email("A@example.com")[0]
        assert (user["status"], user["limit_group"], user["billing_user_id"]) == (
            "suspended",
            {"id": 4, "name": "Post-pay"},
            17,
        )

    @pytest.mark.parametrize(
        ("server", "error_key"),
        [
            ({"user_id": 99}, "servers.0.user_id"),
            ({"plan_id": 99}, "servers.0.plan_id"),
            ({"created_at": None}, "servers.0.created_at"),
            ({"created_at": "2024-05-01T00:00:00"}, "servers.0.created_at"),
            ({"intervals": [["2024-04-01T00:00:00Z", None]]}, "servers.0.intervals.0"),
            ({"intervals": [["2024-05-02T00:00:00Z", "2024-05-01T00:00:00Z"]]}, "servers.0.intervals.0"),
            ({"intervals": [["2024-05-01T00:00:00Z", None], ["2024-05-03T00:00:00Z", None]]}, "servers.0.intervals.1"),
            (
                {"intervals": [["2024-05-01T00:00:00Z", "2024-05-05T00:00:00Z"], ["2024-05-04T00:00:00Z", None]]},
                "servers.0.intervals.1",
            ),
            (
                {"deleted_at": "2024-05-02T00:00:00Z", "intervals": [["2024-05-01T00:00:00Z", None]]},
                "servers.0.intervals.0",
            ),
        ],
    )
    def test_invalid_seed_is_422_and_changes_nothing(
        self, solusvm_sim: RunningSim, server: dict[str, Any], error_key: str
    ) -> None:
        before = httpx.get(f"{solusvm_sim.url}/_sim/state").json()
        payload = {
            "users": [{"id": 7, "email": "seeded@example.com"}],
            "servers": [{"user_id": 7, "plan_id": 1, "created_at": "2024-05-01T00:00:00Z", **server}],
        }
        response = httpx.post(f"{solusvm_sim.url}/_sim/seed", json=payload)
        assert response.status_code == 422
        assert error_key in response.json()["errors"]
        assert httpx.get(f"{solusvm_sim.url}/_sim/state").json() == before

    def test_seeding_a_taken_email_is_refused(self, solusvm_sim: RunningSim) -> None:
        response = httpx.post(f"{solusvm_sim.url}/_sim/seed", json={"users": [{"email": "ADMIN@example.com"}]})
        assert response.status_code == 422 and "users.0.email" in response.json()["errors"]


class TestReadAndReset:
    def test_sim_users_shows_status_and_filters(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        created = solusvm_api.post("/api/v1/users", json={"email": "s@example.com"}).json()["data"]
        solusvm_api.patch(f"/api/v1/users/{created['id']}", json={"status": "locked"})
        listed = httpx.get(f"{solusvm_sim.url}/_sim/users", params={"status": "locked"}).json()["data"]
        assert [(u["email"], u["status"]) for u in listed] == [("s@example.com", "locked")]
        one = httpx.get(f"{solusvm_sim.url}/_sim/users/{created['id']}").json()["data"]
        assert one["status"] == "locked"
        assert httpx.get(f"{solusvm_sim.url}/_sim/users/999").status_code == 404

    def test_reset_restores_the_fresh_panel_or_an_empty_one(self, solusvm_sim: RunningSim) -> None:
        solusvm_sim.seed(WORKED_EXAMPLE_SEED)
        assert httpx.post(f"{solusvm_sim.url}/_sim/reset", json={}).json() == {"users": 1, "plans": 3}
        assert httpx.post(f"{solusvm_sim.url}/_sim/reset", json={"defaults": False}).json() == {"users": 0, "plans": 0}

    def test_faults_and_clock_admin_routes_are_mounted(self, solusvm_sim: RunningSim) -> None:
        rule = {"kind": "server_error", "route": "GET /api/v1/plans", "status": 502, "count": 1}
        assert httpx.post(f"{solusvm_sim.url}/_sim/faults", json=rule).status_code == 201
        assert httpx.get(f"{solusvm_sim.url}/api/v1/plans", headers=ADMIN_HEADERS).status_code == 502
        moved = httpx.post(f"{solusvm_sim.url}/_sim/clock", json={"advance_seconds": 60}).json()
        assert moved == {"now": "2024-06-15T12:01:00Z"}


class TestPersistence:
    def test_state_round_trips_through_get_and_put(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        solusvm_sim.seed(WORKED_EXAMPLE_SEED)
        token = solusvm_api.post("/api/v1/users/12/tokens", json={"is_one_time": True}).json()["data"]["access_token"]
        solusvm_api.post("/api/v1/users", json={"email": "pw@example.com", "password": "Plain-Secret-42"})
        dumped = httpx.get(f"{solusvm_sim.url}/_sim/state").json()
        assert "Plain-Secret-42" not in json.dumps(dumped)  # only a salted hash is kept
        expected = solusvm_api.get("/api/v1/users/12/usage", params=MAY).json()
        httpx.post(f"{solusvm_sim.url}/_sim/reset", json={"defaults": False})
        assert httpx.put(f"{solusvm_sim.url}/_sim/state", json=dumped).status_code == 200
        assert solusvm_api.get("/api/v1/users/12/usage", params=MAY).json() == expected
        assert httpx.get(f"{solusvm_sim.url}/auth/by_token", params={"token": token}).status_code == 200
        created = solusvm_api.post("/api/v1/users", json={"email": "next@example.com"}).json()["data"]
        assert created["id"] == 14  # id counters survive too
        login = {"email": "pw@example.com", "password": "Plain-Secret-42"}
        assert httpx.post(f"{solusvm_sim.url}/api/v1/auth/login", json=login).status_code == 200

    def test_save_and_load_use_the_configured_file(self, tmp_path: Path) -> None:
        state_file = tmp_path / "solusvm.json"
        with running_simulator(state_file=state_file) as sim:
            sim.seed(WORKED_EXAMPLE_SEED)
            assert httpx.post(f"{sim.url}/_sim/state/save").json() == {"saved": str(state_file)}
            httpx.post(f"{sim.url}/_sim/reset", json={})
            assert httpx.post(f"{sim.url}/_sim/state/load").json()["users"] == 2
            assert sim.users_with_email("may@example.com")
        with running_simulator() as sim:
            assert httpx.post(f"{sim.url}/_sim/state/save").status_code == 409

    def test_build_app_loads_state_and_fault_rules(self, tmp_path: Path) -> None:
        state_file, faults_file = tmp_path / "state.json", tmp_path / "faults.json"
        with running_simulator(state_file=state_file) as sim:
            sim.seed(WORKED_EXAMPLE_SEED)
            httpx.post(f"{sim.url}/_sim/state/save")
        faults_file.write_text(
            json.dumps({"rules": [{"kind": "server_error", "route": "GET /api/v1/plans", "status": 503}]})
        )
        app = build_app(seed=3, state_file=state_file, faults_file=faults_file)
        with ServerThread(app) as server:
            assert httpx.get(f"{server.url}/api/v1/plans", headers=ADMIN_HEADERS).status_code == 503
            assert httpx.get(f"{server.url}/_sim/users", params={"email": "may@example.com"}).json()["data"]

    @pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
    def test_serve_saves_its_state_on_exit(self, tmp_path: Path, stop_signal: signal.Signals) -> None:
        state_file = tmp_path / "served.json"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        code = (
            "from pathlib import Path; from simulators.solusvm.cli import serve; "
            f"serve('127.0.0.1', {port}, 0, Path({str(state_file)!r}), None)"
        )
        process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(f"{url}/_sim/clock", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and process.poll() is None, "simulator did not start"
                    time.sleep(0.05)
            created = httpx.post(f"{url}/api/v1/users", json={"email": "kept@example.com"}, headers=ADMIN_HEADERS)
            assert created.status_code == 201
        finally:
            process.send_signal(stop_signal)
            process.wait(timeout=20)
        saved = json.loads(state_file.read_text())
        assert [user["email"] for user in saved["users"]] == ["admin@example.com", "kept@example.com"]


def test_servers_created_after_a_load_get_fresh_uuids(solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
    owner = solusvm_api.post("/api/v1/users", json={"email": "u@example.com"}).json()["data"]["id"]
    body = {"plan": 1, "location": 1, "os": 1, "user": owner}
    before = solusvm_api.post("/api/v1/servers", json=body).json()["data"]
    dumped = httpx.get(f"{solusvm_sim.url}/_sim/state").json()
    httpx.put(f"{solusvm_sim.url}/_sim/state", json=dumped)  # restarts the seeded UUID sequence
    after = solusvm_api.post("/api/v1/servers", json=body).json()["data"]
    assert after["uuid"] != before["uuid"]
    assert solusvm_api.get(f"/api/v1/usage/cpu/{before['uuid']}").status_code == 200
