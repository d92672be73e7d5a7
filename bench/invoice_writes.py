"""The invoicer's writes after CreateInvoice for N invoices, each in its own transaction on PostgreSQL:
the ledger row, three lines' provenance, the hold supersession and the outbox row, through the
statements of whichever tree ``PYTHONPATH`` puts first (one with ``services/invoicer/recording.py``
uses it; one with ``ctx.writer`` writes on a Core connection without a Session, as its handler does).
Meant for callgrind, whose instruction counts do not depend on the machine's load: run it at two N and
divide the difference by the difference of N (docs/benchmarks.md)::

    PYTHONPATH=/tmp/before valgrind --tool=callgrind python bench/invoice_writes.py postgresql://... 150
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import create_engine, text

import shared.db
from services.invoicer import holds_store, provenance, store
from services.invoicer.invoice_document import draft_invoice
from services.invoicer.pricing import Tariff, price_usage
from shared.db import Database
from shared.events.base import new_envelope
from shared.events.billing import InvoiceCreated, VmUsage
from shared.outbox import Outbox
from shared.periods import BillingPeriod

try:
    from services.invoicer import recording
except ImportError:
    recording = None

# A tree with ``ctx.writer`` (``shared.db.dialect_name`` came with it) writes on a Core connection.
on_connection = recording is not None and hasattr(shared.db, "dialect_name")

url, n = sys.argv[1], int(sys.argv[2])
schema = f"mb_{uuid.uuid4().hex[:8]}"
admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
with admin.connect() as c:
    c.execute(text(f'CREATE SCHEMA "{schema}"'))
try:
    db = Database(url, schema=schema, pool_size=2)
    store.tables.metadata.create_all(db.engine)
    outbox = Outbox(store.tables.metadata.tables["invoicer_outbox"], "invoicer")
    now = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    period = BillingPeriod.parse("2026-11")
    tariff = Tariff("EUR", Decimal("0.00091"), 2)
    vms = [
        VmUsage(
            server_id=i,
            name=f"vm-{i}",
            plan_id=1,
            plan_name="S",
            hours=700,
            tokens_per_hour=10,
            tokens_per_month=5000,
            tokens=5000,
        )
        for i in (1, 2, 3)
    ]
    priced = price_usage(vms, tariff)
    with db.transaction() as s:
        for client in range(1, n + 1):
            store.claim(s, client, period.key, f"run-{client}", now, quiet=now - now)
    for client in range(1, n + 1):
        draft = draft_invoice(client, period, priced, now=now, due_days=14, taxed=False)
        envelope = new_envelope(
            InvoiceCreated(
                whmcs_client_id=client,
                period=period.key,
                invoice_id=client,
                currency="EUR",
                total=draft.total,
                line_count=3,
                due_date=draft.due_date,
                run_key=draft.run_key,
            ),
            producer="invoicer",
        )
        if on_connection:
            # As a handler's ``ctx.writer`` writes them: on the transaction's Core connection, no Session.
            with db.connection_transaction() as unit:
                if hasattr(outbox, "insert_one_part"):  # the outbox row as a part of the one statement
                    recording.record_created(
                        unit.connection, draft, client, priced, now, supersede="why", outbox=outbox, created=envelope
                    )
                else:
                    recording.record_created(unit.connection, draft, client, priced, now, supersede="why")
                    outbox.add_all(unit.connection, [envelope])
            continue
        with db.transaction() as s:
            if recording is not None:
                recording.record_created(s, draft, client, priced, now, supersede="why")
            else:
                provenance.record(s, draft, priced, client, now)
                store.record_invoice(
                    s,
                    client,
                    period.key,
                    invoice_id=client,
                    currency="EUR",
                    total=draft.total,
                    line_count=3,
                    due_date=draft.due_date,
                    now=now,
                )
                holds_store.decide(
                    s, client, period.key, holds_store.SUPERSEDED, actor="invoicer", reason="why", now=now
                )
            outbox.add_all(s, [envelope])
    with db.transaction() as s:
        assert s.execute(text("select count(*) from invoicer_invoice_lines")).scalar_one() == 3 * n
    db.dispose()
finally:
    with admin.connect() as c:
        c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
