"""A report made of several queries reads one moment: ``period status`` polled while invoices are being
written once counted an invoice its totals had not seen yet (CI, a 200-customer close: 118 invoiced,
totals short by two invoices), because PostgreSQL's default isolation reads each statement afresh."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

import postpay.ops.status as status_module
from postpay.bootstrap import service_builder
from postpay.ops.status import period_status
from services.invoicer import store as invoicer_store
from shared.db import Database
from shared.dependencies import Dependencies
from shared.periods import BillingPeriod

pytestmark = pytest.mark.postgres

PERIOD = BillingPeriod.parse("2026-10", "UTC")
NOW = datetime(2026, 11, 1, 0, 20, tzinfo=UTC)


def _create_tables(db: Database) -> None:
    deps = Dependencies(whmcs=None, solusvm=None, mailer=None)
    for name in ("usage_collector", "invoicer"):
        service_builder(name)(deps).metadata.create_all(db.engine)


def _invoice(db: Database, client_id: int, total: str) -> None:
    with db.transaction() as session:
        session.execute(
            invoicer_store.ledger.insert().values(
                whmcs_client_id=client_id,
                period=PERIOD.key,
                run_key=f"run-{client_id}",
                status=invoicer_store.INVOICED,
                attempts=1,
                invoice_id=1000 + client_id,
                currency="EUR",
                total=Decimal(total),
                line_count=1,
                created_at=NOW,
                updated_at=NOW,
            )
        )


def test_a_snapshot_reads_one_moment_and_writes_nothing(postgres_database: Database) -> None:
    _create_tables(postgres_database)
    _invoice(postgres_database, 1, "10.00")
    count = select(func.count()).select_from(invoicer_store.ledger)
    with postgres_database.snapshot() as session:
        assert session.execute(count).scalar_one() == 1
        _invoice(postgres_database, 2, "5.00")  # committed by someone else meanwhile
        assert session.execute(count).scalar_one() == 1
    with postgres_database.snapshot() as session:
        assert session.execute(count).scalar_one() == 2
        with pytest.raises(DBAPIError, match="read-only"):
            session.execute(invoicer_store.ledger.delete())


def test_period_status_counts_and_totals_agree_while_invoices_commit(
    postgres_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create_tables(postgres_database)
    _invoice(postgres_database, 1, "10.00")
    totals_then_counts = status_module.invoicer.invoiced_totals

    def totals_then_another_invoice(session: Any, period: str) -> dict[str, Decimal]:
        totals = totals_then_counts(session, period)
        _invoice(postgres_database, 2, "5.00")  # lands between the totals and the counts
        return totals

    monkeypatch.setattr(status_module.invoicer, "invoiced_totals", totals_then_another_invoice)
    status = period_status(postgres_database, PERIOD)
    assert (status.invoiced, status.invoiced_totals) == (1, {"EUR": Decimal("10.00")})
    monkeypatch.undo()
    later = period_status(postgres_database, PERIOD)
    assert (later.invoiced, later.invoiced_totals) == (2, {"EUR": Decimal("15.00")})
