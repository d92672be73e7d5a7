"""The support desk's look-ups against a real month close (in-process bus, SQLite, the simulators):
every invoice line traced to its usage, price and rounding; importing an existing customer (and refusing
a date that would bill a month twice); and commands against a missing database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postpay.bootstrap import SERVICES, service_builder
from postpay.cli import app
from postpay.operators.schema import console_definition
from services.signup import public as signup
from services.usage_collector import public as collector
from shared import migrations
from shared.bus.memory import InMemoryBus
from shared.bus.topology import Naming
from shared.clock import ManualClock
from shared.db import Database
from shared.dependencies import Dependencies
from tests.support.billing import PRICES, BillingHarness, VmHistory, expected_lines
from tests.support.bus_helpers import wait_until
from tests.support.system import SOLUSVM_TOKEN, Upstreams

PERIOD = "2026-10"
NOW = datetime(2026, 11, 1, 0, 20, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[BillingHarness, Upstreams, Database]]:
    url = f"sqlite:///{tmp_path / 'postpay.sqlite'}"
    db = Database(url)
    deps = Dependencies(whmcs=None, solusvm=None, mailer=None)
    for name in SERVICES:
        migrations.upgrade(db, service_builder(name)(deps))
    migrations.upgrade(db, console_definition())
    with Upstreams(now=NOW) as upstreams:
        for name, value in {
            "POSTPAY_DATABASE_URL": url,
            "POSTPAY_SOLUSVM_URL": upstreams.solusvm_url,
            "POSTPAY_SOLUSVM_API_TOKEN": SOLUSVM_TOKEN,
            "POSTPAY_WHMCS_URL": upstreams.whmcs.url,
            "POSTPAY_WHMCS_IDENTIFIER": upstreams.whmcs.identifier,
            "POSTPAY_WHMCS_SECRET": upstreams.whmcs.secret,
            "POSTPAY_TOKEN_PRICES": json.dumps({k: str(v) for k, v in PRICES.items()}),
            "COLUMNS": "200",
        }.items():
            monkeypatch.setenv(name, value)
        harness = BillingHarness(
            upstreams, InMemoryBus(retry_delays=[0.2], naming=Naming("t")), db, clock=ManualClock(NOW)
        ).start(background=True)
        try:
            yield harness, upstreams, db
        finally:
            harness.stop()
            db.dispose()


def run(*args: str) -> object:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_every_invoice_line_is_traced_to_its_usage_price_and_rounding(world: tuple) -> None:
    harness, upstreams, db = world
    start = harness.period(PERIOD).starts_at
    capped = harness.add_plan("capped", 40, 1000)  # 31 h × 40 = 1240 > 1000: the cap applies
    hourly = harness.add_plan("hourly", 7, 5000)
    customer = harness.add_customer(
        "GBP",
        [
            VmHistory("db", capped, [(start, start + timedelta(hours=31))]),
            VmHistory("web", hourly, [(start, start + timedelta(minutes=121))]),
        ],
    )
    harness.enroll([customer])
    harness.close(PERIOD)
    harness.wait_settled(PERIOD, 1)
    (invoice,) = harness.invoices_of(customer.client_id)
    expected = expected_lines(customer, harness.period(PERIOD), PRICES["GBP"], now=NOW)

    shown = run("invoices", "show", str(invoice.id), "--json")
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    assert detail["ledger"]["run_key"] == f"postpay:{customer.client_id}:{PERIOD}"
    assert detail["whmcs_status"] == "Unpaid"
    lines = detail["lines"]
    assert [line["server_id"] for line in lines] == [line.server_id for line in expected]
    for line, oracle in zip(lines, expected):
        assert line["hours"] == oracle.hours and line["tokens"] == oracle.tokens
        assert Decimal(line["amount"]) == oracle.amount
        unrounded = PRICES["GBP"] * oracle.tokens
        assert Decimal(line["unrounded"]) == unrounded and Decimal(line["token_price"]) == PRICES["GBP"]
        assert Decimal(line["rounding"]) == oracle.amount - unrounded
    assert [line["capped"] for line in lines] == [True, False]

    listed = json.loads(run("invoices", "list", "--period", PERIOD, "--json").output)
    assert [(e["whmcs_client_id"], e["invoice_id"], e["status"]) for e in listed] == [
        (customer.client_id, invoice.id, "invoiced")
    ]
    periods = json.loads(run("periods", "list", "--json").output)
    october = next(p for p in periods if p["key"] == PERIOD)
    assert october["state"] == "closed" and october["status"]["invoiced"] == 1


def test_importing_refuses_a_mid_month_date_then_enrols_from_the_month_given(world: tuple) -> None:
    harness, upstreams, db = world
    existing = harness.add_customer("USD")
    args = [
        "customers",
        "import",
        "--client",
        str(existing.client_id),
        "--solusvm-user",
        existing.email,
        "--reason",
        "moved from the old billing",
        "--by",
        "ops-ada",
    ]
    refused = run(*args, "--from", "2026-11-15")
    assert refused.exit_code == 1 and "inside a month" in refused.output
    with db.transaction() as session:
        assert signup.signup_by_client(session, existing.client_id) is None

    done = run(*args, "--from", "2026-12")
    assert done.exit_code == 0, done.output
    # The whole system now (signup relays the import, the provisioner ties the user, the collector enrols).
    harness.stop()
    system = upstreams.system(harness.bus, db, clock=ManualClock(NOW))
    runtime = system.runtime()
    runtime.start(background=False)
    try:
        wait_until(
            lambda: existing.client_id in harness.enrolled_client_ids(), timeout=30, what="imported customer enrolled"
        )
    finally:
        runtime.stop()
    with db.transaction() as session:
        billed = collector.customer(session, existing.client_id)
        (consent,) = signup.consents_of(session, whmcs_client_id=existing.client_id)
    assert billed is not None and billed.enrolled_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert billed.solusvm_user_id == existing.solusvm_user_id
    assert consent.kind == "imported_by_operator" and "ops-ada" in consent.url
    assert not any(harness.bus.parking_lot().queues().values()), harness.bus.parking_lot().queues()

    again = run(*args, "--from", "2026-12")
    assert again.exit_code == 1 and "already a postpay customer" in again.output


def test_a_month_never_closed_says_so_and_how_to_close_it(world: tuple) -> None:
    result = run("period", "status", "2026-09")
    assert result.exit_code == 0, result.output
    assert "never been closed" in result.output and "postpay close-period 2026-09" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["invoices", "list"],
        ["customers", "list"],
        ["periods", "list"],
        ["period", "status", "2026-10"],
        ["consents", "list"],
        ["operators", "list"],
    ],
)
def test_a_missing_database_is_named_with_what_to_run_and_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    missing = tmp_path / "nowhere" / "postpay.sqlite"
    monkeypatch.setenv("POSTPAY_DATABASE_URL", f"sqlite:///{missing}")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert str(missing) in result.output and "postpay db upgrade" in result.output
    assert "Traceback" not in result.output and not missing.exists()


def test_an_unmigrated_database_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty.sqlite"
    Database(f"sqlite:///{empty}").ping()
    monkeypatch.setenv("POSTPAY_DATABASE_URL", f"sqlite:///{empty}")
    result = CliRunner().invoke(app, ["close-period", "2026-10"])
    assert result.exit_code == 2 and "not migrated" in result.output and "postpay db upgrade" in result.output
