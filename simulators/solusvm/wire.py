"""How records look on the wire: the ``{"data": …}`` envelope, Laravel paging, and each resource."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse

from simulators.solusvm.model import ActivityLog, Plan, Server, User
from simulators.solusvm.state import SimState
from simulators.solusvm.timestamps import format_optional, format_timestamp

T = TypeVar("T")
DEFAULT_PER_PAGE = 15  # Laravel's default page size [I]


def data(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"data": payload}, status_code=status)


def _positive_int(raw: str | None, default: int) -> int:
    # Laravel resolves a missing or invalid page to the default rather than failing the request.
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return value if value >= 1 else default


def paginate(request: Request, items: Sequence[T], render: Callable[[T], dict[str, Any]]) -> JSONResponse:
    """A LengthAwarePaginator resource: ``data`` (one page), full ``links`` and ``meta``.

    Links keep the other query parameters (filters, ``per_page``), as Laravel's ``withQueryString()``.
    """
    page = _positive_int(request.query_params.get("page"), 1)
    per_page = _positive_int(request.query_params.get("per_page"), DEFAULT_PER_PAGE)
    total = len(items)
    last_page = max(1, math.ceil(total / per_page))
    offset = (page - 1) * per_page
    chunk = items[offset : offset + per_page]
    path = str(request.url.replace(query=""))
    kept = [(key, value) for key, value in request.query_params.multi_items() if key != "page"]

    def link(number: int) -> str:
        return f"{path}?{urlencode([*kept, ('page', str(number))])}"

    body = {
        "data": [render(item) for item in chunk],
        "links": {
            "first": link(1),
            "last": link(last_page),
            "prev": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < last_page else None,
        },
        "meta": {
            "current_page": page,
            "from": offset + 1 if chunk else None,
            "last_page": last_page,
            "path": path,
            "per_page": per_page,
            "to": offset + len(chunk) if chunk else None,
            "total": total,
        },
    }
    return JSONResponse(body)


def user_json(state: SimState, user: User) -> dict[str, Any]:
    limit_group = None
    if user.limit_group_id is not None:
        limit_group = {"id": user.limit_group_id, "name": state.limit_groups.get(user.limit_group_id, "")}
    return {
        "id": user.id,
        "email": user.email,
        "status": user.status,
        "roles": [
            {
                "id": role_id,
                "name": state.roles.get(role_id, ""),
                "is_default": role_id == 2,
                "users_count": state.role_user_counts[role_id],
            }
            for role_id in user.roles
        ],
        "billing_user_id": user.billing_user_id,
        "billing_token": user.billing_token,
        "limit_group": limit_group,
        "language_id": user.language_id,
        "is_two_factor_auth_enabled": False,
        "created_at": format_timestamp(user.created_at),
        "updated_at": format_timestamp(user.updated_at),
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "name": plan.name,
        "virtualization_type": plan.virtualization_type,
        "params": {"disk": plan.disk_gib, "ram": plan.ram_mib * 1024 * 1024, "vcpu": plan.vcpu},
        "limits": {"network_total_traffic": {"is_enabled": False, "limit": 0, "unit": "GiB"}},
        "tokens_per_hour": plan.tokens_per_hour,
        "tokens_per_month": plan.tokens_per_month,
        "ip_tokens_per_hour": 0,
        "ip_tokens_per_month": 0,
        "backup_price": 0,
        "is_default": False,
        "is_visible": True,
    }


def server_status(server: Server, now: datetime) -> str:
    """The status at ``now``: a seeded history changes it as the clock moves."""
    if server.deleted_by(now):
        return "not exists"
    return "started" if server.running_at(now) else "stopped"


def server_json(state: SimState, server: Server, now: datetime) -> dict[str, Any]:
    plan = state.plan_at(server, now)
    location = state.locations.get(server.location_id)
    user = state.users.get(server.user_id)
    status = server_status(server, now)
    # A stable, made-up address from the id, so lists look like a real panel's.
    address = f"10.{(server.id >> 16) & 255}.{(server.id >> 8) & 255}.{server.id & 255}"
    return {
        "id": server.id,
        "name": server.name,
        "description": server.description,
        "uuid": server.uuid,
        "virtualization_type": plan.virtualization_type,
        "os_type": "linux",
        "specifications": {"disk": plan.disk_gib, "ram": plan.ram_mib * 1024 * 1024, "vcpu": plan.vcpu},
        "plan": plan_json(plan),
        "status": status,
        "real_status": status,
        "is_suspended": server.is_suspended,
        "is_processing": False,
        "user": user_json(state, user) if user is not None else None,
        "project": {"id": server.user_id, "name": "Default Project"},
        "location": {"id": server.location_id, "name": location.name if location else ""},
        "compute_resource": {"id": server.compute_resource_id, "name": f"cr-{server.compute_resource_id}"},
        "ip_addresses": {"ipv4": [{"id": server.id, "ip": address, "is_primary": True}], "ipv6": []},
        "fqdns": list(server.fqdns),
        "boot_mode": "disk",
        "usage": {"cpu": 0.0, "network": {"incoming": {"value": 0}, "outgoing": {"value": 0}}},
        "created_at": format_timestamp(server.created_at),
        "deleted_at": format_optional(server.deleted_at if server.deleted_by(now) else None),
    }


def activity_log_json(entry: ActivityLog) -> dict[str, Any]:
    """§4.2a's fields; ``user_id`` too, since entries can be filtered by it [I]."""
    return {
        "id": entry.id,
        "event": entry.event,
        "user_id": entry.user_id,
        "user_email": entry.user_email,
        "data": dict(entry.data),
        "created_at": format_timestamp(entry.created_at),
    }


def task_json(task_id: int, action: str, server: Server) -> dict[str, Any]:
    return {
        "id": task_id,
        "compute_resource_id": server.compute_resource_id,
        "queue": f"compute_resource_{server.compute_resource_id}",
        "action": action,
        "status": "pending",
        "output": "",
        "progress": 0,
        "duration": 0,
    }
