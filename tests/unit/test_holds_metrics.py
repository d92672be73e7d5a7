"""What waits for an operator is on the invoicer's /metrics, read from its tables at each scrape, so a
decision made in another process (``postpay holds``, the console) shows at the next scrape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from postpay.bootstrap import service_builder
from postpay.ops.holds import release
from services.invoicer import holds_store
from services.invoicer import store as ledger
from services.invoicer.metrics import WAITING_HOLDS
from services.invoicer.public import tables
from shared import migrations
from shared.db import Database
from shared.dependencies import Dependencies
from shared.metrics import REGISTRY
from shared.periods import BillingPeriod
from shared.upstream.whmcs_models import InvoiceLine

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'invoicer.sqlite'}")
    migrations.upgrade(database, service_builder("invoicer")(Dependencies(whmcs=None, solusvm=None, mailer=None)))
    yield database
    WAITING_HOLDS.unwatch(database)
    database.dispose()


def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        for sample in family.samples:
            if sample.name.startswith(("postpay_invoice_hold", "postpay_billing_periods_paused_active")):
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def keep(db: Database, client_id: int, status: str, at: datetime) -> None:
    with db.transaction() as session:
        ledger.settle(session, client_id, "2026-10", f"postpay:{client_id}:2026-10", status, at, fence=None)
        holds_store.keep(
            session,
            client_id,
            BillingPeriod.parse("2026-10"),
            status,
            reasons=(),
            currency="USD",
            lines=[InvoiceLine("web", Decimal("1.00"))],
            now=at,
        )


def test_waiting_holds_their_age_and_paused_months_follow_the_tables(db: Database) -> None:
    assert not scraped(), "nothing is exported until an invoicer runs"
    WAITING_HOLDS.watch(db)
    assert scraped() == {
        ("postpay_invoice_holds_waiting", (("status", "held"),)): 0.0,
        ("postpay_invoice_holds_waiting", (("status", "paused"),)): 0.0,
        ("postpay_billing_periods_paused_active", ()): 0.0,
    }
    oldest = NOW - timedelta(hours=30)
    keep(db, 1, holds_store.HELD, oldest)
    keep(db, 2, holds_store.HELD, NOW)
    keep(db, 3, holds_store.PAUSED, NOW)
    with db.transaction() as session:
        holds_store.pause(session, "2026-10", held=2, seen=3, now=NOW)
    found = scraped()
    assert found[("postpay_invoice_holds_waiting", (("status", "held"),))] == 2
    assert found[("postpay_invoice_holds_waiting", (("status", "paused"),))] == 1
    assert found[("postpay_invoice_hold_oldest_waiting_timestamp_seconds", (("status", "held"),))] == oldest.timestamp()
    assert found[("postpay_billing_periods_paused_active", ())] == 1

    # An operator's decision, made elsewhere, shows at the next scrape.
    release(db, tables.outbox, 1, "2026-10", actor="ada", reason="checked", now=NOW)
    found = scraped()
    assert found[("postpay_invoice_holds_waiting", (("status", "held"),))] == 1
    assert found[("postpay_invoice_hold_oldest_waiting_timestamp_seconds", (("status", "held"),))] == NOW.timestamp()


def test_a_database_that_does_not_answer_costs_the_scrape_nothing_else(db: Database, tmp_path: Path) -> None:
    broken = Database(f"sqlite:///{tmp_path / 'missing' / 'nothing.sqlite'}")
    WAITING_HOLDS.watch(broken)
    try:
        text = generate_latest(REGISTRY).decode()
    finally:
        WAITING_HOLDS.unwatch(broken)
        broken.dispose()
    assert "postpay_invoice_holds_waiting{" not in text and "postpay_messages_handled_total" in text
