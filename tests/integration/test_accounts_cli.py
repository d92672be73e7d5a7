"""``postpay accounts sync --dry-run`` prints per customer what would change and why, and changes
nothing anywhere (both simulators and postpay's tables compared before and after); ``postpay accounts
sync`` then does it; ``postpay accounts list`` shows the result."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from postpay.cli import app
from shared.bus.memory import InMemoryBus
from shared.db import Database
from simulators.solusvm.persistence import dump_state as solusvm_state
from simulators.whmcs.persistence import dump_state as whmcs_state
from tests.support.accounts import AccountsHarness
from tests.support.system import SOLUSVM_TOKEN, Upstreams

WHMCS_WRITES = {
    "CreateInvoice",
    "UpdateInvoice",
    "AddInvoicePayment",
    "AddTransaction",
    "AddClient",
    "UpdateClient",
    "SendEmail",
    "CreateSsoToken",
}


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with Upstreams() as running:
        yield running


@pytest.fixture
def cli(upstreams: Upstreams, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The ``postpay`` command configured like the harness: same database file, same simulators."""
    environment = {
        "POSTPAY_DATABASE_URL": f"sqlite:///{tmp_path / 'postpay.sqlite'}",
        "POSTPAY_SOLUSVM_URL": upstreams.solusvm_url,
        "POSTPAY_SOLUSVM_API_TOKEN": SOLUSVM_TOKEN,
        "POSTPAY_WHMCS_URL": upstreams.whmcs.url,
        "POSTPAY_WHMCS_IDENTIFIER": upstreams.whmcs.identifier,
        "POSTPAY_WHMCS_SECRET": upstreams.whmcs.secret,
        "POSTPAY_ACCOUNTS_GRACE_DAYS": "14",
        "POSTPAY_UPSTREAM_MAX_ATTEMPTS": "2",
        "COLUMNS": "240",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name in ("POSTPAY_AMQP_URL", "POSTPAY_ACCOUNTS_NEVER_SUSPEND", "POSTPAY_BILLING_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def postpay(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def everything(upstreams: Upstreams, harness: AccountsHarness) -> tuple[Any, ...]:
    with harness.db.transaction() as session:
        rows = {
            table.name: sorted((tuple(row) for row in session.execute(select(table))), key=repr)
            for name in ("provisioner", "signup", "scheduler")
            for table in _metadata(name).sorted_tables
        }
    return (
        solusvm_state(upstreams.solusvm_state),
        upstreams.solusvm_state.status_history(),
        whmcs_state(upstreams.whmcs.state),
        rows,
        len(upstreams.smtp.messages),
    )


def quiet(upstreams: Upstreams, harness: AccountsHarness) -> tuple[Any, ...]:
    """Everything, once the handlers still finishing the last sync (emails, inbox rows) are done."""
    previous = everything(upstreams, harness)
    for _ in range(50):
        time.sleep(0.2)
        current = everything(upstreams, harness)
        if current == previous:
            return current
        previous = current
    raise AssertionError("the system did not settle")


def _metadata(name: str) -> Any:
    from postpay.bootstrap import service_builder
    from shared.dependencies import Dependencies

    return service_builder(name)(Dependencies(whmcs=None, solusvm=None, mailer=None)).metadata


def test_dry_run_changes_nothing_then_the_sync_does_what_it_said(
    upstreams: Upstreams, cli: CliRunner, tmp_path: Path
) -> None:
    # The command works on the wall clock: the invoices' due dates are set around today.
    now = datetime.now(UTC)
    today = now.date()
    db = Database(f"sqlite:///{tmp_path / 'postpay.sqlite'}")
    harness = AccountsHarness(upstreams, InMemoryBus(retry_delays=[0.2]), db).start()
    try:
        late, payer, shut, moved, calm, soon = (harness.add_customer() for _ in range(6))
        late_invoice = harness.add_invoice(late, due=today - timedelta(days=14))  # overdue from today
        payer_invoice = harness.add_invoice(payer, due=today - timedelta(days=30))
        harness.add_invoice(soon, due=today - timedelta(days=13))
        harness.sync(today - timedelta(days=1))  # yesterday's tick: payer is suspended
        assert harness.solusvm_status(payer) == "suspended"
        harness.pay(payer_invoice)
        harness.whmcs.update_client(shut.client_id, status="Closed")
        harness.whmcs.update_client(moved.client_id, email=f"new-{moved.email}")
        harness.clock.set(now)

        before = quiet(upstreams, harness)
        calls_before = upstreams.whmcs.calls.snapshot()
        output = postpay(cli, "accounts", "sync", "--dry-run")
        assert everything(upstreams, harness) == before, "a dry run changes nothing, in the simulators or postpay"
        written = {
            action
            for action, n in upstreams.whmcs.calls.snapshot().items()
            if action in WHMCS_WRITES and n != calls_before.get(action, 0)
        }
        assert written == set()

        def line(member: Any) -> str:
            return next(text for text in output.splitlines() if text.startswith(f"client {member.client_id} "))

        assert f"active → suspended: invoice #{late_invoice} is 14 days past its due date" in line(late)
        assert f"invoice #{late_invoice} becomes overdue" in output
        assert "suspended → active: no postpay invoice is unpaid 14 days after its due date" in line(payer)
        assert f"invoice #{payer_invoice} is no longer overdue (Paid)" in output
        assert "active → locked: the WHMCS client is Closed" in line(shut)
        assert f"email {moved.email} → new-{moved.email}" in output
        assert "active, unchanged" in line(calm) and "active, unchanged" in line(soon)
        assert "Summary: 1 email to update, 1 to lock, 1 to reactivate, 1 to suspend, 2 unchanged" in output

        narrowed = postpay(cli, "accounts", "sync", "--dry-run", "--client", str(late.client_id))
        assert f"client {late.client_id} " in narrowed and f"client {calm.client_id} " not in narrowed
        refused = cli.invoke(app, ["accounts", "sync", "--dry-run", "--client", "999999"])
        assert refused.exit_code != 0 and "not enrolled in SolusVM 2: client 999999" in refused.output

        # Now for real: the command queues a sync in the scheduler's outbox, the harness relays it.
        assert "queued in the scheduler's outbox" in postpay(cli, "accounts", "sync")
        harness.runtime.relay.wake()
        harness.wait_checked(now)
        assert [harness.solusvm_status(m) for m in (late, payer, shut, moved, calm, soon)] == [
            "suspended",
            "active",
            "locked",
            "active",
            "active",
            "active",
        ]
        assert harness.solusvm_user(moved).email == f"new-{moved.email}"
        listed = postpay(cli, "accounts", "list", "--status", "suspended")
        assert late.email in listed and f"#{late_invoice}" in listed and calm.email not in listed
    finally:
        harness.stop()
        db.dispose()
