"""WHMCS or SolusVM 2 failing during the daily sync: the checks are retried, nothing is decided from a
partial view, and no account ever flaps (suspended → active → suspended)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from shared.db import Database
from tests.support.accounts import AccountsHarness
from tests.support.bus_helpers import metric, wait_until
from tests.support.system import Upstreams

DUE = date(2026, 11, 1)
CHECK = "provisioner.check_standing"


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with Upstreams() as running:
        yield running


def parked_checks() -> float:
    return metric("postpay_messages_parked_total", handler=CHECK, reason="retries-exhausted")


@pytest.mark.parametrize(("bus_name", "database_name"), [("memory", "sqlite"), ("rabbit", "postgres")])
def test_upstream_outages_during_ticks_are_retried_and_never_flap(
    upstreams: Upstreams, bus_name: str, database_name: str, request: pytest.FixtureRequest
) -> None:
    bus: Any = request.getfixturevalue(f"{bus_name}_bus")
    database: Database = request.getfixturevalue(f"{database_name}_database")
    harness = AccountsHarness(upstreams, bus, database).start()
    try:
        ada, bob = harness.add_customer(), harness.add_customer()
        harness.add_invoice(ada, due=DUE)
        bob_invoice = harness.add_invoice(bob, due=DUE)

        # WHMCS answers 5xx for a while: the first attempt of a check gives up, the bus retries it.
        upstreams.whmcs.fault(kind="server_error", route="GetInvoices", count=6)
        harness.sync(date(2026, 11, 15))
        assert upstreams.whmcs.faults.stats() == {"server_error:GetInvoices": 6}
        assert [harness.solusvm_status(m) for m in (ada, bob)] == ["suspended", "suspended"]

        # bob pays; the reactivating PATCH reaches SolusVM 2 but its answer is lost: the check is
        # retried and sends the same status again (no second change, no second email).
        harness.pay(bob_invoice)
        upstreams.solusvm_faults.add(_rule(kind="commit_then_fail", route="PATCH /api/v1/users/{id}", count=1))
        harness.sync(date(2026, 11, 16))
        assert upstreams.solusvm_faults.stats() == {"commit_then_fail:PATCH /api/v1/users/{id}": 1}
        assert harness.solusvm_status(bob) == "active"

        # WHMCS in maintenance for a whole tick (an HTML page with 200): no check decides anything;
        # in particular no "no invoices found" reactivates ada. They are parked, and the next day's
        # tick checks again.
        upstreams.whmcs.fault(kind="html", route="GetInvoices")
        parked = parked_checks()
        revisions = [harness.account(m).revision for m in (ada, bob)]
        harness.sync(date(2026, 11, 17), wait=False)
        wait_until(lambda: parked_checks() >= parked + 2, timeout=30, what="both checks parked")
        assert [harness.account(m).revision for m in (ada, bob)] == revisions
        upstreams.whmcs.faults.clear()
        # SolusVM 2 down while WHMCS is back: nothing needs writing, so nothing fails.
        upstreams.solusvm_faults.add(_rule(kind="server_error", route="PATCH *"))
        harness.sync(date(2026, 11, 18))
        upstreams.solusvm_faults.clear()
        harness.sync(date(2026, 11, 19))

        assert harness.status_history(ada) == [("active", "suspended")]
        assert harness.status_history(bob) == [("active", "suspended"), ("suspended", "active")]
        assert [len(harness.wait_emails(m, "suspended")) for m in (ada, bob)] == [1, 1]
        assert len(harness.wait_emails(bob, "active again")) == 1
        assert [harness.account(m).revision for m in (ada, bob)] == [1, 2]
        assert not any(harness.account(m).unconfirmed for m in (ada, bob))
    finally:
        upstreams.whmcs.faults.clear()
        upstreams.solusvm_faults.clear()
        harness.stop()


def _rule(**values: Any) -> Any:
    from simulators.faults import FaultRule

    return FaultRule.model_validate(values)
