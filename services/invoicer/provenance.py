"""Where every invoice line came from: the usage figures, the price and the rounding that made it.

Written in the same transaction that records the invoice, from the very draft sent to WHMCS, so an
operator asked "why was this line 3.72?" reads the answer instead of recomputing it: the VM, its
hours, tokens per hour and per month, whether the monthly cap applied, the token price, the exact
amount before rounding and what rounding changed. Prices and unrounded amounts are kept as decimal
text: a token price may have more places than a money column holds.

An invoice found by its run key after an interrupted attempt has no rows here: its lines were
priced by the attempt that died, and guessing them again could record a price it did not use.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Integer, String, Table, select
from sqlalchemy.orm import Session

from services.invoicer.invoice_document import InvoiceDraft
from services.invoicer.pricing import PricedUsage
from services.invoicer.store import tables
from shared.db import Amount, UtcTimestamp, dialect_name, insert_on_conflict

lines = Table(
    "invoicer_invoice_lines",
    tables.metadata,
    Column("invoice_id", BigInteger, primary_key=True, autoincrement=False),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("whmcs_client_id", BigInteger, nullable=False, index=True),
    Column("period", String(7), nullable=False, index=True),
    Column("run_key", String(200), nullable=False),
    Column("description", String(1000), nullable=False),
    Column("server_id", BigInteger, nullable=True),
    Column("vm_name", String(200), nullable=True),
    Column("plan_name", String(200), nullable=True),
    Column("hours", BigInteger, nullable=True),
    Column("tokens_per_hour", BigInteger, nullable=True),
    Column("tokens_per_month", BigInteger, nullable=True),
    Column("tokens", BigInteger, nullable=True),
    Column("capped", Boolean, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("token_price", String(50), nullable=True),
    Column("minor_units", Integer, nullable=False),
    Column("unrounded", String(60), nullable=True),
    Column("amount", Amount, nullable=False),
    Column("recorded_at", UtcTimestamp, nullable=False),
)


@dataclass(frozen=True)
class LineProvenance:
    invoice_id: int
    position: int
    whmcs_client_id: int
    period: str
    run_key: str
    description: str
    server_id: int | None
    vm_name: str | None
    plan_name: str | None
    hours: int | None
    tokens_per_hour: int | None
    tokens_per_month: int | None
    tokens: int | None
    capped: bool | None
    currency: str
    token_price: Decimal | None
    minor_units: int
    unrounded: Decimal | None
    amount: Decimal

    @property
    def rounding(self) -> Decimal | None:
        """What rounding to the minor unit added (positive) or removed (negative)."""
        return None if self.unrounded is None else self.amount - self.unrounded


def record(session: Session, draft: InvoiceDraft, priced: PricedUsage, invoice_id: int, now: datetime) -> None:
    """One row per line of ``draft`` (as sent to WHMCS as invoice ``invoice_id``)."""
    session.execute(_record_lines(dialect_name(session)), rows(draft, priced, invoice_id, now))


def rows(draft: InvoiceDraft, priced: PricedUsage, invoice_id: int, now: datetime) -> list[dict[str, Any]]:
    """The rows ``record`` writes, one per line of ``draft``."""
    tariff = priced.tariff
    written = []
    for position, line in enumerate(draft.lines, start=1):
        row = {
            "invoice_id": invoice_id,
            "position": position,
            "whmcs_client_id": draft.client_id,
            "period": draft.period.key,
            "run_key": draft.run_key,
            "description": line.description[:1000],
            "currency": tariff.currency,
            "minor_units": tariff.minor_units,
            "amount": line.amount,
            "token_price": format(tariff.token_price, "f"),
            "recorded_at": now,
        }
        if position <= len(priced.vms):  # a zero invoice's single "no usage" line has no VM behind it
            vm = priced.vms[position - 1].vm
            row.update(
                server_id=vm.server_id,
                vm_name=vm.name,
                plan_name=vm.plan_name,
                hours=vm.hours,
                tokens_per_hour=vm.tokens_per_hour,
                tokens_per_month=vm.tokens_per_month,
                tokens=vm.tokens,
                capped=vm.hours * vm.tokens_per_hour > vm.tokens_per_month,
                unrounded=format(tariff.token_price * vm.tokens, "f"),
            )
        written.append(row)
    return written


@functools.cache
def _record_lines(dialect: str) -> Any:
    """Built once per dialect (every invoice runs it). A redelivery that recorded the invoice already
    wrote these rows: the first record stands."""
    insert = insert_on_conflict(dialect, lines)
    return insert.on_conflict_do_nothing(index_elements=[lines.c.invoice_id, lines.c.position])


def _line(row: object) -> LineProvenance:
    values = {name: getattr(row, name) for name in LineProvenance.__dataclass_fields__}
    for name in ("token_price", "unrounded"):
        values[name] = Decimal(values[name]) if values[name] is not None else None
    return LineProvenance(**values)


def lines_of(session: Session, invoice_id: int) -> list[LineProvenance]:
    query = select(lines).where(lines.c.invoice_id == invoice_id).order_by(lines.c.position)
    return [_line(row) for row in session.execute(query)]
