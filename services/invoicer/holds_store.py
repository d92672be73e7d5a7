"""Invoices held for an operator, periods paused, and every decision about them.

A **hold** keeps the invoice exactly as it was computed (currency, lines, total) with the reasons it
broke a check, so ``postpay holds release`` invoices what was computed and nothing else; and what the
invoice's notes and line provenance are made of (where the usage came from, the pricing of each line),
so the released invoice says and records what a direct one would. A **paused**
invoice passed every check but belongs to a period paused because too many of its customers were held;
it is kept the same way until an operator resumes the period. Every change is written to the audit
table with who made it and why.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, bindparam, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.invoicer.pricing import PricedUsage, PricedVm, Tariff
from services.invoicer.store import tables
from shared.db import Amount, UtcTimestamp, dialect_name, insert_on_conflict, rows_changed
from shared.events.billing import VmUsage
from shared.periods import BillingPeriod
from shared.upstream.whmcs_models import InvoiceLine

HELD = "held"
PAUSED = "paused"
RELEASED = "released"
REJECTED = "rejected"
SUPERSEDED = "superseded"  # a later computation (a replay) replaced it before anyone decided
WAITING = (HELD, PAUSED)

holds = Table(
    "invoicer_holds",
    tables.metadata,
    Column("whmcs_client_id", BigInteger, primary_key=True, autoincrement=False),
    Column("period", String(7), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("reasons", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total", Amount, nullable=False),
    Column("lines", Text, nullable=False),
    # The period's zone and window, so a release writes the same notes and dates as the computation.
    Column("timezone", String(64), nullable=False),
    Column("starts_in", String(64), nullable=True),
    Column("ends_in", String(64), nullable=True),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Column("decided_by", String(200), nullable=True),
    Column("decision_reason", Text, nullable=True),
    Column("decided_at", UtcTimestamp, nullable=True),
    # The usage's provenance sentence (the meter's, with its gaps) and each line's pricing; unset on holds
    # kept before they were stored, which are released without them.
    Column("provenance", Text, nullable=True),
    Column("pricing", Text, nullable=True),
    Index("invoicer_holds_period_status", "period", "status"),
)

pauses = Table(
    "invoicer_period_pauses",
    tables.metadata,
    Column("period", String(7), primary_key=True),
    Column("paused_at", UtcTimestamp, nullable=False),
    Column("held", Integer, nullable=False),
    Column("seen", Integer, nullable=False),
    Column("resumed_at", UtcTimestamp, nullable=True),
    Column("resumed_by", String(200), nullable=True),
    Column("resume_reason", Text, nullable=True),
)

audit = Table(
    "invoicer_hold_audit",
    tables.metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("period", String(7), nullable=False, index=True),
    Column("whmcs_client_id", BigInteger, nullable=True),
    Column("action", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UtcTimestamp, nullable=False),
)


@dataclass(frozen=True)
class Reason:
    code: str
    text: str


@dataclass(frozen=True)
class Hold:
    whmcs_client_id: int
    period: str
    status: str
    reasons: tuple[Reason, ...]
    currency: str
    total: Decimal
    lines: tuple[InvoiceLine, ...]
    billing_period: BillingPeriod
    created_at: datetime
    decided_by: str | None
    decision_reason: str | None
    decided_at: datetime | None
    provenance: str = ""
    priced: PricedUsage | None = None


@dataclass(frozen=True)
class Pause:
    period: str
    paused_at: datetime
    held: int
    seen: int
    resumed_at: datetime | None
    resumed_by: str | None
    resume_reason: str | None

    @property
    def active(self) -> bool:
        return self.resumed_at is None


def _hold(row: Any) -> Hold:
    return Hold(
        whmcs_client_id=row.whmcs_client_id,
        period=row.period,
        status=row.status,
        reasons=tuple(Reason(r["code"], r["text"]) for r in json.loads(row.reasons)),
        currency=row.currency,
        total=row.total,
        lines=tuple(
            InvoiceLine(line["description"], Decimal(line["amount"]), line["taxed"]) for line in json.loads(row.lines)
        ),
        billing_period=BillingPeriod.parse(row.period, row.timezone).between(row.starts_in, row.ends_in),
        created_at=row.created_at,
        decided_by=row.decided_by,
        decision_reason=row.decision_reason,
        decided_at=row.decided_at,
        provenance=row.provenance or "",
        priced=_priced(json.loads(row.pricing)) if row.pricing else None,
    )


def _pricing(priced: PricedUsage) -> dict[str, Any]:
    tariff = priced.tariff
    return {
        "currency": tariff.currency,
        "token_price": format(tariff.token_price, "f"),
        "minor_units": tariff.minor_units,
        "vms": [{"vm": line.vm.model_dump(mode="json"), "amount": format(line.amount, "f")} for line in priced.vms],
    }


def _priced(pricing: dict[str, Any]) -> PricedUsage:
    tariff = Tariff(pricing["currency"], Decimal(pricing["token_price"]), pricing["minor_units"])
    return PricedUsage(
        tariff, tuple(PricedVm(VmUsage.model_validate(line["vm"]), Decimal(line["amount"])) for line in pricing["vms"])
    )


def keep(
    session: Session,
    client_id: int,
    period: BillingPeriod,
    status: str,
    *,
    reasons: Sequence[Reason],
    currency: str,
    lines: Sequence[InvoiceLine],
    now: datetime,
    provenance: str = "",
    priced: PricedUsage | None = None,
) -> None:
    """Keep the computed invoice as held or paused (replacing an earlier computation nobody decided on),
    with what its notes and line provenance are made of."""
    values = {
        "timezone": period.timezone,
        "starts_in": period.starts_in,
        "ends_in": period.ends_in,
        "status": status,
        "reasons": json.dumps([{"code": r.code, "text": r.text} for r in reasons]),
        "currency": currency,
        "total": sum((line.amount for line in lines), Decimal(0)),
        "lines": json.dumps(
            [
                {"description": line.description, "amount": format(line.amount, "f"), "taxed": line.taxed}
                for line in lines
            ]
        ),
        "updated_at": now,
        "decided_by": None,
        "decision_reason": None,
        "decided_at": None,
        "provenance": provenance,
        "pricing": json.dumps(_pricing(priced)) if priced is not None else None,
    }
    statement = insert_on_conflict(session, holds).values(
        whmcs_client_id=client_id, period=period.key, created_at=now, **values
    )
    session.execute(
        statement.on_conflict_do_update(index_elements=[holds.c.whmcs_client_id, holds.c.period], set_=values)
    )


# Statements run for every invoice, built once with bound parameters: building and cache-keying one
# costs more CPU than running it (measured ~0.2-0.3 ms each on the shared benchmark machine).
_HOLD = select(holds).where(
    holds.c.whmcs_client_id == bindparam("p_client_id"), holds.c.period == bindparam("p_period")
)
_HOLD_LOCKED = _HOLD.with_for_update()
_PAUSE = select(pauses).where(pauses.c.period == bindparam("p_period"))
_PAUSE_LOCKED = _PAUSE.with_for_update()
_DECIDE = (
    holds.update()
    .where(
        holds.c.whmcs_client_id == bindparam("p_client_id"),
        holds.c.period == bindparam("p_period"),
        holds.c.status.in_(bindparam("p_from", expanding=True)),
    )
    .values(
        status=bindparam("p_status"),
        decided_by=bindparam("p_actor"),
        decision_reason=bindparam("p_reason"),
        decided_at=bindparam("p_now"),
        updated_at=bindparam("p_now"),
    )
)


def get(session: Session | Connection, client_id: int, period: str, *, lock: bool = False) -> Hold | None:
    query = _HOLD_LOCKED if lock else _HOLD
    row = session.execute(query, {"p_client_id": client_id, "p_period": period}).first()
    return _hold(row) if row is not None else None


def listing(
    session: Session,
    *,
    period: str | None = None,
    statuses: Sequence[str] = WAITING,
    after: tuple[str, int] | None = None,
    limit: int = 500,
) -> list[Hold]:
    """Holds in (period, client) order, ``limit`` at a time after ``after``."""
    query = select(holds).where(holds.c.status.in_(statuses))
    if period is not None:
        query = query.where(holds.c.period == period)
    if after is not None:
        query = query.where(
            (holds.c.period > after[0]) | ((holds.c.period == after[0]) & (holds.c.whmcs_client_id > after[1]))
        )
    query = query.order_by(holds.c.period, holds.c.whmcs_client_id).limit(limit)
    return [_hold(row) for row in session.execute(query)]


def decide(
    session: Session,
    client_id: int,
    period: str,
    status: str,
    *,
    actor: str,
    reason: str,
    now: datetime,
    only_from: Sequence[str] = WAITING,
) -> bool:
    """An operator's decision (released, rejected) or a replay's supersession; False if not waiting."""
    parameters = {
        "p_client_id": client_id,
        "p_period": period,
        "p_from": list(only_from),
        "p_status": status,
        "p_actor": actor,
        "p_reason": reason,
        "p_now": now,
    }
    return bool(rows_changed(session.execute(_DECIDE, parameters)))


def waiting_summary(session: Session) -> dict[str, tuple[int, datetime]]:
    """Status → (how many wait for a decision, since when the oldest), for every period."""
    query = (
        select(holds.c.status, func.count(), func.min(holds.c.created_at))
        .where(holds.c.status.in_(WAITING))
        .group_by(holds.c.status)
    )
    return {status: (int(count), oldest) for status, count, oldest in session.execute(query)}


def count_by_status(session: Session, period: str) -> dict[str, int]:
    query = select(holds.c.status, func.count()).where(holds.c.period == period).group_by(holds.c.status)
    return {status: int(count) for status, count in session.execute(query)}


def record(
    session: Session, period: str, client_id: int | None, action: str, actor: str, reason: str, now: datetime
) -> None:
    """One audit line: who did what to which hold (or period), when, and why."""
    session.execute(
        audit.insert().values(
            period=period, whmcs_client_id=client_id, action=action, actor=actor, reason=reason, at=now
        )
    )


def history(session: Session, period: str, client_id: int | None = None) -> list[Any]:
    query = select(audit).where(audit.c.period == period)
    if client_id is not None:
        query = query.where((audit.c.whmcs_client_id == client_id) | audit.c.whmcs_client_id.is_(None))
    return list(session.execute(query.order_by(audit.c.id)))


def pause(session: Session, period: str, *, held: int, seen: int, now: datetime) -> bool:
    """Pause the period unless it was paused before (a period an operator resumed stays resumed)."""
    statement = insert_on_conflict(session, pauses).values(period=period, paused_at=now, held=held, seen=seen)
    statement = statement.on_conflict_do_nothing(index_elements=[pauses.c.period]).returning(pauses.c.period)
    return session.execute(statement).first() is not None


def pause_of(session: Session, period: str, *, lock: bool = False) -> Pause | None:
    row = session.execute(_PAUSE_LOCKED if lock else _PAUSE, {"p_period": period}).first()
    return Pause(**{name: getattr(row, name) for name in Pause.__dataclass_fields__}) if row is not None else None


def resume(session: Session, period: str, *, actor: str, reason: str, now: datetime) -> bool:
    result = session.execute(
        pauses.update()
        .where(pauses.c.period == period, pauses.c.resumed_at.is_(None))
        .values(resumed_at=now, resumed_by=actor, resume_reason=reason)
    )
    return bool(rows_changed(result))


def active_pauses(session: Session) -> list[Pause]:
    rows = session.execute(select(pauses).where(pauses.c.resumed_at.is_(None)).order_by(pauses.c.period))
    return [Pause(**{name: getattr(row, name) for name in Pause.__dataclass_fields__}) for row in rows]


def serialize_period(session: Session, period: str) -> None:
    """Wait for other transactions counting this period's holds (until this one ends). SQLite has one
    writer at a time already; PostgreSQL takes a transaction-scoped advisory lock on the period."""
    if dialect_name(session) == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"invoicer-holds:{period}"})
