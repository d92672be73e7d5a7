"""The invoicer's handlers on fakes: UsageCollected → one WHMCS invoice per (client, period), priced
from the usage's tokens; nothing to bill; a lost CreateInvoice answer settled without a second invoice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from postpay.ops.holds import release
from services.invoicer import store
from services.invoicer.settings import InvoicerSettings
from shared.events.billing import UsageCollected, VmUsage, window_fields
from shared.periods import BillingPeriod
from shared.upstream.errors import UpstreamOutcomeUnknown, UpstreamValidationError
from tests.fakes.service import ServiceUnderTest
from tests.support.usage import vm_usage

PERIOD = BillingPeriod.parse("2026-10", "UTC")
PRICES = {"USD": Decimal("0.0010"), "EUR": Decimal("0.0009"), "GBP": Decimal("0.00083")}


@pytest.fixture
def invoicer() -> Iterator[ServiceUnderTest]:
    with ServiceUnderTest("invoicer", settings=[InvoicerSettings(token_prices=PRICES)]) as service:
        yield service


def vm(server_id: int, hours: int, tokens_per_hour: int = 7, cap: int = 5000) -> VmUsage:
    return vm_usage(
        server_id,
        hours,
        tokens_per_hour=tokens_per_hour,
        tokens_per_month=cap,
        name=f"vm-{server_id}",
        created_at=PERIOD.starts_at - timedelta(days=3),
    )


def usage(client_id: int, *vms: VmUsage) -> UsageCollected:
    return UsageCollected(
        **window_fields(PERIOD),
        whmcs_client_id=client_id,
        solusvm_user_id=client_id + 1,
        vms=vms,
        total_tokens=sum(v.tokens for v in vms),
    )


def ledger(service: ServiceUnderTest) -> list[tuple[int, str, str]]:
    with service.db.transaction() as session:
        rows = session.execute(select(store.ledger.c.whmcs_client_id, store.ledger.c.period, store.ledger.c.status))
        return [tuple(row) for row in rows]


def test_usage_becomes_one_invoice_priced_per_line_in_the_clients_currency(invoicer: ServiceUnderTest) -> None:
    client = invoicer.whmcs.add_existing_client("ada@example.com", currency="EUR")
    # 100 h × 7 = 700 tokens × 0.0009 = 0.63; 744 h × 7 capped at 5000 × 0.0009 = 4.50; 3 h × 5 × 0.0009 = 0.0135 → 0.01
    outcome = invoicer.deliver("create_invoice", usage(client.id, vm(11, 100), vm(12, 744), vm(13, 3, 5)))

    assert outcome.kind == "done", outcome
    (invoice,) = invoicer.whmcs.invoices_of(client.id)
    assert [line.amount for line in invoice.lines] == [Decimal("0.63"), Decimal("4.50"), Decimal("0.01")]
    assert all(f"(#{n}," in line.description for n, line in zip((11, 12, 13), invoice.lines))
    assert "[postpay:1:2026-10]" in invoice.notes and invoice.currency_code == "EUR"
    (created,) = invoicer.published("InvoiceCreated")
    assert (created.whmcs_client_id, created.period, created.invoice_id) == (client.id, "2026-10", invoice.id)
    assert (created.currency, created.total, created.line_count) == ("EUR", Decimal("5.14"), 3)
    assert ledger(invoicer) == [(client.id, "2026-10", store.INVOICED)]


def test_the_same_usage_again_or_replayed_makes_no_second_invoice(invoicer: ServiceUnderTest) -> None:
    client = invoicer.whmcs.add_existing_client("ada@example.com")
    first = invoicer.envelope(usage(client.id, vm(11, 10)))
    assert invoicer.deliver("create_invoice", first).kind == "done"
    assert invoicer.deliver("create_invoice", first).kind == "duplicate"
    # A replay is a new event about the same (client, period): the ledger says it is invoiced.
    assert invoicer.deliver("create_invoice", usage(client.id, vm(11, 10))).kind == "done"

    assert len(invoicer.whmcs.invoices_of(client.id)) == 1
    assert invoicer.whmcs.calls.count("create_invoice") == 1
    assert len(invoicer.published("InvoiceCreated")) == 1


def test_no_tokens_is_nothing_to_bill_and_no_invoice(invoicer: ServiceUnderTest) -> None:
    client = invoicer.whmcs.add_existing_client("idle@example.com")
    assert invoicer.deliver("create_invoice", usage(client.id)).kind == "done"

    assert invoicer.whmcs.invoices == {} and "create_invoice" not in invoicer.whmcs.calls
    assert invoicer.published() == []  # the ledger row is the record: period status reads it
    assert ledger(invoicer) == [(client.id, "2026-10", store.NOTHING_TO_BILL)]


def test_a_client_whmcs_does_not_know_is_parked(invoicer: ServiceUnderTest) -> None:
    outcome = invoicer.deliver("create_invoice", usage(404, vm(11, 10)))
    assert (outcome.kind, outcome.reason) == ("park", "rejected")
    assert "404" in outcome.error and invoicer.published() == []


def test_a_lost_create_answer_waits_then_finds_the_invoice_instead_of_making_another(
    invoicer: ServiceUnderTest,
) -> None:
    client = invoicer.whmcs.add_existing_client("ada@example.com")
    invoicer.whmcs.fail("create_invoice", UpstreamOutcomeUnknown("timed out", upstream="whmcs"), after=True)
    event = invoicer.envelope(usage(client.id, vm(11, 10)))

    waiting = invoicer.deliver("create_invoice", event)
    assert waiting.kind == "retry" and waiting.wait is not None and waiting.wait > 0
    assert ledger(invoicer) == [(client.id, "2026-10", store.UNCERTAIN)]
    assert invoicer.deliver("create_invoice", event, attempt=1).kind == "retry"  # still inside the quiet time

    invoicer.clock.advance(seconds=waiting.wait + 1)
    assert invoicer.deliver("create_invoice", event, attempt=2).kind == "done"
    (invoice,) = invoicer.whmcs.invoices_of(client.id)  # the one the lost call made, found by its marker
    assert invoicer.whmcs.calls.count("create_invoice") == 1
    (created,) = invoicer.published("InvoiceCreated")
    assert created.invoice_id == invoice.id and ledger(invoicer) == [(client.id, "2026-10", store.INVOICED)]


def test_a_refused_invoice_is_marked_failed_and_parked(invoicer: ServiceUnderTest) -> None:
    client = invoicer.whmcs.add_existing_client("ada@example.com")
    invoicer.whmcs.fail("create_invoice", UpstreamValidationError("bad line", upstream="whmcs"))
    event = invoicer.envelope(usage(client.id, vm(11, 10)))

    refused = invoicer.deliver("create_invoice", event)
    assert refused.kind == "park" and "bad line" in refused.error  # a refusal is permanent: parked for a person
    assert ledger(invoicer) == [(client.id, "2026-10", store.FAILED)]
    assert invoicer.whmcs.invoices == {} and invoicer.published() == []


def test_an_invoice_above_the_hold_limit_waits_for_an_operator_and_is_invoiced_as_computed_once_released() -> None:
    settings = InvoicerSettings(token_prices=PRICES, invoice_hold_above={"USD": Decimal("4.00")})
    with ServiceUnderTest("invoicer", settings=[settings]) as invoicer:
        client = invoicer.whmcs.add_existing_client("big@example.com")
        assert invoicer.deliver("create_invoice", usage(client.id, vm(11, 744))).kind == "done"  # 5000 tokens: 5.00
        assert invoicer.whmcs.invoices == {} and invoicer.published("InvoiceCreated") == []
        assert ledger(invoicer) == [(client.id, "2026-10", store.HELD)]

        invoicer.clock.advance(days=2)
        release(
            invoicer.db,
            invoicer.service.outbox,
            client.id,
            "2026-10",
            actor="ops",
            reason="checked",
            now=invoicer.clock(),
        )
        (released,) = [e for e in invoicer.bus_events() if e.event_type == "InvoiceReleased"]
        assert invoicer.deliver("release_invoice", released).kind == "done"

        (invoice,) = invoicer.whmcs.invoices_of(client.id)
        assert [line.amount for line in invoice.lines] == [Decimal("5.00")]
        assert invoice.invoice_date == invoicer.clock().date()  # dated the day it is released
        assert [e.invoice_id for e in invoicer.published("InvoiceCreated")] == [invoice.id]
        assert ledger(invoicer) == [(client.id, "2026-10", store.INVOICED)]
