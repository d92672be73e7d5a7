"""One simulator in its own process, its state built from the benchmark's world, with injected latency.

    python -m bench.simulator solusvm --clients 10000 --vms 3 --period 2026-11 --latency-ms 20 --port 8481

The app is the project's own simulator (``simulators.solusvm`` / ``simulators.whmcs``), served by
uvicorn exactly as ``postpay sim`` serves it (uvloop, httptools, one process). Only the state differs:
it is built in memory from ``bench.world`` instead of loaded from a JSON state file, which at 100,000
customers would be hundreds of megabytes to write and parse on every run.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import uvicorn

from bench.world import LONG_AGO, PLANS, World
from shared.periods import BillingPeriod
from simulators.capacity import CapacityConfig
from simulators.common import SimClock
from simulators.faults import FaultInjector, FaultKind, FaultRule

SOLUSVM_TOKEN = "bench-solusvm-token"
WHMCS_IDENTIFIER = "bench-identifier"
WHMCS_SECRET = "bench-secret"


def solusvm_app(world: World, latency_ms: float, seed: int = 0, capacity: CapacityConfig | None = None) -> Any:
    from simulators.solusvm.app import create_app
    from simulators.solusvm.model import Plan, Server, User
    from simulators.solusvm.state import SimState

    clock = SimClock()
    state = SimState.with_defaults(LONG_AGO, seed=seed)
    for plan in PLANS:
        seeded = state.plans[plan.id]
        assert (seeded.name, seeded.tokens_per_hour, seeded.tokens_per_month) == (
            plan.name,
            plan.tokens_per_hour,
            plan.tokens_per_month,
        ), "the simulator's default plans changed"
    location_id = min(state.locations)
    for customer in world.customers():
        user_id = state.allocate_id("user")
        assert user_id == customer.solusvm_user_id, (user_id, customer)
        state.index_user(
            User(
                id=user_id,
                email=customer.email,
                created_at=LONG_AGO,
                updated_at=LONG_AGO,
                billing_user_id=customer.client_id,
            )
        )
        for vm in customer.vms:
            server_id = state.allocate_id("server")
            assert server_id == vm.server_id, (server_id, vm)
            plan = state.plans[vm.plan.id]
            state.add_server(
                Server(
                    id=server_id,
                    uuid=state.new_uuid(),
                    name=vm.name,
                    user_id=user_id,
                    plan_id=plan.id,
                    location_id=location_id,
                    created_at=vm.runs[0][0],
                    intervals=[list(run) for run in vm.runs],
                    deleted_at=vm.deleted_at,
                    deleted_plan=Plan(**plan.__dict__) if vm.deleted_at else None,
                    os_id=1,
                )
            )
    return create_app(state, api_token=SOLUSVM_TOKEN, clock=clock, faults=_latency(latency_ms, seed, capacity))


def whmcs_app(world: World, latency_ms: float, seed: int = 0, capacity: CapacityConfig | None = None) -> Any:
    from simulators.whmcs.app import create_app
    from simulators.whmcs.state import Client, WhmcsState

    state = WhmcsState()
    for customer in world.customers():
        client_id = state.next_id("client")
        assert client_id == customer.client_id, (client_id, customer)
        state.add_client(
            Client(
                id=client_id,
                uuid=f"00000000-0000-4000-8000-{client_id:012d}",
                owner_user_id=0,
                firstname="Bench",
                lastname=f"Customer {client_id}",
                email=customer.email,
                currency_id=customer.currency_id,
                datecreated=LONG_AGO.date(),
            )
        )
    return create_app(
        state,
        identifier=WHMCS_IDENTIFIER,
        secret=WHMCS_SECRET,
        clock=SimClock(),
        faults=_latency(latency_ms, seed, capacity),
    )


def _latency(latency_ms: float, seed: int, capacity: CapacityConfig | None) -> FaultInjector:
    rules = [FaultRule(kind=FaultKind.LATENCY, route="*", latency_ms=latency_ms)] if latency_ms else []
    return FaultInjector(seed=seed, rules=rules, capacity=capacity)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("product", choices=["solusvm", "whmcs"])
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--baseline-clients", type=int, default=0)
    parser.add_argument("--vms", type=int, required=True)
    parser.add_argument("--period", required=True, help="The billing month the histories are about, e.g. 2026-11.")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--capacity", type=int, default=None, help="C of the capacity model (simulators/capacity.py): unset, unbounded."
    )
    parser.add_argument(
        "--overload",
        choices=["unavailable", "timeout"],
        default="unavailable",
        help="What a request past 2C in flight gets.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    world = World(args.clients, args.vms, BillingPeriod.parse(args.period), args.baseline_clients)
    started = datetime.now(UTC)
    build = solusvm_app if args.product == "solusvm" else whmcs_app
    app = build(world, args.latency_ms, capacity=CapacityConfig(limit=args.capacity, overload=args.overload))
    print(
        f"{args.product}: {world.total_clients} customers built in "
        f"{(datetime.now(UTC) - started).total_seconds():.1f}s",
        flush=True,
    )
    # The same server settings as `postpay sim` (simulators/*/cli.py).
    uvicorn.run(app, host=args.host, port=args.port, lifespan="off", access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
