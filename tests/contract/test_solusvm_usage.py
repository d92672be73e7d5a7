"""Contract: the project-defined period-usage endpoint (§8), the money path, on the wire."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.contract.conftest_solusvm import (  # noqa: F401  (fixtures)
    ADMIN_HEADERS,
    WORKED_EXAMPLE_ANSWER,
    WORKED_EXAMPLE_SEED,
    RunningSim,
    running_simulator,
    solusvm_api,
    solusvm_module_sim,
    solusvm_sim,
)

MAY = {"from": "2024-05-01T00:00:00Z", "to": "2024-06-01T00:00:00Z"}


def usage(api: httpx.Client, user_id: int | str, query: str) -> httpx.Response:
    return api.get(f"/api/v1/users/{user_id}/usage?{query}")


class TestWorkedExample:
    def test_may_2024_answer_is_exactly_the_reference(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        solusvm_sim.seed(WORKED_EXAMPLE_SEED)
        response = solusvm_api.get("/api/v1/users/12/usage", params=MAY)
        assert response.status_code == 200
        assert response.json() == WORKED_EXAMPLE_ANSWER

    def test_plus_zero_offset_is_accepted_and_normalised_to_z(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client
    ) -> None:
        solusvm_sim.seed(WORKED_EXAMPLE_SEED)
        response = usage(solusvm_api, 12, "from=2024-05-01T00:00:00%2B00:00&to=2024-06-01T00:00:00%2B00:00")
        assert response.status_code == 200
        assert response.json()["data"]["period"] == MAY
        assert response.json()["data"]["total_tokens"] == 9907

    def test_paging_parameters_are_ignored(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        solusvm_sim.seed(WORKED_EXAMPLE_SEED)
        response = solusvm_api.get("/api/v1/users/12/usage", params={**MAY, "page": 2, "per_page": 1})
        assert response.json() == WORKED_EXAMPLE_ANSWER

    def test_a_berlin_month_is_a_different_window(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        solusvm_sim.seed(WORKED_EXAMPLE_SEED)
        body = usage(solusvm_api, 12, "from=2024-04-30T22:00:00Z&to=2024-05-31T22:00:00Z").json()["data"]
        assert [(s["id"], s["hours"], s["tokens"]) for s in body["servers"]] == [
            (100, 744, 5000),
            (101, 698, 4886),
            (102, 1, 7),
        ]
        assert body["total_tokens"] == 5000 + 4886 + 7


class TestRunIntervals:
    def test_stop_start_and_restart_drive_billed_hours(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client
    ) -> None:
        user = solusvm_api.post("/api/v1/users", json={"email": "run@example.com"}).json()["data"]["id"]
        server = solusvm_api.post("/api/v1/servers", json={"plan": 1, "location": 1, "os": 1, "user": user})
        path = f"/api/v1/servers/{server.json()['data']['id']}"
        solusvm_sim.clock.advance(1800)  # 30 min running
        solusvm_api.post(f"{path}/stop")
        solusvm_sim.clock.advance(7200)  # 2 h stopped: not billed
        solusvm_api.post(f"{path}/start")
        solusvm_sim.clock.advance(1800)  # 30 min running
        solusvm_api.post(f"{path}/restart")  # does not interrupt
        solusvm_sim.clock.advance(1)  # 1 s more: 3601 s in all
        window = "from=2024-06-15T00:00:00Z&to=2024-06-16T00:00:00Z"
        assert usage(solusvm_api, user, window).json()["data"]["servers"][0]["hours"] == 2
        solusvm_api.delete(path)
        solusvm_sim.clock.advance(86400)
        body = usage(solusvm_api, user, window).json()["data"]
        assert body["servers"][0]["hours"] == 2 and body["servers"][0]["tokens"] == 14
        assert body["servers"][0]["deleted_at"] == "2024-06-15T15:00:01Z"

    def test_deleted_server_keeps_the_plan_it_had_at_deletion(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client
    ) -> None:
        solusvm_sim.seed(
            {
                "plans": [{"id": 5, "name": "X", "tokens_per_hour": 10, "tokens_per_month": 1000}],
                "users": [{"id": 40, "email": "x@example.com"}],
                "servers": [
                    {
                        "id": 7,
                        "user_id": 40,
                        "plan_id": 5,
                        "created_at": "2024-05-01T00:00:00Z",
                        "deleted_at": "2024-05-01T03:00:00Z",
                    }
                ],
            }
        )
        solusvm_sim.seed({"plans": [{"id": 5, "name": "X", "tokens_per_hour": 99, "tokens_per_month": 9999}]})
        server = usage(solusvm_api, 40, "from=2024-05-01T00:00:00Z&to=2024-06-01T00:00:00Z").json()["data"]["servers"][
            0
        ]
        assert server["plan"] == {"id": 5, "name": "X", "tokens_per_hour": 10, "tokens_per_month": 1000}
        assert (server["hours"], server["tokens"]) == (3, 30)

    def test_open_interval_is_billed_only_until_now(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        solusvm_sim.seed(
            {
                "users": [{"id": 50, "email": "now@example.com"}],
                "servers": [{"id": 8, "user_id": 50, "plan_id": 1, "created_at": "2024-06-15T10:30:00Z"}],
            }
        )
        body = usage(solusvm_api, 50, "from=2024-06-01T00:00:00Z&to=2024-07-01T00:00:00Z").json()["data"]
        assert body["servers"][0]["hours"] == 2  # 10:30 -> 12:00 (the clock) is 1.5 h


class TestEmptyAndErrors:
    def test_a_user_without_servers_gets_an_empty_answer(self, solusvm_api: httpx.Client) -> None:
        response = solusvm_api.get("/api/v1/users/1/usage", params=MAY)
        assert response.status_code == 200
        assert response.json() == {"data": {"user_id": 1, "period": MAY, "servers": [], "total_tokens": 0}}

    @pytest.mark.parametrize("user_id", ["999", "abc", "-1", "1.0"])
    def test_unknown_or_non_integer_user_is_404(self, solusvm_api: httpx.Client, user_id: str) -> None:
        response = usage(solusvm_api, user_id, "from=2024-05-01T00:00:00Z&to=2024-06-01T00:00:00Z")
        assert response.status_code == 404 and response.json() == {"message": "Not found."}

    def test_404_comes_before_validation(self, solusvm_api: httpx.Client) -> None:
        assert usage(solusvm_api, 999, "from=bad").status_code == 404

    @pytest.mark.parametrize(
        ("query", "fields"),
        [
            ("", {"from", "to"}),
            ("from=2024-05-01T00:00:00Z", {"to"}),
            ("to=2024-06-01T00:00:00Z", {"from"}),
            ("from=&to=2024-06-01T00:00:00Z", {"from"}),
            ("from=2024-05-01T00:00:00%2B02:00&to=2024-06-01T00:00:00Z", {"from"}),
            ("from=2024-05-01T00:00:00Z&to=2024-06-01T00:00:00-00:00", {"to"}),
            ("from=2024-05-01T00:00:00&to=2024-06-01T00:00:00Z", {"from"}),
            ("from=2024-05-01&to=2024-06-01T00:00:00Z", {"from"}),
            ("from=2024-05-01T00:00:00+00:00&to=2024-06-01T00:00:00Z", {"from"}),  # unencoded +: a space
            ("from=2024-02-30T00:00:00Z&to=2024-03-01T00:00:00Z", {"from"}),
            ("from=yesterday&to=today", {"from", "to"}),
            ("from=2024-06-01T00:00:00Z&to=2024-05-01T00:00:00Z", {"to"}),
            ("from=2024-05-01T00:00:00Z&to=2024-05-01T00:00:00Z", {"to"}),
            ("from=2024-05-01T00:00:00Z&to=2024-06-02T00:00:01Z", {"to"}),
        ],
    )
    def test_invalid_windows_are_422_naming_the_field(
        self, solusvm_api: httpx.Client, query: str, fields: set[str]
    ) -> None:
        response = usage(solusvm_api, 1, query)
        assert response.status_code == 422
        body: dict[str, Any] = response.json()
        assert isinstance(body["message"], str)
        assert set(body["errors"]) == fields
        assert all(isinstance(message, str) for messages in body["errors"].values() for message in messages)

    def test_exactly_32_days_is_allowed(self, solusvm_api: httpx.Client) -> None:
        assert usage(solusvm_api, 1, "from=2024-05-01T00:00:00Z&to=2024-06-02T00:00:00Z").status_code == 200

    def test_reversed_range_message(self, solusvm_api: httpx.Client) -> None:
        body = usage(solusvm_api, 1, "from=2024-06-01T00:00:00Z&to=2024-05-01T00:00:00Z").json()
        assert body == {
            "message": "The given data was invalid.",
            "errors": {"to": ["The to must be a date after from."]},
        }


class TestConfigurationAndFaults:
    def test_usage_path_is_configurable(self) -> None:
        with running_simulator(usage_path="/api/v1/billing/{id}/period") as sim:
            sim.seed(WORKED_EXAMPLE_SEED)
            response = httpx.get(f"{sim.url}/api/v1/billing/12/period", params=MAY, headers=ADMIN_HEADERS)
            assert response.json() == WORKED_EXAMPLE_ANSWER
            assert httpx.get(f"{sim.url}/api/v1/users/12/usage", params=MAY, headers=ADMIN_HEADERS).status_code == 404

    def test_fault_rules_target_the_templated_route_key(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client
    ) -> None:
        solusvm_sim.add_fault(kind="server_error", route="GET /api/v1/users/{id}/usage", status=503, count=1)
        assert solusvm_api.get("/api/v1/users/1/usage", params=MAY).status_code == 503
        assert solusvm_api.get("/api/v1/users/1", params=MAY).status_code == 200
        assert solusvm_api.get("/api/v1/users/1/usage", params=MAY).status_code == 200
        assert solusvm_sim.faults.stats() == {"server_error:GET /api/v1/users/{id}/usage": 1}

    def test_rate_limit_fault_has_laravel_headers(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        solusvm_sim.add_fault(kind="rate_limit", route="GET /api/v1/users/{id}/usage", retry_after=3, count=1)
        response = solusvm_api.get("/api/v1/users/1/usage", params=MAY)
        assert response.status_code == 429 and response.json() == {"message": "Too Many Attempts."}
        assert response.headers["Retry-After"] == "3" and response.headers["X-RateLimit-Remaining"] == "0"
