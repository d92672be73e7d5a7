"""The WHMCS simulator for a test module, and the calls its tests make (a pytest plugin, registered in
``tests/conftest.py``).

    def test_x(whmcs: RunningWhmcs) -> None:          # the simulator, reset for this test
        client_id = add_client(whmcs, "jane@example.com")
        ok(whmcs, "CreateInvoice", userid=client_id, ...)

    def test_y(whmcs_client: WhmcsClient) -> None:    # postpay's adapter, pointed at it

One simulator per module (``whmcs_simulator``), its clock at ``WHMCS_NOW``; a module that needs other
options (credentials, another time) overrides ``whmcs_simulator`` with its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from shared.upstream.whmcs import WhmcsClient
from simulators.whmcs.testing import RunningWhmcs

WHMCS_NOW = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def whmcs_simulator() -> Iterator[RunningWhmcs]:
    with RunningWhmcs(now=WHMCS_NOW) as running:
        yield running


@pytest.fixture
def whmcs(whmcs_simulator: RunningWhmcs) -> RunningWhmcs:
    """The module's simulator as it started: state, clock, access; no faults, no calls counted."""
    whmcs_simulator.reset()
    return whmcs_simulator


@pytest.fixture
def whmcs_client(whmcs: RunningWhmcs) -> Iterator[WhmcsClient]:
    """postpay's WHMCS adapter with the simulator's credentials (default retries and timeouts)."""
    with WhmcsClient(whmcs.url, SecretStr(whmcs.identifier), SecretStr(whmcs.secret)) as client:
        yield client


def ok(whmcs: RunningWhmcs, action: str, **params: Any) -> dict[str, Any]:
    """A raw API call that must succeed (HTTP 200, ``result: success``); its body."""
    response = whmcs.call(action, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body.get("result") == "success", body
    return body


def error(whmcs: RunningWhmcs, action: str, **params: Any) -> str:
    """A raw API call that must fail as WHMCS fails (HTTP 200, ``result: error``); its message."""
    response = whmcs.call(action, **params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] == "error", body
    return str(body["message"])


def add_client(whmcs: RunningWhmcs, email: str = "jane@example.com", **extra: Any) -> int:
    """AddClient for Jane Doe with ``email`` (no welcome email, no required fields checked)."""
    fields = {"firstname": "Jane", "lastname": "Doe", "password2": "pw", "skipvalidation": 1, "noemail": 1, **extra}
    return int(ok(whmcs, "AddClient", email=email, **fields)["clientid"])
