"""SolusVM 2's answer for a period, in the terms of postpay's events (pure)."""

from __future__ import annotations

from shared.events.billing import VmUsage
from shared.upstream.solusvm_models import PeriodUsage, ServerUsage

# Names are informational on the invoice; a longer one must not stop a customer's billing.
MAX_NAME = 200


def vm_usage(server: ServerUsage) -> VmUsage:
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
    )


def vm_usages(usage: PeriodUsage) -> tuple[VmUsage, ...]:
    """One entry per VM that ran in the window, ordered by server id as SolusVM 2 lists them."""
    return tuple(vm_usage(server) for server in sorted(usage.servers, key=lambda s: s.id))
