"""Contract: the simulator's /api/v1/users wire shapes against the reference (§1.2-1.5, §2, §10)."""

from __future__ import annotations

import httpx
import pytest

from tests.contract.conftest_solusvm import (  # noqa: F401  (fixtures)
    ADMIN_TOKEN,
    RunningSim,
    solusvm_api,
    solusvm_module_sim,
    solusvm_sim,
)

USER_KEYS = {
    "id",
    "email",
    "status",
    "roles",
    "billing_user_id",
    "billing_token",
    "limit_group",
    "language_id",
    "is_two_factor_auth_enabled",
    "created_at",
    "updated_at",
}
INVALID = "The given data was invalid."


def create(api: httpx.Client, **fields: object) -> httpx.Response:
    return api.post("/api/v1/users", json=fields)


def seed_users(sim: RunningSim, count: int, domain: str = "example.org") -> None:
    sim.seed({"users": [{"email": f"user{n:03d}@{domain}"} for n in range(count)]})


class TestAuthentication:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/api/v1/users"),
            ("POST", "/api/v1/users"),
            ("GET", "/api/v1/users/1"),
            ("PUT", "/api/v1/users/1"),
            ("PATCH", "/api/v1/users/1"),
            ("DELETE", "/api/v1/users/1"),
            ("POST", "/api/v1/users/1/tokens"),
            ("GET", "/api/v1/users/1/usage"),
            ("GET", "/api/v1/plans"),
            ("GET", "/api/v1/servers"),
            ("GET", "/api/v1/account"),
            ("POST", "/api/v1/servers/1/start"),
        ],
    )
    @pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {ADMIN_TOKEN}", "Bearer"])
    def test_every_api_route_refuses_a_missing_or_unknown_bearer(
        self, solusvm_sim: RunningSim, method: str, path: str, authorization: str | None
    ) -> None:
        headers = {"Authorization": authorization} if authorization else {}
        response = httpx.request(method, solusvm_sim.url + path, headers=headers, json={})
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthenticated."}

    def test_a_refused_request_changes_nothing(self, solusvm_sim: RunningSim) -> None:
        httpx.post(f"{solusvm_sim.url}/api/v1/users", json={"email": "sneaky@example.com"})
        assert solusvm_sim.users_with_email("sneaky@example.com") == []


class TestListAndPaging:
    def test_first_page_has_laravel_links_and_meta(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        seed_users(solusvm_sim, 41)  # plus the admin user: 42 users, 3 pages of 15
        body = solusvm_api.get("/api/v1/users").json()
        base = f"{solusvm_sim.url}/api/v1/users"
        assert [user["id"] for user in body["data"]] == list(range(1, 16))
        assert body["links"] == {
            "first": f"{base}?page=1",
            "last": f"{base}?page=3",
            "prev": None,
            "next": f"{base}?page=2",
        }
        assert body["meta"] == {
            "current_page": 1,
            "from": 1,
            "last_page": 3,
            "path": base,
            "per_page": 15,
            "to": 15,
            "total": 42,
        }

    def test_last_page_is_partial_and_has_no_next(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        seed_users(solusvm_sim, 41)
        body = solusvm_api.get("/api/v1/users", params={"page": 3}).json()
        assert len(body["data"]) == 12
        assert body["links"]["next"] is None
        assert body["links"]["prev"].endswith("?page=2")
        assert (body["meta"]["from"], body["meta"]["to"], body["meta"]["current_page"]) == (31, 42, 3)

    def test_a_page_past_the_end_is_empty_not_an_error(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client
    ) -> None:
        seed_users(solusvm_sim, 3)
        response = solusvm_api.get("/api/v1/users", params={"page": 9})
        assert response.status_code == 200
        body = response.json()
        assert body["data"] == []
        assert body["meta"]["from"] is None and body["meta"]["to"] is None
        assert body["meta"]["current_page"] == 9 and body["meta"]["last_page"] == 1
        assert body["links"]["next"] is None

    @pytest.mark.parametrize("page", ["0", "-2", "abc", ""])
    def test_an_invalid_page_falls_back_to_the_first(self, solusvm_api: httpx.Client, page: str) -> None:
        body = solusvm_api.get(f"/api/v1/users?page={page}").json()
        assert body["meta"]["current_page"] == 1

    def test_per_page_is_honoured_echoed_and_kept_in_links(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client
    ) -> None:
        seed_users(solusvm_sim, 20)
        body = solusvm_api.get("/api/v1/users", params={"per_page": 7, "page": 2}).json()
        assert len(body["data"]) == 7
        assert body["meta"]["per_page"] == 7 and body["meta"]["last_page"] == 3
        assert "per_page=7" in body["links"]["next"] and body["links"]["next"].endswith("page=3")


class TestFilters:
    @pytest.mark.parametrize("key", ["filter[search]", "filter%5Bsearch%5D"])
    def test_search_is_decoded_from_both_wire_forms(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client, key: str
    ) -> None:
        seed_users(solusvm_sim, 3)
        create(solusvm_api, email="jane@example.com")
        response = solusvm_api.get(f"/api/v1/users?{key}=jane@example.com")
        assert key.encode() in response.request.url.raw_path
        assert [user["email"] for user in response.json()["data"]] == ["jane@example.com"]

    def test_search_is_a_substring_match_that_may_return_several_users(self, solusvm_api: httpx.Client) -> None:
        for email in ("jane@example.com", "mary-jane@example.com", "JANE.doe@example.net", "bob@example.com"):
            assert create(solusvm_api, email=email).status_code == 201
        body = solusvm_api.get("/api/v1/users", params={"filter[search]": "jane"}).json()
        assert [user["email"] for user in body["data"]] == [
            "jane@example.com",
            "mary-jane@example.com",
            "JANE.doe@example.net",
        ]
        assert body["meta"]["total"] == 3
        assert "filter%5Bsearch%5D=jane" in body["links"]["first"]

    def test_search_with_a_plus_sign_needs_it_encoded(self, solusvm_api: httpx.Client) -> None:
        create(solusvm_api, email="jane+billing@example.com")
        encoded = solusvm_api.get("/api/v1/users", params={"filter[search]": "jane+billing@"}).json()
        assert [user["email"] for user in encoded["data"]] == ["jane+billing@example.com"]
        # An unencoded "+" is a space in a query string, so it finds nothing: the client must encode.
        raw = solusvm_api.get("/api/v1/users?filter[search]=jane+billing@").json()
        assert raw["data"] == []

    def test_status_filter(self, solusvm_api: httpx.Client) -> None:
        create(solusvm_api, email="a@example.com", status="suspended")
        create(solusvm_api, email="b@example.com", status="locked")
        create(solusvm_api, email="c@example.com")
        suspended = solusvm_api.get("/api/v1/users?filter%5Bstatus%5D=suspended").json()["data"]
        assert [user["email"] for user in suspended] == ["a@example.com"]
        active = solusvm_api.get("/api/v1/users", params={"filter[status]": "active"}).json()["data"]
        assert [user["email"] for user in active] == ["admin@example.com", "c@example.com"]
        assert solusvm_api.get("/api/v1/users", params={"filter[status]": "gone"}).json()["data"] == []


class TestGetAndCreate:
    def test_get_unknown_or_non_integer_id_is_404(self, solusvm_api: httpx.Client) -> None:
        for path in ("/api/v1/users/999", "/api/v1/users/abc", "/api/v1/users/1.5", "/api/v1/users/%EF%BC%91"):
            response = solusvm_api.get(path)
            assert response.status_code == 404
            assert response.json() == {"message": "Not found."}

    def test_create_answers_201_with_the_user_object(self, solusvm_api: httpx.Client) -> None:
        response = create(
            solusvm_api,
            email="jane@example.com",
            password="Gen3rated!pw",
            status="active",
            billing_user_id=1,
            limit_group_id=1,
            roles=[2],
        )
        assert response.status_code == 201
        user = response.json()["data"]
        assert set(user) == USER_KEYS
        assert user["email"] == "jane@example.com" and user["status"] == "active"
        assert user["billing_user_id"] == 1
        assert user["limit_group"] == {"id": 1, "name": "Default"}
        assert [role["id"] for role in user["roles"]] == [2]
        assert set(user["roles"][0]) == {"id", "name", "is_default", "users_count"}
        assert user["created_at"] == "2024-06-15T12:00:00Z"
        assert "password" not in user
        assert solusvm_api.get(f"/api/v1/users/{user['id']}").json() == {"data": user}

    @pytest.mark.parametrize(("sent", "stored"), [("42", 42), (42, 42), (None, None), (" 7 ", 7)])
    def test_billing_user_id_accepts_int_numeric_string_or_null(
        self, solusvm_api: httpx.Client, sent: object, stored: int | None
    ) -> None:
        response = create(solusvm_api, email="b@example.com", billing_user_id=sent)
        assert response.status_code == 201
        assert response.json()["data"]["billing_user_id"] == stored

    def test_role_ids_as_numeric_strings_are_accepted(self, solusvm_api: httpx.Client) -> None:
        response = create(solusvm_api, email="r@example.com", roles=["1", 2])
        assert [role["id"] for role in response.json()["data"]["roles"]] == [1, 2]

    def test_a_taken_email_is_422_with_laravel_errors(self, solusvm_api: httpx.Client) -> None:
        assert create(solusvm_api, email="jane@example.com").status_code == 201
        for email in ("jane@example.com", "Jane@Example.com"):
            response = create(solusvm_api, email=email)
            assert response.status_code == 422
            assert response.json() == {"message": INVALID, "errors": {"email": ["The email has already been taken."]}}

    @pytest.mark.parametrize(
        ("fields", "error_key"),
        [
            ({}, "email"),
            ({"email": ""}, "email"),
            ({"email": "not-an-email"}, "email"),
            ({"email": 5}, "email"),
            ({"email": "x@example.com", "status": "deleted"}, "status"),
            ({"email": "x@example.com", "roles": [{"id": 1}]}, "roles.0"),
            ({"email": "x@example.com", "roles": 2}, "roles"),
            ({"email": "x@example.com", "roles": [9]}, "roles.0"),
            ({"email": "x@example.com", "billing_user_id": "abc"}, "billing_user_id"),
            ({"email": "x@example.com", "billing_user_id": 1.5}, "billing_user_id"),
            ({"email": "x@example.com", "limit_group_id": 77}, "limit_group_id"),
        ],
    )
    def test_invalid_fields_are_422_naming_the_field(
        self, solusvm_api: httpx.Client, fields: dict[str, object], error_key: str
    ) -> None:
        response = solusvm_api.post("/api/v1/users", json=fields)
        assert response.status_code == 422
        body = response.json()
        assert body["message"] == INVALID
        assert error_key in body["errors"] and all(isinstance(m, str) for m in body["errors"][error_key])
        assert solusvm_api.get("/api/v1/users").json()["meta"]["total"] == 1

    @pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"'])
    def test_a_body_that_is_not_a_json_object_is_422(self, solusvm_api: httpx.Client, raw: bytes) -> None:
        response = solusvm_api.post("/api/v1/users", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 422
        assert "body" in response.json()["errors"]


class TestUpdateAndDelete:
    def test_put_with_status_and_billing_user_id_as_s1_sends_it(self, solusvm_api: httpx.Client) -> None:
        user = create(solusvm_api, email="p@example.com").json()["data"]
        response = solusvm_api.put(f"/api/v1/users/{user['id']}", json={"status": "suspended", "billing_user_id": "9"})
        assert response.status_code == 200
        updated = response.json()["data"]
        assert (updated["status"], updated["billing_user_id"], updated["email"]) == ("suspended", 9, "p@example.com")

    def test_put_with_role_objects_is_422(self, solusvm_api: httpx.Client) -> None:
        user = create(solusvm_api, email="p@example.com").json()["data"]
        response = solusvm_api.put(f"/api/v1/users/{user['id']}", json={"roles": user["roles"]})
        assert response.status_code == 422 and "roles.0" in response.json()["errors"]

    def test_patch_email_stays_unique_and_moves_the_search_index(self, solusvm_api: httpx.Client) -> None:
        first = create(solusvm_api, email="one@example.com").json()["data"]
        create(solusvm_api, email="two@example.com")
        taken = solusvm_api.patch(f"/api/v1/users/{first['id']}", json={"email": "TWO@example.com"})
        assert taken.status_code == 422
        assert taken.json()["errors"] == {"email": ["The email has already been taken."]}
        moved = solusvm_api.patch(f"/api/v1/users/{first['id']}", json={"email": "uno@example.com"})
        assert moved.status_code == 200 and moved.json()["data"]["email"] == "uno@example.com"
        assert create(solusvm_api, email="one@example.com").status_code == 201  # the old address is free

    def test_patch_to_its_own_email_is_not_a_conflict(self, solusvm_api: httpx.Client) -> None:
        user = create(solusvm_api, email="self@example.com").json()["data"]
        assert solusvm_api.patch(f"/api/v1/users/{user['id']}", json={"email": "self@example.com"}).status_code == 200

    def test_update_of_an_unknown_user_is_404(self, solusvm_api: httpx.Client) -> None:
        for method in ("PUT", "PATCH"):
            response = solusvm_api.request(method, "/api/v1/users/4242", json={"status": "bogus"})
            assert response.status_code == 404 and response.json() == {"message": "Not found."}

    def test_delete_is_204_with_an_empty_body(self, solusvm_api: httpx.Client) -> None:
        user = create(solusvm_api, email="gone@example.com").json()["data"]
        response = solusvm_api.delete(f"/api/v1/users/{user['id']}")
        assert response.status_code == 204 and response.content == b""
        assert solusvm_api.get(f"/api/v1/users/{user['id']}").status_code == 404
        assert solusvm_api.delete(f"/api/v1/users/{user['id']}").status_code == 404

    def test_delete_is_422_while_the_user_owns_servers(self, solusvm_api: httpx.Client) -> None:
        user = create(solusvm_api, email="owner@example.com").json()["data"]
        server = solusvm_api.post("/api/v1/servers", json={"plan": 1, "location": 1, "os": 1, "user": user["id"]})
        assert server.status_code == 201
        refused = solusvm_api.delete(f"/api/v1/users/{user['id']}")
        assert refused.status_code == 422 and "errors" in refused.json()
        assert solusvm_api.delete(f"/api/v1/servers/{server.json()['data']['id']}").status_code == 200
        assert solusvm_api.delete(f"/api/v1/users/{user['id']}").status_code == 204
