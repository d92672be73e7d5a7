"""Enrollment with WHMCS and SolusVM 2 misbehaving: writes that commit and then fail, 5xx answers and
timeouts. Whatever happens, each customer ends with exactly one WHMCS client and one SolusVM 2 user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.db import Database
from shared.upstream.http import Timeouts
from simulators.faults import FaultRule
from tests.support.enrollment import Enrollment, clean_upstreams, unique_email, upstreams  # noqa: F401 - fixtures used by name
from tests.support.system import Upstreams

HANG = 1.5  # seconds a "timeout" fault holds the answer; the clients give up after 0.5 s
SCENARIOS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    # (WHMCS rules, SolusVM rules)
    "commit-then-5xx": (
        [{"kind": "commit_then_fail", "route": "AddClient", "count": 1, "then": "server_error"}],
        [{"kind": "commit_then_fail", "route": "POST /api/v1/users", "count": 1, "then": "server_error"}],
    ),
    "commit-then-drop": (
        [{"kind": "commit_then_fail", "route": "AddClient", "count": 1, "then": "drop"}],
        [{"kind": "commit_then_fail", "route": "POST /api/v1/users", "count": 1, "then": "drop"}],
    ),
    "commit-then-timeout": (
        [{"kind": "commit_then_fail", "route": "AddClient", "count": 1, "then": "timeout", "hang_seconds": HANG}],
        [
            {
                "kind": "commit_then_fail",
                "route": "POST /api/v1/users",
                "count": 1,
                "then": "timeout",
                "hang_seconds": HANG,
            }
        ],
    ),
    "5xx-and-timeouts-before-anything": (
        [
            {"kind": "server_error", "route": "GetClientsDetails", "count": 2},
            {"kind": "timeout", "route": "AddClient", "count": 1, "hang_seconds": HANG},
        ],
        [
            {"kind": "server_error", "route": "GET /api/v1/users", "count": 2},
            {"kind": "server_error", "route": "POST /api/v1/users", "count": 1},
        ],
    ),
}


@pytest.fixture
def enrollment(clean_upstreams: Upstreams, bus: object, database: Database) -> Iterator[Enrollment]:
    with Enrollment(clean_upstreams, bus, database, timeouts=Timeouts(connect=1.0, read=0.5)).start() as running:
        yield running


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_faults_never_duplicate_a_client_or_a_user(enrollment: Enrollment, upstreams: Upstreams, scenario: str) -> None:
    whmcs_rules, solusvm_rules = SCENARIOS[scenario]
    for rule in whmcs_rules:
        upstreams.whmcs.fault(**rule)
    for rule in solusvm_rules:
        upstreams.solusvm_faults.add(FaultRule.model_validate(rule))
    email = unique_email()

    enrolled = enrollment.enroll(email)

    assert "Log in to SolusVM 2" in enrolled.text
    assert len(enrollment.whmcs_clients(email)) == 1
    (user,) = enrollment.solusvm_users(email)
    (client,) = enrollment.whmcs_clients(email)
    assert user.billing_user_id == client.id
    injected = {**upstreams.whmcs.faults.stats(), **upstreams.solusvm_faults.stats()}
    assert sum(injected.values()) >= len(whmcs_rules) + len(solusvm_rules), f"not every fault fired: {injected}"
