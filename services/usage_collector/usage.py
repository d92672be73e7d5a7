"""SolusVM 2's answer for a period, in the terms of postpay's events (pure)."""

from __future__ import annotations

from datetime import datetime

from shared.events.billing import VmUsage
from shared.upstream.solusvm_models import PeriodUsage, ServerUsage

# Names are informational on the invoice; a longer one must not stop a customer's billing.
MAX_NAME = 200


def lifetime_in(server: ServerUsage, starts_at: datetime, ends_at: datetime) -> tuple[datetime, datetime] | None:
    """The part of the window the server existed in: §8 tells when it was created and deleted, not when
    it was stopped, so this is the closest the endpoint comes to "the dates it ran"."""
    start = max(server.created_at, starts_at)
    end = min(server.deleted_at or ends_at, ends_at)
    return (start, end) if end >= start else None


def vm_usage(server: ServerUsage, starts_at: datetime | None = None, ends_at: datetime | None = None) -> VmUsage:
    ran = lifetime_in(server, starts_at, ends_at) if starts_at is not None and ends_at is not None else None
    return VmUsage(
        server_id=server.id,
        uuid=server.uuid[:64],
        name=server.name[:MAX_NAME],
        plan_id=server.plan.id,
        plan_name=server.plan.name[:MAX_NAME],
        hours=server.hours,
        tokens_per_hour=server.plan.tokens_per_hour,
        tokens_per_month=server.plan.tokens_per_month,
        tokens=server.tokens,
        created_at=server.created_at,
        deleted_at=server.deleted_at,
        ran_from=ran[0] if ran else None,
        ran_until=ran[1] if ran else None,
    )


def vm_usages(usage: PeriodUsage) -> tuple[VmUsage, ...]:
    """One entry per VM that ran in the window, ordered by server id as SolusVM 2 lists them, each with
    the part of the window it existed in."""
    return tuple(vm_usage(server, usage.start, usage.end) for server in sorted(usage.servers, key=lambda s: s.id))
