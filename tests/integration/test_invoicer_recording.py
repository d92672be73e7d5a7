"""What commits with a created invoice (``recording.record_created``: one statement on PostgreSQL,
separate ones on SQLite) writes the same rows either way: the ledger row, each line's provenance, and
the supersession of a waiting hold with its audit line, only when asked."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from services.invoicer import holds_store, provenance, recording, store
from services.invoicer.invoice_document import draft_invoice
from services.invoicer.pricing import Tariff, price_usage
from shared.db import Database
from shared.events.billing import VmUsage
from shared.periods import BillingPeriod
from tests.support.usage import vm_usage

NOW = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)
PERIOD = BillingPeriod.parse("2026-02")
TARIFF = Tariff("EUR", Decimal("0.00091"), 2)


def _vm(server_id: int, hours: int, tokens: int, name: str = "web") -> VmUsage:
    return vm_usage(server_id, hours, tokens=tokens, tokens_per_hour=10, name=f"{name}-{server_id}", plan_name="Small")


def _draft(client_id: int, vms: list[VmUsage]) -> Any:
    priced = price_usage(vms, TARIFF)
    draft = draft_invoice(client_id, PERIOD, priced, now=NOW, due_days=14, taxed=False)
    return draft, priced


def _claimed(db: Database, client_id: int) -> None:
    with db.transaction() as session:
        store.claim(session, client_id, PERIOD.key, f"run-{client_id}", NOW, quiet=NOW - NOW)


def _hold(db: Database, client_id: int, status: str = holds_store.HELD) -> None:
    draft, priced = _draft(client_id, [_vm(1, 10, 100)])
    with db.transaction() as session:
        holds_store.keep(
            session,
            client_id,
            PERIOD,
            status,
            reasons=(),
            currency=draft.currency,
            lines=draft.lines,
            now=NOW,
            priced=priced,
        )


def _written(db: Database, client_id: int, invoice_id: int) -> dict[str, Any]:
    with db.transaction() as session:
        entry = store.entry(session, client_id, PERIOD.key)
        hold = holds_store.get(session, client_id, PERIOD.key)
        history = holds_store.history(session, PERIOD.key, client_id)
        return {
            "entry": entry and {k: v for k, v in entry.__dict__.items() if k != "updated_at"},
            "updated_at": entry and entry.updated_at,
            "lines": provenance.lines_of(session, invoice_id),
            "hold": hold and (hold.status, hold.decided_by, hold.decision_reason),
            "history": [(row.action, row.actor, row.reason, row.at) for row in history],
        }


def _record(db: Database, client_id: int, invoice_id: int, *, priced: bool, supersede: str | None) -> Any:
    draft, pricing = _draft(
        client_id, [_vm(11, 672, 5000), _vm(12, 3, 30, name="büro 'quoted' \"dq\" \\ back"), _vm(13, 0, 0)]
    )
    with db.transaction() as session:
        recording.record_created(session, draft, invoice_id, pricing if priced else None, NOW, supersede=supersede)
    return draft


def test_an_invoice_with_a_waiting_hold_supersedes_it(database: Database) -> None:
    store.tables.metadata.create_all(database.engine)
    _claimed(database, 7)
    _hold(database, 7)
    draft = _record(database, 7, 700, priced=True, supersede="a later computation of the period was invoiced")
    written = _written(database, 7, 700)
    assert written["entry"] == {
        "whmcs_client_id": 7,
        "period": PERIOD.key,
        "run_key": "run-7",
        "status": store.INVOICED,
        "attempts": 1,
        "invoice_id": 700,
        "currency": "EUR",
        "total": draft.total,
        "line_count": 3,
        "due_date": draft.due_date,
        "uncertain_since": None,
    }
    assert written["updated_at"] == NOW
    lines = written["lines"]
    assert [line.position for line in lines] == [1, 2, 3]
    assert [line.amount for line in lines] == [line.amount for line in draft.lines]
    assert lines[0].capped is True and lines[0].tokens == 5000 and lines[0].hours == 672
    assert lines[1].vm_name == "büro 'quoted' \"dq\" \\ back-12" and lines[1].capped is False
    assert lines[1].token_price == Decimal("0.00091") and lines[1].unrounded == Decimal("0.02730")
    assert lines[2].tokens == 0 and lines[2].amount == Decimal("0.00")
    assert all(line.currency == "EUR" and line.minor_units == 2 and line.run_key == draft.run_key for line in lines)
    assert written["hold"] == (holds_store.SUPERSEDED, "invoicer", "a later computation of the period was invoiced")
    assert written["history"] == [("superseded", "invoicer", "a later computation of the period was invoiced", NOW)]


def test_without_supersede_a_hold_stays_and_without_pricing_no_lines(database: Database) -> None:
    store.tables.metadata.create_all(database.engine)
    _claimed(database, 8)
    _hold(database, 8, holds_store.PAUSED)
    _record(database, 8, 800, priced=False, supersede=None)
    written = _written(database, 8, 800)
    assert written["entry"]["status"] == store.INVOICED and written["entry"]["invoice_id"] == 800
    assert written["lines"] == []
    assert written["hold"] == (holds_store.PAUSED, None, None)
    assert written["history"] == []


def test_no_hold_nothing_superseded_and_a_second_record_keeps_the_first_lines(database: Database) -> None:
    store.tables.metadata.create_all(database.engine)
    _claimed(database, 9)
    _record(database, 9, 900, priced=True, supersede="why")
    first = _written(database, 9, 900)
    _record(database, 9, 900, priced=True, supersede="why")  # a redelivery that got this far: lines stay
    again = _written(database, 9, 900)
    assert first["hold"] is None and first["history"] == []
    assert len(first["lines"]) == 3 and again["lines"] == first["lines"]
    assert again["entry"] == first["entry"]
    assert isinstance(first["entry"]["due_date"], date)


def test_the_invoice_created_event_goes_into_the_outbox_with_the_invoice(database: Database) -> None:
    """With the outbox given, the event's row is written with the invoice (on PostgreSQL in the same
    statement) and the outbox is marked written, exactly once however often the record is repeated."""
    from sqlalchemy import select

    from shared.events.base import new_envelope
    from shared.events.billing import InvoiceCreated

    store.tables.metadata.create_all(database.engine)
    outbox = store.tables.outbox
    _claimed(database, 10)
    draft, pricing = _draft(10, [_vm(11, 672, 5000)])
    created = new_envelope(
        InvoiceCreated(
            whmcs_client_id=10,
            period=PERIOD.key,
            invoice_id=1000,
            currency="EUR",
            total=draft.total,
            line_count=1,
            due_date=draft.due_date,
            run_key=draft.run_key,
        ),
        producer="invoicer",
    )
    for _ in range(2):  # a redelivery that got this far: still one row
        with database.transaction() as session:
            recording.record_created(
                session, draft, 1000, pricing, NOW, supersede="why", outbox=outbox, created=created
            )
    with database.transaction() as session:
        rows = session.execute(select(outbox.table.c.event_id, outbox.table.c.event_type)).all()
    assert [(row.event_id, row.event_type) for row in rows] == [(created.event_id, "InvoiceCreated")]
    assert _written(database, 10, 1000)["entry"]["status"] == store.INVOICED
