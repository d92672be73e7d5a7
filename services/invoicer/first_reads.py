"""What ``create_invoice`` reads before it calls WHMCS, in one statement instead of three.

The ledger row of (client, period), the client's largest invoice of an earlier period per currency
and the period's pause are independent reads; each was a round trip of its own (with the driver's
and SQLAlchemy's work per statement), on every invoice. Outer-joined to one constant row they come
back together: one row per earlier currency (one row with NULLs when there is none), the ledger and
pause columns repeated on each. The statement is built once, with bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, literal, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.invoicer import holds_store, store
from shared.db import dialect_name, rows_on_driver


@dataclass(frozen=True)
class FirstReads:
    entry: store.LedgerEntry | None
    earlier: dict[str, Decimal]
    pause: holds_store.Pause | None


_LEDGER = store.ledger
_PAUSES = holds_store.pauses
_ENTRY_FIELDS = tuple(store.LedgerEntry.__dataclass_fields__)
_PAUSE_FIELDS = tuple(holds_store.Pause.__dataclass_fields__)

_one = select(literal(1).label("one")).subquery("one")
_entry = select(_LEDGER).where(
    _LEDGER.c.whmcs_client_id == bindparam("p_client_id"), _LEDGER.c.period == bindparam("p_period")
)
_entry_sub = _entry.subquery("entry")
_earlier = store.LARGEST_EARLIER.subquery("earlier")
_pause = select(_PAUSES).where(_PAUSES.c.period == bindparam("p_period")).subquery("pause")

_READ = (
    select(
        *(_entry_sub.c[name].label(f"l_{name}") for name in _ENTRY_FIELDS),
        _earlier.c.currency.label("e_currency"),
        _earlier.c.largest.label("e_total"),
        *(_pause.c[name].label(f"p_{name}") for name in _PAUSE_FIELDS),
    )
    .select_from(_one)
    .outerjoin(_entry_sub, true())
    .outerjoin(_earlier, true())
    .outerjoin(_pause, true())
)


def _columns(prefix: str, names: tuple[str, ...]) -> str:
    return ", ".join(f"{prefix}.{name} AS {prefix}_{name}" for name in names)


# ``_READ`` on PostgreSQL as plain SQL for the driver (every invoice runs it; SQLAlchemy's execution
# layer and row processing cost more CPU than the driver's round trip).
_READ_SQL = (
    f"SELECT {_columns('l', _ENTRY_FIELDS)}, e.currency AS e_currency, e.largest AS e_total, "
    f"{_columns('p', _PAUSE_FIELDS)} FROM (SELECT 1) AS one "
    f"LEFT OUTER JOIN (SELECT * FROM {_LEDGER.name} WHERE whmcs_client_id = %(p_client_id)s "
    "AND period = %(p_period)s) AS l ON true "
    f"LEFT OUTER JOIN (SELECT currency, max(total) AS largest FROM {_LEDGER.name} "
    f"WHERE whmcs_client_id = %(p_client_id)s AND period < %(p_period)s AND status = '{store.INVOICED}' "
    "GROUP BY currency) AS e ON true "
    f"LEFT OUTER JOIN (SELECT * FROM {_PAUSES.name} WHERE period = %(p_period)s) AS p ON true"
)
# Timestamps as ``UtcTimestamp`` gives them (the driver gives them in the session's zone).
_UTC_FIELDS = frozenset(
    {f"l_{name}" for name in ("updated_at", "uncertain_since")} | {f"p_{name}" for name in ("paused_at", "resumed_at")}
)


def read(session: Session | Connection, client_id: int, period: str) -> FirstReads:
    parameters = {"p_client_id": client_id, "p_period": period}
    if dialect_name(session) == "postgresql":
        rows: list[Any] = _utc_rows_on_driver(session, _READ_SQL, parameters)
    else:
        rows = list(session.execute(_READ, parameters).all())
    first = rows[0]  # the constant row: always there
    return FirstReads(
        entry=_entry_of(first),
        earlier={row.e_currency: Decimal(row.e_total) for row in rows if row.e_currency and row.e_total is not None},
        pause=_pause_of(first),
    )


def _entry_of(row: Any) -> store.LedgerEntry | None:
    if row.l_whmcs_client_id is None:  # part of the primary key: NULL only when there is no row
        return None
    return store.LedgerEntry(**{name: getattr(row, f"l_{name}") for name in _ENTRY_FIELDS})


def _pause_of(row: Any) -> holds_store.Pause | None:
    if row.p_period is None:
        return None
    return holds_store.Pause(**{name: getattr(row, f"p_{name}") for name in _PAUSE_FIELDS})


def _utc_rows_on_driver(session: Session | Connection, statement: str, parameters: dict[str, Any]) -> list[Any]:
    # The driver gives timestamps in the session's zone; UtcTimestamp reads them in UTC.
    return [
        row._replace(**{name: getattr(row, name).astimezone(UTC) for name in _UTC_FIELDS if getattr(row, name)})
        for row in rows_on_driver(session, statement, parameters)
    ]
