"""Absurd amounts are held, not invoiced: a plan at a billion tokens an hour is held with its reasons
(not in WHMCS, no email); ``postpay holds release`` invoices it once, as computed; ``reject`` records
why and invoices nothing; the K× rule with and without an earlier invoice; too many holds pause the
rest of the period until ``postpay holds resume`` (RabbitMQ + PostgreSQL, the real CLI)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

from postpay.cli import app
from services.invoicer import holds_store
from services.invoicer.settings import InvoicerSettings
from shared.bus.rabbit import RabbitBus
from shared.clock import ManualClock
from shared.db import Database
from shared.events.billing import UsageCollected
from shared.events.metering import CoverageGap, MeteringProvenance
from tests.support.billing import PRICES, BillingHarness, VmHistory
from tests.support.bus_helpers import metric, publish, wait_until
from tests.support.system import SOLUSVM_TOKEN, Upstreams
from tests.support.usage import vm_usage

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]

PERIOD = "2025-10"
NOW = datetime(2025, 11, 1, 0, 20, tzinfo=UTC)
START = datetime(2025, 10, 1, tzinfo=UTC)
RELEASE_QUEUE = "invoicer.release_invoice"


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with Upstreams(now=NOW) as running:
        yield running


@pytest.fixture
def postpay(
    upstreams: Upstreams,
    rabbit_bus: RabbitBus,
    postgres_database: Database,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., str]:
    """The ``postpay`` command on the test's broker, schema and simulators; fails on a non-zero exit
    unless ``exit_code`` says otherwise."""
    for name, value in {
        "POSTPAY_DATABASE_URL": f"{postgres_url}?options={quote(f'-csearch_path={postgres_database.schema}')}",
        "POSTPAY_AMQP_URL": rabbit_bus.url,
        "POSTPAY_BUS_NAMESPACE": rabbit_bus.naming.namespace,
        "POSTPAY_SOLUSVM_URL": upstreams.solusvm_url,
        "POSTPAY_SOLUSVM_API_TOKEN": SOLUSVM_TOKEN,
        "POSTPAY_WHMCS_URL": upstreams.whmcs.url,
        "POSTPAY_TOKEN_PRICES": '{"USD": "0.0010", "EUR": "0.0009", "GBP": "0.00083"}',
        "COLUMNS": "250",
    }.items():
        monkeypatch.setenv(name, value)

    def run(*args: str, exit_code: int = 0) -> str:
        result = CliRunner().invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == exit_code, result.output
        return result.output

    return run


def hold_total(db: Database, client_id: int) -> Decimal | None:
    with db.transaction() as session:
        hold = holds_store.get(session, client_id, PERIOD)
    return hold.total if hold is not None else None


def created_emails(upstreams: Upstreams) -> list[object]:
    return [e for e in upstreams.whmcs.state.emails if e.messagename == "Invoice Created"]


def test_an_absurd_invoice_is_held_then_released_once_as_computed(
    upstreams: Upstreams, rabbit_bus: RabbitBus, postgres_database: Database, postpay: Callable[..., str]
) -> None:
    harness = BillingHarness(upstreams, rabbit_bus, postgres_database, clock=ManualClock(NOW)).start()
    try:
        absurd = harness.add_plan("Broken", 1_000_000_000, 10**15)
        normal = harness.add_plan("S", 7, 5000)
        victim = harness.add_customer("USD", [VmHistory("web", absurd, [(START - timedelta(days=3), None)])])
        fine = harness.add_customer("USD", [VmHistory("web", normal, [(START - timedelta(days=3), None)])])
        harness.enroll([victim, fine])
        held_before = metric("postpay_invoices_held_total", reason="total-over-ceiling")
        harness.close(PERIOD)
        harness.wait_settled(PERIOD, 1)
        wait_until(lambda: harness.status(PERIOD).held == 1, what="the absurd invoice held")

        # Held: not in WHMCS, no email, the reasons kept, a metric and the status say so.
        assert harness.invoices_of(victim.client_id) == []
        assert upstreams.whmcs.calls["CreateInvoice"] == 1  # the fine customer's only
        assert len(created_emails(upstreams)) == 1
        assert harness.ledger(PERIOD)[victim.client_id].status == "held"
        assert metric("postpay_invoices_held_total", reason="total-over-ceiling") == held_before + 1
        status = harness.status(PERIOD)
        assert (status.invoiced, status.held, status.complete) == (1, 1, True)

        listed = postpay("holds", "list")
        row = next(line for line in listed.splitlines() if f" {victim.client_id} " in line)
        assert "held" in row and "USD 744000000.00" in row and "total-over-ceiling" in row
        shown = postpay("holds", "show", str(victim.client_id), PERIOD)
        assert "above the ceiling of 10000.0000" in shown and "744000000000 tokens" in shown
        preview = postpay("replay", "--period", PERIOD, "--dry-run")
        assert f"client {victim.client_id}: would hold an invoice of USD 744000000.00" in preview
        assert "period status" not in preview
        period_status = postpay("period", "status", PERIOD)
        assert any(line.split() == ["held", "for", "an", "operator", "1"] for line in period_status.splitlines())

        released = metric("postpay_messages_handled_total", handler=RELEASE_QUEUE, outcome="done")
        output = postpay(
            "holds", "release", str(victim.client_id), PERIOD, "--reason", "plan confirmed by sales", "--by", "alice"
        )
        # Published by the command, or already by the running invoicer's relay: either way it is on its way.
        assert f"released: client {victim.client_id}, {PERIOD}, USD 744000000.00;" in output
        wait_until(
            lambda: metric("postpay_messages_handled_total", handler=RELEASE_QUEUE, outcome="done") > released,
            what="the release handled",
        )
        harness.wait_settled(PERIOD, 2)
        again = postpay("holds", "release", str(victim.client_id), PERIOD, "--reason", "twice?", exit_code=2)
        assert "is released by alice (plan confirmed by sales), not waiting" in again

        # A replay afterwards finds the invoice on record.
        handled = metric("postpay_messages_handled_total", handler="invoicer.create_invoice", outcome="done")
        harness.replay(PERIOD)
        wait_until(
            lambda: (
                metric("postpay_messages_handled_total", handler="invoicer.create_invoice", outcome="done")
                >= handled + 2
            ),
            what="the replay priced",
        )
    finally:
        harness.stop()

    (invoice,) = harness.invoices_of(victim.client_id)
    assert invoice.subtotal == Decimal("744000000.00")
    assert [item.amount for item in invoice.items] == [Decimal("744000000.00")]
    assert upstreams.whmcs.calls["CreateInvoice"] == 2
    entry = harness.ledger(PERIOD)[victim.client_id]
    assert (entry.status, entry.invoice_id, entry.attempts) == ("invoiced", invoice.id, 1)
    history = postpay("holds", "show", str(victim.client_id), PERIOD)
    assert "released" in history and "alice" in history and "plan confirmed by sales" in history
    assert "held" in history and "invoicer" in history


def test_a_rejected_hold_is_never_invoiced_and_says_why(
    upstreams: Upstreams, rabbit_bus: RabbitBus, postgres_database: Database, postpay: Callable[..., str]
) -> None:
    harness = BillingHarness(upstreams, rabbit_bus, postgres_database, clock=ManualClock(NOW)).start()
    try:
        absurd = harness.add_plan("Broken", 1_000_000_000, 10**15)
        victim = harness.add_customer("EUR", [VmHistory("web", absurd, [(START, START + timedelta(hours=30))])])
        harness.enroll([victim])
        harness.close(PERIOD)
        wait_until(lambda: harness.status(PERIOD).held == 1, what="held")
        postpay(
            "holds", "reject", str(victim.client_id), PERIOD, "--reason", "SolusVM plan misconfigured", "--by", "bob"
        )
        assert postpay("holds", "release", str(victim.client_id), PERIOD, "--reason", "oops", exit_code=2)

        handled = metric("postpay_messages_handled_total", handler="invoicer.create_invoice", outcome="done")
        harness.replay(PERIOD)
        wait_until(
            lambda: (
                metric("postpay_messages_handled_total", handler="invoicer.create_invoice", outcome="done") > handled
            ),
            what="the replay handled",
        )
    finally:
        harness.stop()
    assert harness.invoices_of(victim.client_id) == [] and upstreams.whmcs.calls["CreateInvoice"] == 0
    assert harness.ledger(PERIOD)[victim.client_id].status == "rejected"
    with postgres_database.transaction() as session:
        hold = holds_store.get(session, victim.client_id, PERIOD)
    assert hold is not None
    assert (hold.status, hold.decided_by, hold.decision_reason) == ("rejected", "bob", "SolusVM plan misconfigured")
    assert harness.status(PERIOD).rejected == 1
    assert "0 invoice(s)" in postpay("holds", "list")  # decided: no longer waiting
    assert "bob: SolusVM plan misconfigured" in postpay("holds", "list", "--all")


def test_growth_is_held_only_against_an_earlier_invoice(
    upstreams: Upstreams, rabbit_bus: RabbitBus, postgres_database: Database
) -> None:
    harness = BillingHarness(upstreams, rabbit_bus, postgres_database, clock=ManualClock(NOW)).start()
    september = START - timedelta(days=30)
    try:
        plan = harness.add_plan("S", 7, 5000)
        # 10 hours in September (0.07), the whole of October (5.00): 71 times more.
        jumped = harness.add_customer(
            "USD", [VmHistory("web", plan, [(september, september + timedelta(hours=10)), (START, None)])]
        )
        # 300 hours in September (2.10), then 5.00: under 5 times.
        steady = harness.add_customer(
            "USD", [VmHistory("web", plan, [(september, september + timedelta(hours=300)), (START, None)])]
        )
        # No earlier invoice: nothing to compare with.
        new = harness.add_customer("USD", [VmHistory("web", plan, [(START, None)])])
        harness.enroll([jumped, steady, new])
        harness.close("2025-09")
        harness.wait_settled("2025-09", 2)
        harness.close(PERIOD)
        harness.wait_settled(PERIOD, 2)
        wait_until(lambda: harness.status(PERIOD).held == 1, what="the jump held")
    finally:
        harness.stop()
    assert harness.ledger(PERIOD)[jumped.client_id].status == "held"
    assert [i.subtotal for i in harness.invoices_of(jumped.client_id)] == [Decimal("0.07")]
    assert [i.subtotal for i in harness.invoices_of(steady.client_id)] == [Decimal("2.10"), Decimal("5.00")]
    assert [i.subtotal for i in harness.invoices_of(new.client_id)] == [Decimal("5.00")]
    with postgres_database.transaction() as session:
        hold = holds_store.get(session, jumped.client_id, PERIOD)
    assert hold is not None and [r.code for r in hold.reasons] == ["growth"]
    assert "more than 5× the client's largest earlier invoice (0.07" in hold.reasons[0].text


def test_too_many_holds_pause_the_rest_of_the_period_until_an_operator_resumes_it(
    upstreams: Upstreams, rabbit_bus: RabbitBus, postgres_database: Database, postpay: Callable[..., str]
) -> None:
    settings = InvoicerSettings(token_prices=PRICES, invoice_hold_pause_minimum=2, invoice_hold_pause_share=0.5)
    harness = BillingHarness(
        upstreams, rabbit_bus, postgres_database, clock=ManualClock(NOW), invoicer=settings
    ).start()
    try:
        absurd = harness.add_plan("Broken", 1_000_000_000, 10**15)
        plan = harness.add_plan("S", 7, 5000)
        broken = [harness.add_customer("USD", [VmHistory("web", absurd, [(START, None)])]) for _ in range(2)]
        harness.enroll(broken)
        paused_before = metric("postpay_billing_periods_paused_total")
        harness.close(PERIOD)
        wait_until(lambda: harness.status(PERIOD).held == 2, what="both held")
        assert wait_until(lambda: harness.status(PERIOD).pause, what="the period paused").active
        assert metric("postpay_billing_periods_paused_total") == paused_before + 1

        # Customers priced after the pause are kept, not invoiced, however sane their invoices.
        rest = [harness.add_customer("EUR", [VmHistory("web", plan, [(START, None)])]) for _ in range(3)]
        harness.enroll(rest)
        harness.replay(PERIOD, [c.client_id for c in rest])
        wait_until(lambda: harness.status(PERIOD).paused == 3, what="the rest paused")
        assert all(harness.invoices_of(c.client_id) == [] for c in [*broken, *rest])
        assert upstreams.whmcs.calls["CreateInvoice"] == 0

        status = postpay("period", "status", PERIOD)
        assert f"{PERIOD} is paused since" in status and "2 of 2 customers seen were held" in status
        assert any(line.split() == ["paused", "3"] for line in status.splitlines()), status
        listed = postpay("holds", "list", "--period", PERIOD)
        assert f"{PERIOD} is paused" in listed and "5 invoice(s)" in listed

        resumed = metric("postpay_messages_handled_total", handler=RELEASE_QUEUE, outcome="done")
        output = postpay("holds", "resume", PERIOD, "--reason", "broken plan found, others are fine", "--by", "carol")
        assert "resumed: 3 paused invoice(s) released" in output
        wait_until(
            lambda: metric("postpay_messages_handled_total", handler=RELEASE_QUEUE, outcome="done") >= resumed + 3,
            what="the paused invoices released",
        )
        harness.wait_settled(PERIOD, 3)
        assert "was resumed already: 0 paused invoice(s) released" in postpay(
            "holds", "resume", PERIOD, "--reason", "again"
        )

        # The period stays resumed; a replay changes nothing for anyone.
        handled = metric("postpay_messages_handled_total", handler="invoicer.create_invoice", outcome="done")
        harness.replay(PERIOD)
        wait_until(
            lambda: (
                metric("postpay_messages_handled_total", handler="invoicer.create_invoice", outcome="done")
                >= handled + 5
            ),
            what="the replay priced",
        )
    finally:
        harness.stop()
    assert [len(harness.invoices_of(c.client_id)) for c in rest] == [1, 1, 1]
    assert all(harness.invoices_of(c.client_id) == [] for c in broken)
    assert upstreams.whmcs.calls["CreateInvoice"] == 3
    status = harness.status(PERIOD)
    assert (status.invoiced, status.held, status.paused) == (3, 2, 0)
    assert status.pause is not None and status.pause.resumed_by == "carol"


def test_a_released_invoice_carries_the_notes_and_line_provenance_of_a_direct_one(
    upstreams: Upstreams, rabbit_bus: RabbitBus, postgres_database: Database, postpay: Callable[..., str]
) -> None:
    """An absurd invoice priced from the usage endpoint, and one from the meter (with a gap), are held
    and released: each WHMCS invoice has the notes a direct one would have (the meter's sentence too)
    and ``postpay invoices show`` gives every line's provenance."""
    harness = BillingHarness(upstreams, rabbit_bus, postgres_database, clock=ManualClock(NOW)).start()
    try:
        absurd = harness.add_plan("Broken", 1_000_000_000, 10**15)
        endpoint = harness.add_customer("USD", [VmHistory("web", absurd, [(START - timedelta(days=3), None)])])
        metered = harness.add_customer("EUR", [VmHistory("db", absurd, [(START, START + timedelta(hours=30))])])
        harness.enroll([endpoint, metered])
        harness.close(PERIOD)
        wait_until(lambda: harness.status(PERIOD).held == 2, what="both held")
        # The meter's usage of the second customer (a replay from the meter) replaces its computation.
        window = harness.period(PERIOD)
        gap = CoverageGap(starts_at=START + timedelta(days=3), ends_at=START + timedelta(days=3, hours=2), billed=True)
        metering = MeteringProvenance(
            estimate="observed", gap_policy="bill", observed_until=window.ends_at, gaps=(gap,)
        )
        (server,) = metered.vms
        # The meter saw one hour less than the endpoint (its bound, docs/usage-sources.md).
        vm = vm_usage(
            server.server_id,
            29,
            name="db",
            plan_id=absurd.id,
            plan_name="Broken",
            tokens_per_hour=10**9,
            tokens_per_month=10**15,
        )
        assert vm.tokens == 29 * 10**9
        publish(
            rabbit_bus,
            UsageCollected(
                period=PERIOD,
                starts_at=window.starts_at,
                ends_at=window.ends_at,
                timezone=window.timezone,
                whmcs_client_id=metered.client_id,
                solusvm_user_id=metered.solusvm_user_id,
                vms=(vm,),
                total_tokens=vm.tokens,
                trigger="replay",
                source="meter",
                metering=metering,
            ),
        )
        wait_until(
            lambda: hold_total(postgres_database, metered.client_id) == Decimal("26100000.00"),
            what="the metered usage held",
        )

        released = metric("postpay_messages_handled_total", handler=RELEASE_QUEUE, outcome="done")
        for customer in (endpoint, metered):
            postpay("holds", "release", str(customer.client_id), PERIOD, "--reason", "checked", "--by", "alice")
        wait_until(
            lambda: metric("postpay_messages_handled_total", handler=RELEASE_QUEUE, outcome="done") >= released + 2,
            what="both releases handled",
        )
        harness.wait_settled(PERIOD, 2)
    finally:
        harness.stop()

    span = f"SolusVM 2 usage for {PERIOD} (2025-10-01 to 2025-10-31, UTC)."
    (endpoint_invoice,) = harness.invoices_of(endpoint.client_id)
    assert endpoint_invoice.notes == f"{span} postpay run key: [postpay:{endpoint.client_id}:{PERIOD}]"
    (metered_invoice,) = harness.invoices_of(metered.client_id)
    assert metered_invoice.notes == (
        f"{span} Usage metered by postpay from SolusVM 2's server list and activity log (observed running time), "
        "observed until 2025-11-01T00:00:00Z. Meter gaps: 2025-10-04T00:00:00Z to 2025-10-04T02:00:00Z "
        f"(billed through). postpay run key: [postpay:{metered.client_id}:{PERIOD}]"
    )

    shown = json.loads(postpay("invoices", "show", str(metered_invoice.id), "--offline", "--json"))
    assert shown["provenance_note"] is None
    (line,) = shown["lines"]
    assert (line["vm_name"], line["server_id"], line["hours"], line["tokens_per_hour"], line["tokens"]) == (
        "db",
        server.server_id,
        29,
        10**9,
        29 * 10**9,
    )
    assert (line["capped"], line["token_price"], line["unrounded"], Decimal(line["amount"])) == (
        False,
        "0.0009",
        "26100000.0000",
        Decimal("26100000.00"),
    )
    text = postpay("invoices", "show", str(endpoint_invoice.id), "--offline")
    assert "no provenance recorded" not in text
    row = next(row for row in text.splitlines() if "web (#" in row)
    assert "744" in row and "1000000000" in row and "0.0010" in row and "USD 744000000.00" in row, row
