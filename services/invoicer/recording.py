"""What commits with a created invoice: its ledger row, its lines' provenance and, for a direct invoice,
the supersession of a hold nobody decided on (with its audit line).

Every invoice writes these in the handler's transaction, beside its inbox row and its ``InvoiceCreated``
in the outbox. Through SQLAlchemy they were four statements (the provenance an executemany, which
psycopg sends as a pipeline of its own), and their execution layer cost more CPU than the database's
work: about a sixth of the invoicer's CPU per invoice in a close's profile. On PostgreSQL they are now
one statement on the driver, data-modifying CTEs on four different tables (so none needs to see
another's effect); the lines travel as one JSON text, so the statement's text is the same for every invoice
and the driver prepares it once per connection. On SQLite they stay separate statements, the same
writes (``tests/integration/test_invoicer_recording.py`` checks both give the same rows).
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.invoicer import holds_store, provenance, store
from services.invoicer.holding import ACTOR
from services.invoicer.invoice_document import InvoiceDraft
from services.invoicer.pricing import PricedUsage
from shared.db import dialect_name, first_row_on_driver, require_aware
from shared.events.base import Envelope
from shared.outbox import Outbox

# Each line column that varies per line, with its type. The lines travel as one JSON text (an array of
# objects, read by ``json_to_recordset``): twelve array parameters cost psycopg more CPU to dump (its
# list dumper is Python, per array and per element) than the whole rest of the statement; one string
# is dumped as it is. Amounts go as decimal text, which ``numeric`` reads exactly.
_LINE_COLUMNS = (
    ("position", "integer"),
    ("description", "text"),
    ("server_id", "bigint"),
    ("vm_name", "text"),
    ("plan_name", "text"),
    ("hours", "bigint"),
    ("tokens_per_hour", "bigint"),
    ("tokens_per_month", "bigint"),
    ("tokens", "bigint"),
    ("capped", "boolean"),
    ("unrounded", "text"),
    ("amount", "numeric"),
)
_LINE_NAMES = ", ".join(name for name, _ in _LINE_COLUMNS)
_LINE_RECORD = ", ".join(f"{name} {kind}" for name, kind in _LINE_COLUMNS)

_RECORD_SQL = f"""
WITH recorded AS (
    UPDATE {store.ledger.name}
    SET status = '{store.INVOICED}', invoice_id = %(invoice_id)s, currency = %(currency)s, total = %(total)s,
        line_count = %(line_count)s, due_date = %(due_date)s, updated_at = %(now)s, uncertain_since = NULL
    WHERE whmcs_client_id = %(client_id)s AND period = %(period)s
), lines AS (
    INSERT INTO {provenance.lines.name} (invoice_id, whmcs_client_id, period, run_key, currency, minor_units,
        token_price, recorded_at, {_LINE_NAMES})
    SELECT %(invoice_id)s, %(client_id)s, %(period)s, %(run_key)s, %(line_currency)s, %(minor_units)s,
        %(token_price)s, %(now)s, {", ".join(f"line.{name}" for name, _ in _LINE_COLUMNS)}
    FROM json_to_recordset(%(lines)s::json) AS line({_LINE_RECORD})
    ON CONFLICT (invoice_id, position) DO NOTHING
), superseded AS (
    UPDATE {holds_store.holds.name}
    SET status = '{holds_store.SUPERSEDED}', decided_by = %(actor)s, decision_reason = %(why)s,
        decided_at = %(now)s, updated_at = %(now)s
    WHERE %(supersede)s AND whmcs_client_id = %(client_id)s AND period = %(period)s
        AND status IN ({", ".join(f"'{status}'" for status in holds_store.WAITING)})
    RETURNING period, whmcs_client_id
){{announced}}
INSERT INTO {holds_store.audit.name} (period, whmcs_client_id, action, actor, reason, at)
SELECT period, whmcs_client_id, 'superseded', %(actor)s, %(why)s, %(now)s FROM superseded
"""


def record_created(
    session: Session | Connection,
    draft: InvoiceDraft,
    invoice_id: int,
    priced: PricedUsage | None,
    now: datetime,
    *,
    supersede: str | None,
    outbox: Outbox | None = None,
    created: Envelope[Any] | None = None,
) -> None:
    """Record WHMCS invoice ``invoice_id``, made from ``draft``: the ledger row, the lines' provenance
    (when ``priced`` is known) and, with ``supersede`` (why), a waiting hold of the (client, period);
    with ``outbox``, its ``created`` event (``ctx.emitted``) in that outbox, as one more part of the
    statement on PostgreSQL."""
    client_id, period = draft.client_id, draft.period.key
    if not isinstance(session, Connection) and dialect_name(session) != "postgresql":
        # SQLite: the handler's transaction is always a Session there (``ctx.writer``).
        if priced is not None:
            provenance.record(session, draft, priced, invoice_id, now)
        _record_invoice(session, draft, invoice_id, now)
        if supersede is not None and holds_store.decide(
            session, client_id, period, holds_store.SUPERSEDED, actor=ACTOR, reason=supersede, now=now
        ):
            holds_store.record(session, period, client_id, "superseded", ACTOR, supersede, now)
        if outbox is not None and created is not None:
            outbox.add_all(session, [created])
        return
    lines = provenance.rows(draft, priced, invoice_id, now) if priced is not None else []
    parameters: dict[str, Any] = {
        "client_id": client_id,
        "period": period,
        "run_key": draft.run_key,
        "invoice_id": invoice_id,
        "currency": draft.currency,
        "total": draft.total,
        "line_count": len(draft.lines),
        "due_date": draft.due_date,
        "now": require_aware(now),
        "line_currency": priced.tariff.currency if priced is not None else None,
        "minor_units": priced.tariff.minor_units if priced is not None else 0,
        "token_price": format(priced.tariff.token_price, "f") if priced is not None else None,
        "supersede": supersede is not None,
        "actor": ACTOR,
        "why": supersede or "",
    }
    parameters["lines"] = json.dumps([_line_object(line) for line in lines], separators=(",", ":"))
    if outbox is None or created is None:
        first_row_on_driver(session, _record_sql(None), parameters)
        return
    parameters.update(outbox.part_parameters(created))
    first_row_on_driver(session, _record_sql(outbox.insert_one_part), parameters)
    outbox.written(session)


@functools.cache
def _record_sql(insert_one_part: str | None) -> str:
    """``_RECORD_SQL``, with the event's outbox row as one more part when there is one: a statement and a
    round trip fewer per invoice than the outbox's own insert after it."""
    return _RECORD_SQL.replace("{announced}", f", announced AS ({insert_one_part})" if insert_one_part else "")


def _line_object(row: dict[str, Any]) -> dict[str, Any]:
    line = {name: row.get(name) for name, _ in _LINE_COLUMNS}
    amount: Decimal = row["amount"]
    line["amount"] = format(amount, "f")  # exact, as numeric text (never a JSON float)
    return line


def _record_invoice(session: Session, draft: InvoiceDraft, invoice_id: int, now: datetime) -> None:
    store.record_invoice(
        session,
        draft.client_id,
        draft.period.key,
        invoice_id=invoice_id,
        currency=draft.currency,
        total=draft.total,
        line_count=len(draft.lines),
        due_date=draft.due_date,
        now=now,
    )
