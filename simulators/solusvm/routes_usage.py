"""Period usage (§8, project-defined: the money path) and the per-server monitoring samples (§4.2)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from simulators.solusvm.apierrors import Invalid, not_found
from simulators.solusvm.routing import Context, SimApi
from simulators.solusvm.timestamps import format_optional, format_timestamp
from simulators.solusvm.usage import UsageReport, WindowError, compute_usage, parse_window
from simulators.solusvm.wire import data

METRICS = ("cpu", "network", "disks", "memory")
SAMPLES = 12
SAMPLE_STEP = timedelta(minutes=5)


def usage_report_json(report: UsageReport) -> dict[str, Any]:
    return {
        "user_id": report.user_id,
        "period": {"from": format_timestamp(report.window.start), "to": format_timestamp(report.window.end)},
        "servers": [
            {
                "id": charge.server.id,
                "uuid": charge.server.uuid,
                "name": charge.server.name,
                "plan": {
                    "id": charge.server.plan.id,
                    "name": charge.server.plan.name,
                    "tokens_per_hour": charge.server.plan.tokens_per_hour,
                    "tokens_per_month": charge.server.plan.tokens_per_month,
                },
                "created_at": format_timestamp(charge.server.created_at),
                "deleted_at": format_optional(charge.server.deleted_at),
                "hours": charge.hours,
                "tokens": charge.tokens,
            }
            for charge in report.charges
        ],
        "total_tokens": report.total_tokens,
    }


def period_usage(ctx: Context) -> Response:
    user_id = ctx.path_id()
    scope = ctx.owner_scope()
    if scope is not None and scope != user_id:
        raise not_found()
    ctx.state.get_user(user_id)
    try:
        window = parse_window(ctx.query("from"), ctx.query("to"))
    except WindowError as exc:
        raise Invalid(exc.errors) from None
    report = compute_usage(user_id, ctx.state.server_runtimes(user_id, ctx.now()), window, ctx.now())
    return data(usage_report_json(report))


def _sample(metric: str, running: bool, seed: int) -> dict[str, Any]:
    level = (seed % 7 + 1) if running else 0
    if metric == "cpu":
        return {"load_average": round(level * 0.05, 2)}
    if metric == "memory":
        return {"memory": level * 64 * 1024 * 1024}
    return {"derivative": {"read_kb": level * 12, "write_kb": level * 5}}


def _monitoring(metric: str) -> Any:
    def handle(ctx: Context) -> Response:
        server = ctx.state.server_by_uuid(ctx.request.path_params["uuid"], ctx.now())
        if ctx.owner_scope() is not None and server.user_id != ctx.owner_scope():
            raise not_found()
        latest = ctx.now().replace(second=0, microsecond=0)
        items = []
        for step in range(SAMPLES - 1, -1, -1):
            moment = latest - step * SAMPLE_STEP
            items.append(
                {"time": format_timestamp(moment), **_sample(metric, server.running_at(ctx.now()), server.id + step)}
            )
        return data({"items": items})

    return handle


def usage_routes(api: SimApi) -> list[Route]:
    routes = [api.route("GET", api.config.usage_path, period_usage, access="any")]
    for metric in METRICS:
        routes.append(api.route("GET", f"/api/v1/usage/{metric}/{{uuid}}", _monitoring(metric), access="any"))
    return routes
