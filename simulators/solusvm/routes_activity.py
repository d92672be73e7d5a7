"""``GET /api/v1/activity_logs`` (§4.2a): the panel's activity log, paginated, newest first.

Filters: ``filter[event]`` and ``filter[user_id]``; no date range (none is known). Entries appear as the
clock reaches their instant, numbered in that order, so a client that pages "until the entries it has
already seen" works as it would against a panel whose log grows while it reads.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from simulators.solusvm.routing import Context, SimApi
from simulators.solusvm.validation import as_int
from simulators.solusvm.wire import activity_log_json, paginate

ACTIVITY_LOGS = "/api/v1/activity_logs"


def list_activity_logs(ctx: Context) -> Response:
    entries = ctx.state.logs_at(ctx.now())
    event = ctx.query("filter[event]")
    raw_user = ctx.query("filter[user_id]")
    if raw_user is not None:
        user_id = as_int(raw_user)
        entries = [entry for entry in entries if user_id is not None and entry.user_id == user_id]
    if event is not None:
        entries = [entry for entry in entries if entry.event == event]
    # [I] newest first, as the panel's activity log page shows it.
    return paginate(ctx.request, entries[::-1], activity_log_json)


def activity_routes(api: SimApi) -> list[Route]:
    return [api.route("GET", ACTIVITY_LOGS, list_activity_logs, access="admin")]
