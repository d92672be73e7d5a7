"""The operators' audit log: who did what, to what, when, why, and how it went. Rows are only added."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from postpay.operators.schema import audit


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str
    outcome: str
    detail: str | None
    ip_address: str | None


def record_action(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str,
    reason: str,
    now: datetime,
    outcome: str = "done",
    detail: str | None = None,
    ip_address: str | None = None,
) -> None:
    session.execute(
        audit.insert().values(
            at=now,
            actor=actor[:200],
            action=action[:64],
            target=target[:500],
            reason=reason,
            outcome=outcome[:16],
            detail=detail,
            ip_address=ip_address[:45] if ip_address else None,
        )
    )


def latest(session: Session, limit: int = 200) -> list[AuditEntry]:
    rows = session.execute(select(audit).order_by(audit.c.id.desc()).limit(limit))
    return [AuditEntry(*(getattr(row, name) for name in AuditEntry.__dataclass_fields__)) for row in rows]


def failed_logins_since(session: Session, since: datetime, *, username: str, ip_address: str | None) -> int:
    """Failed logins for this username or from this address since ``since`` (the login rate limit)."""
    who = audit.c.target == username[:500]
    if ip_address:
        who = or_(who, audit.c.ip_address == ip_address[:45])
    query = (
        select(func.count())
        .select_from(audit)
        .where(audit.c.action == "login", audit.c.outcome == "failed", audit.c.at >= since, who)
    )
    return int(session.execute(query).scalar_one())
