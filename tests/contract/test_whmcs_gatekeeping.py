"""The WHMCS simulator's front door (reference §1.2, §1.5, §9.2): who gets in, in which order,
with which status code and message."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from simulators.whmcs.testing import RunningWhmcs

API = "/includes/api.php"


@pytest.fixture(scope="module")
def whmcs_simulator() -> Iterator[RunningWhmcs]:
    """With an access key and an admin login, which the front door checks (``whmcs`` resets it)."""
    with RunningWhmcs(accesskey="k3y!@#", admin_username="admin", admin_password="adminpass") as whmcs:
        yield whmcs


def post(whmcs: RunningWhmcs, **data: str) -> httpx.Response:
    return httpx.post(whmcs.url + API, data={"responsetype": "json", **data})


CREDENTIALS = {"identifier": "demo-identifier", "secret": "demo-secret"}


def test_valid_identifier_and_secret_reach_the_action(whmcs: RunningWhmcs) -> None:
    response = post(whmcs, action="GetClients", **CREDENTIALS)
    assert response.status_code == 200
    assert response.json()["result"] == "success"


@pytest.mark.parametrize(
    "credentials",
    [
        {"identifier": "demo-identifier", "secret": "wrong"},
        {"identifier": "wrong", "secret": "demo-secret"},
        {"identifier": "demo-identifier"},
        {},
        {"username": "admin", "password": "adminpass"},  # plain text, not md5
    ],
)
def test_bad_credentials_are_403_authentication_failed(whmcs: RunningWhmcs, credentials: dict[str, str]) -> None:
    response = post(whmcs, action="GetClients", **credentials)
    assert response.status_code == 403
    assert response.json() == {"result": "error", "message": "Authentication Failed"}


def test_identifier_and_secret_are_accepted_as_username_and_password(whmcs: RunningWhmcs) -> None:
    response = post(whmcs, action="GetClients", username="demo-identifier", password="demo-secret")
    assert response.json()["result"] == "success"


def test_legacy_admin_username_with_md5_password(whmcs: RunningWhmcs) -> None:
    md5 = hashlib.md5(b"adminpass").hexdigest()
    response = post(whmcs, action="GetClients", username="admin", password=md5)
    assert response.json()["result"] == "success"


def test_ip_not_on_the_allow_list_is_403_invalid_ip_with_the_callers_address(whmcs: RunningWhmcs) -> None:
    whmcs.access.allowed_ips = {"10.0.0.1"}
    response = post(whmcs, action="GetClients", **CREDENTIALS)
    assert response.status_code == 403
    assert response.json() == {"result": "error", "message": "Invalid IP 127.0.0.1"}


def test_ip_check_comes_before_credentials(whmcs: RunningWhmcs) -> None:
    whmcs.access.allowed_ips = {"10.0.0.1"}
    response = post(whmcs, action="GetClients", identifier="x", secret="y")
    assert response.json()["message"] == "Invalid IP 127.0.0.1"


def test_a_valid_accesskey_bypasses_the_allow_list_but_not_the_credentials(whmcs: RunningWhmcs) -> None:
    whmcs.access.allowed_ips = {"10.0.0.1"}
    assert post(whmcs, action="GetClients", accesskey="k3y!@#", **CREDENTIALS).json()["result"] == "success"
    refused = post(whmcs, action="GetClients", accesskey="k3y!@#", identifier="x", secret="y")
    assert (refused.status_code, refused.json()["message"]) == (403, "Authentication Failed")
    wrong_key = post(whmcs, action="GetClients", accesskey="nope", **CREDENTIALS)
    assert (wrong_key.status_code, wrong_key.json()["message"]) == (403, "Invalid IP 127.0.0.1")


def test_an_allowed_ip_needs_no_accesskey(whmcs: RunningWhmcs) -> None:
    whmcs.access.allowed_ips = {"127.0.0.1"}
    assert post(whmcs, action="GetClients", **CREDENTIALS).json()["result"] == "success"


def test_an_action_outside_the_api_role_is_403_invalid_permissions(whmcs: RunningWhmcs) -> None:
    whmcs.access.permitted_actions = {"getclients"}
    response = post(whmcs, action="GetInvoices", **CREDENTIALS)
    assert response.status_code == 403
    assert response.json()["message"] == 'Invalid Permissions: API action "getinvoices" is not allowed'
    assert post(whmcs, action="GetClients", **CREDENTIALS).status_code == 200


def test_unknown_action_is_200_command_not_found_after_authentication(whmcs: RunningWhmcs) -> None:
    response = post(whmcs, action="MakeCoffee", **CREDENTIALS)
    assert response.status_code == 200
    assert response.json() == {"result": "error", "message": "Command Not Found"}
    unauthenticated = post(whmcs, action="MakeCoffee")
    assert unauthenticated.status_code == 403


@pytest.mark.parametrize("spelling", ["getclients", "GETCLIENTS", "GetClients", "gEtClIeNtS"])
def test_action_names_match_case_insensitively(whmcs: RunningWhmcs, spelling: str) -> None:
    response = post(whmcs, action=spelling, **CREDENTIALS)
    assert response.json()["result"] == "success"
    assert whmcs.calls["GetClients"] == 1  # counted (and fault-matched) under the documented name


def test_multipart_bodies_are_read_too(whmcs: RunningWhmcs) -> None:
    fields = {"action": "GetClients", "responsetype": "json", **CREDENTIALS}
    response = httpx.post(whmcs.url + API, files={k: (None, v) for k, v in fields.items()})
    assert response.json()["result"] == "success"


def test_api_only_answers_post(whmcs: RunningWhmcs) -> None:
    assert httpx.get(whmcs.url + API, params={"action": "GetClients", **CREDENTIALS}).status_code == 405
