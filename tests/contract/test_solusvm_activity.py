"""Contract: activity logs (§4.2a) and servers whose state follows the simulator's clock (§4.2, §10).

A seeded history may reach past the clock: the API shows each server as it is at ``now`` (created yet?
running? which plan? deleted?) and writes the activity log as the clock passes each event, so a test
can play a whole month by moving the clock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.contract.conftest_solusvm import (  # noqa: F401  (fixtures)
    NOW,
    RunningSim,
    solusvm_api,
    solusvm_module_sim,
    solusvm_sim,
)

LOGS = "/api/v1/activity_logs"
ENTRY_KEYS = {"id", "event", "user_id", "user_email", "data", "created_at"}
CREATED, DELETE_REQUESTED, BATCH_DELETED = (
    "compute_resource_vm_created",
    "compute_resource_vm_delete_requested",
    "compute_resource_vm_batch_deleted",
)


def iso(offset: timedelta) -> str:
    return (NOW + offset).isoformat().replace("+00:00", "Z")


def new_server(api: httpx.Client, user_id: int) -> dict[str, Any]:
    response = api.post("/api/v1/servers", json={"plan": 1, "location": 1, "os": 3, "user": user_id})
    assert response.status_code == 201, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def new_user(api: httpx.Client, email: str) -> int:
    return int(api.post("/api/v1/users", json={"email": email}).json()["data"]["id"])


def entries(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = api.get(LOGS, params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


class TestActivityLogs:
    def test_creation_and_deletion_are_logged_with_the_documented_fields(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client
    ) -> None:
        user_id = new_user(solusvm_api, "logged@example.com")
        server = new_server(solusvm_api, user_id)
        solusvm_sim.clock.advance(300)
        assert solusvm_api.delete(f"/api/v1/servers/{server['id']}").status_code == 200
        found = entries(solusvm_api)
        assert [entry["event"] for entry in found] == [
            DELETE_REQUESTED,
            CREATED,
            "compute_resource_vm_create_requested",
        ], "newest first"
        for entry in found:
            assert set(entry) == ENTRY_KEYS
            assert entry["data"]["id"] == server["id"] and entry["data"]["uuid"] == server["uuid"]
            assert entry["user_email"] == "logged@example.com" and entry["user_id"] == user_id
        assert found[0]["created_at"] == iso(timedelta(seconds=300)) and found[1]["created_at"] == iso(timedelta())
        assert found[0]["id"] > found[1]["id"]

    def test_pages_newest_first_with_links_and_meta(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        user_id = new_user(solusvm_api, "pages@example.com")
        servers = []
        for _ in range(7):
            servers.append(new_server(solusvm_api, user_id))
            solusvm_sim.clock.advance(60)
        first = solusvm_api.get(LOGS, params={"filter[event]": CREATED, "per_page": 3}).json()
        assert first["meta"]["total"] == 7 and first["meta"]["last_page"] == 3 and first["meta"]["per_page"] == 3
        assert "filter%5Bevent%5D" in first["links"]["next"] or "filter[event]" in first["links"]["next"]
        ids = []
        page_url: str | None = LOGS + f"?filter%5Bevent%5D={CREATED}&per_page=3"
        while page_url:
            body = solusvm_api.get(page_url).json()
            ids.extend(entry["data"]["id"] for entry in body["data"])
            page_url = body["links"]["next"]
        assert ids == [server["id"] for server in reversed(servers)]
        assert solusvm_api.get(LOGS, params={"page": 9}).json()["data"] == []

    def test_filters_by_event_and_by_user(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        alice, bob = new_user(solusvm_api, "alice@example.com"), new_user(solusvm_api, "bob@example.com")
        mine = new_server(solusvm_api, alice)
        new_server(solusvm_api, bob)
        solusvm_api.delete(f"/api/v1/servers/{mine['id']}")
        assert {e["event"] for e in entries(solusvm_api, **{"filter[user_id]": alice})} == {
            CREATED,
            DELETE_REQUESTED,
            "compute_resource_vm_create_requested",
        }
        deletions = entries(solusvm_api, **{"filter[event]": DELETE_REQUESTED})
        assert [e["data"]["id"] for e in deletions] == [mine["id"]]
        assert entries(solusvm_api, **{"filter[user_id]": bob, "filter[event]": DELETE_REQUESTED}) == []
        assert entries(solusvm_api, **{"filter[user_id]": "nobody"}) == []

    def test_only_the_admin_reads_the_log(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        user_id = new_user(solusvm_api, "plain@example.com")
        token = solusvm_api.post(f"/api/v1/users/{user_id}/tokens", json={"is_one_time": False}).json()["data"]
        response = httpx.get(f"{solusvm_sim.url}{LOGS}", headers={"Authorization": f"Bearer {token['access_token']}"})
        assert response.status_code == 403
        assert httpx.get(f"{solusvm_sim.url}{LOGS}").status_code == 401

    def test_seeded_entries_appear_when_the_clock_passes_them_numbered_in_time_order(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client
    ) -> None:
        # Seeded out of time order: the later deletion first, then a server created in between.
        solusvm_sim.seed(
            {
                "users": [{"id": 50, "email": "future@example.com"}],
                "servers": [
                    {
                        "id": 500,
                        "user_id": 50,
                        "plan_id": 1,
                        "created_at": iso(timedelta(hours=1)),
                        "deleted_at": iso(timedelta(hours=5)),
                        "delete_event": BATCH_DELETED,
                    },
                    {"id": 501, "user_id": 50, "plan_id": 1, "created_at": iso(timedelta(hours=2))},
                ],
            }
        )
        assert entries(solusvm_api) == []
        solusvm_sim.clock.advance(3 * 3600)
        assert [(e["event"], e["data"]["id"]) for e in entries(solusvm_api)] == [(CREATED, 501), (CREATED, 500)]
        solusvm_sim.clock.advance(3 * 3600)
        found = entries(solusvm_api)
        assert (found[0]["event"], found[0]["data"]["id"], found[0]["created_at"]) == (
            BATCH_DELETED,
            500,
            iso(timedelta(hours=5)),
        )
        assert [e["id"] for e in found] == sorted((e["id"] for e in found), reverse=True)

    def test_an_unknown_deletion_event_is_refused_by_the_seed(self, solusvm_sim: RunningSim) -> None:
        response = httpx.post(
            f"{solusvm_sim.url}/_sim/seed",
            json={
                "users": [{"id": 51, "email": "x@example.com"}],
                "servers": [
                    {
                        "user_id": 51,
                        "plan_id": 1,
                        "created_at": iso(timedelta()),
                        "deleted_at": iso(timedelta(hours=1)),
                        "delete_event": "gone",
                    }
                ],
            },
        )
        assert response.status_code == 422 and "servers.0.delete_event" in response.json()["errors"]

    def test_the_log_survives_a_state_round_trip(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        solusvm_sim.seed(
            {
                "users": [{"id": 52, "email": "trip@example.com"}],
                "servers": [
                    {
                        "id": 520,
                        "user_id": 52,
                        "plan_id": 1,
                        "created_at": iso(-timedelta(hours=1)),
                        "deleted_at": iso(timedelta(hours=1)),
                    }
                ],
            }
        )
        before = entries(solusvm_api)
        state = httpx.get(f"{solusvm_sim.url}/_sim/state").json()
        assert httpx.put(f"{solusvm_sim.url}/_sim/state", json=state).status_code == 200
        assert entries(solusvm_api) == before
        solusvm_sim.clock.advance(7200)
        assert entries(solusvm_api)[0]["event"] == DELETE_REQUESTED, "the pending deletion was kept"


HISTORY = {
    "users": [{"id": 60, "email": "history@example.com"}],
    "plans": [{"id": 8, "name": "Big", "tokens_per_hour": 20, "tokens_per_month": 9000}],
    "servers": [
        {
            "id": 600,
            "user_id": 60,
            "plan_id": 1,
            "created_at": iso(timedelta(hours=1)),
            "intervals": [[iso(timedelta(hours=1)), iso(timedelta(hours=3))], [iso(timedelta(hours=4)), None]],
            "plan_changes": [[iso(timedelta(hours=5)), 8]],
            "deleted_at": None,
        }
    ],
}


class TestServersFollowTheClock:
    def at(self, sim: RunningSim, api: httpx.Client, hours: float) -> dict[str, Any] | None:
        sim.clock.set(NOW + timedelta(hours=hours))
        listed = api.get("/api/v1/servers", params={"filter[user_id]": 60}).json()["data"]
        everything = [s for s in api.get("/api/v1/servers").json()["data"] if s["id"] == 600]
        one = api.get("/api/v1/servers/600")
        assert listed == everything
        if one.status_code == 404:
            assert listed == []
            return None
        assert listed == [one.json()["data"]]
        return one.json()["data"]  # type: ignore[no-any-return]

    @pytest.mark.parametrize(
        ("hours", "status", "plan"),
        [(0.5, None, None), (1.5, "started", 1), (3.5, "stopped", 1), (4.5, "started", 1), (5.5, "started", 8)],
    )
    def test_status_and_plan_are_read_at_the_clock(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client, hours: float, status: str | None, plan: int | None
    ) -> None:
        solusvm_sim.seed(HISTORY)
        server = self.at(solusvm_sim, solusvm_api, hours)
        if status is None:
            assert server is None, "not created yet"
            return
        assert server is not None and (server["status"], server["plan"]["id"]) == (status, plan)
        assert server["deleted_at"] is None

    def test_a_seeded_deletion_hides_the_server_from_its_instant(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client
    ) -> None:
        solusvm_sim.seed(
            {
                **HISTORY,
                "plans": [],
                "servers": [
                    {
                        **HISTORY["servers"][0],
                        "plan_changes": [],
                        "intervals": None,
                        "deleted_at": iso(timedelta(hours=2)),
                    }
                ],
            }
        )
        assert self.at(solusvm_sim, solusvm_api, 1.99) is not None
        assert self.at(solusvm_sim, solusvm_api, 2.0) is None

    def test_usage_counts_only_what_happened_by_now_at_the_plan_of_now(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client
    ) -> None:
        solusvm_sim.seed(HISTORY)
        window = {"from": iso(timedelta()), "to": iso(timedelta(days=1))}
        solusvm_sim.clock.set(NOW + timedelta(hours=4, minutes=30))
        (early,) = solusvm_api.get("/api/v1/users/60/usage", params=window).json()["data"]["servers"]
        assert (early["hours"], early["plan"]["id"]) == (3, 1), "2 h + 30 min so far, on the first plan"
        solusvm_sim.clock.set(NOW + timedelta(hours=10))
        (later,) = solusvm_api.get("/api/v1/users/60/usage", params=window).json()["data"]["servers"]
        assert (later["hours"], later["plan"]["id"], later["tokens"]) == (8, 8, 160)

    def test_a_live_stop_replaces_the_seeded_future(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        solusvm_sim.seed(HISTORY)
        solusvm_sim.clock.set(NOW + timedelta(hours=2))
        assert solusvm_api.post("/api/v1/servers/600/stop").status_code == 200
        assert self.at(solusvm_sim, solusvm_api, 6)["status"] == "stopped"  # type: ignore[index]

    @pytest.mark.parametrize("change", [[["2020-01-01T00:00:00Z", 8]], [["bad", 8]], [[None, 99]], "x"])
    def test_plan_changes_outside_the_life_or_unknown_are_refused(self, solusvm_sim: RunningSim, change: Any) -> None:
        server = {**HISTORY["servers"][0], "plan_changes": change}
        response = httpx.post(f"{solusvm_sim.url}/_sim/seed", json={**HISTORY, "servers": [server]})
        assert response.status_code == 422 and any(
            k.startswith("servers.0.plan_changes") for k in response.json()["errors"]
        )
