"""Contract: plans, servers, Task answers and monitoring samples (§1.2 tasks, §4, §10)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from simulators.solusvm.model import TASK_STATUSES
from tests.contract.conftest_solusvm import (  # noqa: F401  (fixtures)
    RunningSim,
    solusvm_api,
    solusvm_module_sim,
    solusvm_sim,
)

SERVER_KEYS = {
    "id",
    "name",
    "description",
    "uuid",
    "virtualization_type",
    "os_type",
    "specifications",
    "plan",
    "status",
    "real_status",
    "is_suspended",
    "is_processing",
    "user",
    "project",
    "location",
    "compute_resource",
    "ip_addresses",
    "fqdns",
    "boot_mode",
    "usage",
    "created_at",
    "deleted_at",
}
TASK_KEYS = {"id", "compute_resource_id", "queue", "action", "status", "output", "progress", "duration"}


def new_user(api: httpx.Client, email: str = "owner@example.com") -> int:
    return int(api.post("/api/v1/users", json={"email": email}).json()["data"]["id"])


def new_server(api: httpx.Client, user_id: int, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/v1/servers", json={"plan": 1, "location": 1, "os": 3, "user": user_id, **fields})
    assert response.status_code == 201, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def assert_task(response: httpx.Response, action: str) -> None:
    assert response.status_code == 200
    task = response.json()["data"]
    assert set(task) == TASK_KEYS
    assert task["id"] != 0 and task["action"] == action and task["status"] in TASK_STATUSES


class TestPlans:
    def test_plans_are_paginated_with_integer_token_prices(self, solusvm_api: httpx.Client) -> None:
        body = solusvm_api.get("/api/v1/plans").json()
        assert set(body) == {"data", "links", "meta"} and body["meta"]["total"] == 3
        for plan in body["data"]:
            assert type(plan["tokens_per_hour"]) is int and type(plan["tokens_per_month"]) is int
        assert solusvm_api.get("/api/v1/plans/2").json()["data"]["name"] == "M"
        assert solusvm_api.get("/api/v1/plans/99").status_code == 404


class TestCreateAndRead:
    def test_create_answers_201_with_the_full_object(self, solusvm_api: httpx.Client) -> None:
        user_id = new_user(solusvm_api)
        server = new_server(solusvm_api, user_id, name="web-1", fqdns=["web-1.example.com"])
        assert set(server) == SERVER_KEYS
        assert server["status"] == "started" and server["is_suspended"] is False
        assert server["user"]["id"] == user_id and server["user"]["email"] == "owner@example.com"
        assert server["plan"]["tokens_per_hour"] == 7 and server["plan"]["tokens_per_month"] == 5000
        assert server["name"] == "web-1" and server["fqdns"] == ["web-1.example.com"]
        assert server["created_at"] == "2024-06-15T12:00:00Z"
        assert solusvm_api.get(f"/api/v1/servers/{server['id']}").json() == {"data": server}

    @pytest.mark.parametrize(
        ("fields", "error_key"),
        [
            ({"plan": 99}, "plan"),
            ({"location": 99}, "location"),
            ({"user": 999}, "user"),
            ({"os": None}, "os"),
            ({"application": 4}, "os"),
            ({"plan": "small"}, "plan"),
        ],
    )
    def test_invalid_create_is_422(self, solusvm_api: httpx.Client, fields: dict[str, Any], error_key: str) -> None:
        user_id = new_user(solusvm_api)
        body = {"plan": 1, "location": 1, "os": 3, "user": user_id, **fields}
        response = solusvm_api.post("/api/v1/servers", json=body)
        assert response.status_code == 422 and error_key in response.json()["errors"]

    def test_application_instead_of_os_is_accepted(self, solusvm_api: httpx.Client) -> None:
        user_id = new_user(solusvm_api)
        response = solusvm_api.post(
            "/api/v1/servers", json={"plan": 1, "location": 1, "application": 4, "user": user_id}
        )
        assert response.status_code == 201


class TestListing:
    def test_list_filters_by_user_and_status_and_hides_deleted(self, solusvm_api: httpx.Client) -> None:
        alice, bob = new_user(solusvm_api, "alice@example.com"), new_user(solusvm_api, "bob@example.com")
        a1, a2, a3 = (new_server(solusvm_api, alice) for _ in range(3))
        b1 = new_server(solusvm_api, bob)
        solusvm_api.post(f"/api/v1/servers/{a2['id']}/stop")
        solusvm_api.delete(f"/api/v1/servers/{a3['id']}")

        def ids(**params: Any) -> list[int]:
            body = solusvm_api.get("/api/v1/servers", params=params).json()
            assert set(body) == {"data", "links", "meta"}
            return [server["id"] for server in body["data"]]

        assert ids() == [a1["id"], a2["id"], b1["id"]]
        assert ids(**{"filter[user_id]": alice}) == [a1["id"], a2["id"]]
        assert ids(**{"filter[user_id]": alice, "filter[status]": "stopped"}) == [a2["id"]]
        assert ids(**{"filter[status]": "started"}) == [a1["id"], b1["id"]]
        assert ids(**{"filter[virtualization_type]": "vz"}) == []
        assert ids(**{"filter[compute_resource_id]": 1}) == [a1["id"], a2["id"], b1["id"]]
        assert ids(**{"filter[user_id]": "x"}) == []

    def test_a_user_token_sees_only_its_own_servers(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        alice, bob = new_user(solusvm_api, "alice@example.com"), new_user(solusvm_api, "bob@example.com")
        mine, theirs = new_server(solusvm_api, alice), new_server(solusvm_api, bob)
        token = solusvm_api.post(f"/api/v1/users/{alice}/tokens", json={}).json()["data"]["access_token"]
        as_alice = httpx.Client(base_url=solusvm_sim.url, headers={"Authorization": f"Bearer {token}"})
        assert [s["id"] for s in as_alice.get("/api/v1/servers").json()["data"]] == [mine["id"]]
        assert as_alice.get(f"/api/v1/servers/{theirs['id']}").status_code == 404
        assert as_alice.post(f"/api/v1/servers/{theirs['id']}/reset_password").status_code == 404
        assert as_alice.post(f"/api/v1/servers/{mine['id']}/reset_password").status_code == 200
        created = as_alice.post("/api/v1/servers", json={"plan": 1, "location": 1, "os": 1, "user": bob})
        assert created.status_code == 201 and created.json()["data"]["user"]["id"] == alice


class TestActions:
    def test_delete_answers_a_task_and_then_404(self, solusvm_api: httpx.Client) -> None:
        server = new_server(solusvm_api, new_user(solusvm_api))
        assert_task(solusvm_api.delete(f"/api/v1/servers/{server['id']}"), "vm-delete")
        gone = solusvm_api.get(f"/api/v1/servers/{server['id']}")
        assert gone.status_code == 404 and gone.json() == {"message": "Not found."}
        assert solusvm_api.delete(f"/api/v1/servers/{server['id']}").status_code == 404
        assert solusvm_api.post(f"/api/v1/servers/{server['id']}/start").status_code == 404

    def test_power_actions_change_status_and_answer_tasks(self, solusvm_api: httpx.Client) -> None:
        server = new_server(solusvm_api, new_user(solusvm_api))
        path = f"/api/v1/servers/{server['id']}"
        assert_task(solusvm_api.post(f"{path}/stop"), "vm-stop")
        assert solusvm_api.get(path).json()["data"]["status"] == "stopped"
        assert_task(solusvm_api.post(f"{path}/start"), "vm-start")
        assert_task(solusvm_api.post(f"{path}/restart"), "vm-restart")
        assert solusvm_api.get(path).json()["data"]["status"] == "started"
        assert_task(solusvm_api.post(f"{path}/suspend"), "vm-suspend")
        assert solusvm_api.get(path).json()["data"]["is_suspended"] is True
        assert_task(solusvm_api.post(f"{path}/resume"), "vm-resume")
        assert solusvm_api.get(path).json()["data"]["is_suspended"] is False
        task_ids = {solusvm_api.post(f"{path}/restart").json()["data"]["id"] for _ in range(3)}
        assert len(task_ids) == 3
        assert solusvm_api.post("/api/v1/servers/999/stop").status_code == 404

    def test_resize_needs_a_known_plan(self, solusvm_api: httpx.Client) -> None:
        server = new_server(solusvm_api, new_user(solusvm_api))
        path = f"/api/v1/servers/{server['id']}"
        refused = solusvm_api.post(f"{path}/resize", json={"plan_id": 99, "preserve_disk": True})
        assert refused.status_code == 422 and "plan_id" in refused.json()["errors"]
        assert_task(solusvm_api.post(f"{path}/resize", json={"plan_id": 3, "preserve_disk": True}), "vm-resize")
        assert solusvm_api.get(path).json()["data"]["plan"]["id"] == 3


class TestMonitoring:
    @pytest.mark.parametrize(
        ("metric", "keys"),
        [
            ("cpu", {"time", "load_average"}),
            ("network", {"time", "derivative"}),
            ("disks", {"time", "derivative"}),
            ("memory", {"time", "memory"}),
        ],
    )
    def test_samples_are_keyed_by_uuid(self, solusvm_api: httpx.Client, metric: str, keys: set[str]) -> None:
        server = new_server(solusvm_api, new_user(solusvm_api))
        body = solusvm_api.get(f"/api/v1/usage/{metric}/{server['uuid']}").json()
        items = body["data"]["items"]
        assert items and all(set(item) == keys for item in items)
        assert items[-1]["time"] == "2024-06-15T12:00:00Z"
        assert solusvm_api.get(f"/api/v1/usage/{metric}/00000000-0000-0000-0000-000000000000").status_code == 404
