"""Contract: per-user tokens, the project-defined SSO route (§3.2), login and the account (§1.1)."""

from __future__ import annotations

import httpx
import pytest

from tests.contract.conftest_solusvm import (  # noqa: F401  (fixtures)
    ADMIN_HEADERS,
    RunningSim,
    running_simulator,
    solusvm_api,
    solusvm_module_sim,
    solusvm_sim,
)

UNAUTHENTICATED = {"message": "Unauthenticated."}


def new_user(api: httpx.Client, email: str = "jane@example.com", **fields: object) -> int:
    response = api.post("/api/v1/users", json={"email": email, **fields})
    assert response.status_code == 201
    return int(response.json()["data"]["id"])


def one_time_token(api: httpx.Client, user_id: int) -> str:
    response = api.post(f"/api/v1/users/{user_id}/tokens", json={"is_one_time": True})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"data"} and set(body["data"]) == {"access_token"}
    token = body["data"]["access_token"]
    assert isinstance(token, str) and len(token) >= 32
    return str(token)


def sso(sim: RunningSim, token: str | None, path: str = "/auth/by_token") -> httpx.Response:
    params = {} if token is None else {"token": token}
    return httpx.get(sim.url + path, params=params)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TestTokens:
    def test_tokens_differ_and_unknown_user_is_404(self, solusvm_api: httpx.Client) -> None:
        user_id = new_user(solusvm_api)
        assert one_time_token(solusvm_api, user_id) != one_time_token(solusvm_api, user_id)
        response = solusvm_api.post("/api/v1/users/999/tokens", json={"is_one_time": True})
        assert response.status_code == 404 and response.json() == {"message": "Not found."}

    def test_is_one_time_must_be_a_boolean(self, solusvm_api: httpx.Client) -> None:
        user_id = new_user(solusvm_api)
        response = solusvm_api.post(f"/api/v1/users/{user_id}/tokens", json={"is_one_time": "yes"})
        assert response.status_code == 422 and "is_one_time" in response.json()["errors"]


class TestSsoRoute:
    def test_first_use_signs_in_and_names_the_user(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        token = one_time_token(solusvm_api, new_user(solusvm_api, "o'neil+sso@example.com"))
        response = sso(solusvm_sim, token)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "o&#x27;neil+sso@example.com" in response.text

    def test_a_token_works_exactly_once(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        token = one_time_token(solusvm_api, new_user(solusvm_api))
        assert sso(solusvm_sim, token).status_code == 200
        for _ in range(2):
            again = sso(solusvm_sim, token)
            assert again.status_code == 401 and again.json() == UNAUTHENTICATED

    @pytest.mark.parametrize("token", [None, "", "not-a-token"])
    def test_missing_or_unknown_token_is_401(self, solusvm_sim: RunningSim, token: str | None) -> None:
        response = sso(solusvm_sim, token)
        assert response.status_code == 401 and response.json() == UNAUTHENTICATED

    def test_the_admin_api_token_is_not_an_sso_token(self, solusvm_sim: RunningSim) -> None:
        assert sso(solusvm_sim, ADMIN_HEADERS["Authorization"].split()[1]).status_code == 401

    def test_a_reusable_user_token_is_not_an_sso_token(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client
    ) -> None:
        user_id = new_user(solusvm_api)
        token = solusvm_api.post(f"/api/v1/users/{user_id}/tokens", json={"is_one_time": False}).json()["data"]
        assert sso(solusvm_sim, token["access_token"]).status_code == 401

    def test_use_as_api_bearer_consumes_it_for_the_browser_too(
        self, solusvm_sim: RunningSim, solusvm_api: httpx.Client
    ) -> None:
        user_id = new_user(solusvm_api)
        token = one_time_token(solusvm_api, user_id)
        account = httpx.get(f"{solusvm_sim.url}/api/v1/account", headers=bearer(token))
        assert account.status_code == 200 and account.json()["data"]["id"] == user_id
        assert httpx.get(f"{solusvm_sim.url}/api/v1/account", headers=bearer(token)).status_code == 401
        assert sso(solusvm_sim, token).status_code == 401

    def test_browser_use_consumes_it_for_the_api_too(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        token = one_time_token(solusvm_api, new_user(solusvm_api))
        assert sso(solusvm_sim, token).status_code == 200
        response = httpx.get(f"{solusvm_sim.url}/api/v1/account", headers=bearer(token))
        assert response.status_code == 401 and response.json() == UNAUTHENTICATED

    def test_a_locked_user_cannot_sign_in(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        user_id = new_user(solusvm_api)
        token = one_time_token(solusvm_api, user_id)
        solusvm_api.patch(f"/api/v1/users/{user_id}", json={"status": "locked"})
        assert sso(solusvm_sim, token).status_code == 401

    def test_expired_token_is_401_and_path_is_configurable(self) -> None:
        with running_simulator(one_time_token_ttl=60, sso_path="/sso/login") as sim:
            api = httpx.Client(base_url=sim.url, headers=ADMIN_HEADERS)
            user_id = new_user(api)
            fresh, stale = one_time_token(api, user_id), one_time_token(api, user_id)
            sim.clock.advance(59)
            assert sso(sim, fresh, "/sso/login").status_code == 200
            sim.clock.advance(1)
            assert sso(sim, stale, "/sso/login").status_code == 401
            assert sso(sim, one_time_token(api, user_id), "/auth/by_token").status_code == 404


class TestUserTokensAndAccount:
    def test_a_user_token_acts_as_that_user_only(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        user_id = new_user(solusvm_api)
        token = solusvm_api.post(f"/api/v1/users/{user_id}/tokens", json={}).json()["data"]["access_token"]
        as_user = httpx.Client(base_url=solusvm_sim.url, headers=bearer(token))
        assert as_user.get("/api/v1/account").json()["data"]["email"] == "jane@example.com"
        forbidden = as_user.get("/api/v1/users")
        assert forbidden.status_code == 403 and "message" in forbidden.json()
        assert as_user.get("/api/v1/plans").status_code == 200
        assert as_user.get("/api/v1/account").status_code == 200  # a reusable token keeps working

    def test_admin_account_is_the_token_owner(self, solusvm_api: httpx.Client) -> None:
        body = solusvm_api.get("/api/v1/account").json()
        assert body["data"]["id"] == 1 and body["data"]["email"] == "admin@example.com"

    def test_password_login(self, solusvm_sim: RunningSim, solusvm_api: httpx.Client) -> None:
        new_user(solusvm_api, "login@example.com", password="s3cret-pw")
        ok = httpx.post(
            f"{solusvm_sim.url}/api/v1/auth/login", json={"email": "login@example.com", "password": "s3cret-pw"}
        )
        assert ok.status_code == 200
        credentials = ok.json()["data"]["credentials"]
        assert set(credentials) == {"access_token", "token_type", "expires_at"}
        assert credentials["token_type"] == "Bearer" and credentials["expires_at"] == "2024-06-16T12:00:00Z"
        me = httpx.get(f"{solusvm_sim.url}/api/v1/account", headers=bearer(credentials["access_token"]))
        assert me.json()["data"]["email"] == "login@example.com"
        wrong = httpx.post(f"{solusvm_sim.url}/api/v1/auth/login", json={"email": "login@example.com", "password": "x"})
        assert wrong.status_code == 401 and wrong.json() == UNAUTHENTICATED
        missing = httpx.post(f"{solusvm_sim.url}/api/v1/auth/login", json={"email": "login@example.com"})
        assert missing.status_code == 422 and set(missing.json()["errors"]) == {"password"}
