"""The invoicer killed (SIGKILL) after WHMCS created the invoice and before the invoicer committed:
after a restart the client still has exactly one invoice, and it is the one on record."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Subscription
from shared.db import Database
from shared.events.base import parse_envelope
from shared.events.billing import InvoiceCreated, UsageCollected, window_fields
from tests.support.billing import PRICES, BillingHarness, VmHistory
from tests.support.bus_helpers import publish, wait_until
from tests.support.system import Upstreams
from tests.support.usage import vm_usage

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 1, 0, 15, tzinfo=UTC)

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]


class InvoicerProcess:
    def __init__(
        self, bus: RabbitBus, db: Database, upstreams: Upstreams, log: Path, pause_marker: Path | None = None
    ) -> None:
        self.command = [
            sys.executable,
            "-m",
            "tests.support.billing_consumer",
            "--amqp",
            bus.url,
            "--database",
            db.url,
            "--namespace",
            bus.naming.namespace,
            "--whmcs-url",
            upstreams.whmcs.url,
            "--whmcs-identifier",
            upstreams.whmcs.identifier,
            "--whmcs-secret",
            upstreams.whmcs.secret,
            "--token-prices",
            json.dumps({code: str(price) for code, price in PRICES.items()}),
        ]
        if db.schema:
            self.command += ["--schema", db.schema]
        if pause_marker is not None:
            self.command += ["--pause-after-create", str(pause_marker)]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> InvoicerProcess:
        output = self.log.open("ab")
        self.process = subprocess.Popen(self.command, cwd=ROOT, stdout=output, stderr=output)
        return self

    def signal(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


# A queue of InvoiceCreated that nothing consumes here (the provisioner's and the signup's are not declared
# by the billing services alone): what the invoicer announced, read back at the end.
ANNOUNCED = Subscription("probe", "invoice_created", (InvoiceCreated,), lambda event, ctx: None)


def queued_events(bus: RabbitBus, queue: str) -> list:
    """Take every message waiting in ``queue`` (where nothing consumes in this test)."""
    envelopes = []
    with bus.connection() as connection:
        channel = bus.open_channel(connection)
        while (message := channel.basic_get(bus.naming.queue(queue), no_ack=True)) is not None:
            envelopes.append(parse_envelope(message.body))
    return envelopes


def test_invoicer_killed_between_the_whmcs_reply_and_its_commit_still_makes_one_invoice(
    rabbit_bus: RabbitBus, postgres_database: Database, tmp_path: Path
) -> None:
    with Upstreams(now=NOW) as upstreams:
        harness = BillingHarness(upstreams, rabbit_bus, postgres_database)
        harness.runtime.declare()
        rabbit_bus.declare([ANNOUNCED])
        plan = harness.add_plan("S", 7, 5000)
        period = harness.period("2026-10")
        customer = harness.add_customer("EUR", [VmHistory("web", plan, [(period.starts_at - timedelta(days=2), None)])])
        vm = customer.vms[0]
        usage = UsageCollected(
            **window_fields(period),
            whmcs_client_id=customer.client_id,
            solusvm_user_id=customer.solusvm_user_id,
            vms=(
                vm_usage(vm.server_id, 744, name="web", plan_id=plan.id),  # 5,000 tokens: the month's cap
            ),
            total_tokens=5000,
        )
        marker = tmp_path / "invoice-created"
        doomed = InvoicerProcess(rabbit_bus, postgres_database, upstreams, tmp_path / "invoicer.log", marker).start()
        restarted = InvoicerProcess(rabbit_bus, postgres_database, upstreams, tmp_path / "invoicer.log")
        try:
            publish(rabbit_bus, usage)
            wait_until(marker.exists, timeout=30, what="WHMCS answered CreateInvoice")
            assert doomed.signal(signal.SIGKILL) == -signal.SIGKILL
            created = int(marker.read_text())

            # The invoice exists in WHMCS; the invoicer's ledger still says "pending".
            assert [i.id for i in harness.invoices_of(customer.client_id)] == [created]
            pending = harness.ledger("2026-10")[customer.client_id]
            assert (pending.status, pending.attempts, pending.invoice_id) == ("pending", 1, None)

            restarted.start()
            entry = wait_until(
                lambda: (e := harness.ledger("2026-10")[customer.client_id]).status == "invoiced" and e,
                timeout=60,
                what="the redelivered usage settled",
            )
            assert restarted.signal(signal.SIGTERM) == 0
        finally:
            doomed.stop()
            restarted.stop()

        invoices = harness.invoices_of(customer.client_id)
        assert [i.id for i in invoices] == [created], "no second invoice"
        assert upstreams.whmcs.calls["CreateInvoice"] == 1
        assert (entry.invoice_id, entry.attempts, entry.total) == (created, 2, invoices[0].subtotal)
        announced = [e.payload for e in queued_events(rabbit_bus, ANNOUNCED.queue)]
        assert [(type(e), e.invoice_id, e.total) for e in announced] == [
            (InvoiceCreated, created, invoices[0].subtotal)
        ]
