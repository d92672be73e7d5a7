"""Last month, from the simulators' side and postpay's: the VMs' history seeded in the SolusVM 2
simulator, the EUR customers' currency set in WHMCS, the month closed as ``postpay close-period``
closes it, and the invoices read back from the WHMCS simulator. All through the simulators' admin
HTTP endpoints, the ones a person would use to look."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from postpay.demo.journey import Enrolled
from postpay.demo.scenario import PLANS
from postpay.ops.status import PeriodStatus, count_parked, period_status
from services.scheduler.public import Emitted, close_period
from shared.periods import BillingPeriod
from shared.runtime import Runtime


class MonthError(RuntimeError):
    """Seeding or closing the month failed."""


@dataclass(frozen=True)
class Seeded:
    plan_ids: dict[str, int]
    server_ids: dict[tuple[str, str], int]  # (customer email, VM name) -> SolusVM 2 server id


def seed_month(http: httpx.Client, solusvm_url: str, customers: Sequence[Enrolled]) -> Seeded:
    plans = [
        {"name": p.name, "tokens_per_hour": p.tokens_per_hour, "tokens_per_month": p.tokens_per_month} for p in PLANS
    ]
    plan_ids = dict(zip((p.name for p in PLANS), _seed(http, solusvm_url, {"plans": plans})["plans"]))
    keys, servers = [], []
    for customer in customers:
        for vm in customer.spec.vms:
            keys.append((customer.spec.email, vm.name))
            servers.append(
                {
                    "user_id": customer.solusvm_user_id,
                    "plan_id": plan_ids[vm.plan.name],
                    "name": vm.name,
                    "created_at": _iso(vm.created_at),
                    "deleted_at": _iso(vm.deleted_at) if vm.deleted_at else None,
                    "intervals": [[_iso(start), _iso(end) if end else None] for start, end in vm.runs],
                }
            )
    server_ids = _seed(http, solusvm_url, {"servers": servers})["servers"] if servers else []
    return Seeded(plan_ids, dict(zip(keys, server_ids)))


def _seed(http: httpx.Client, solusvm_url: str, payload: dict[str, Any]) -> dict[str, list[int]]:
    response = http.post(f"{solusvm_url}/_sim/seed", json=payload)
    if response.status_code != 201:
        raise MonthError(f"the SolusVM 2 simulator refused the seed: {response.status_code} {response.text[:300]}")
    return response.json()  # type: ignore[no-any-return]


def set_currencies(http: httpx.Client, whmcs_url: str, customers: Sequence[Enrolled]) -> None:
    """What a provider does in the WHMCS admin area for a client who pays in another currency."""
    currencies = {c["code"]: c["id"] for c in http.get(f"{whmcs_url}/_sim/currencies").json()["currencies"]}
    for customer in customers:
        client = http.get(f"{whmcs_url}/_sim/clients/{customer.whmcs_client_id}").json()
        if client["currency_code"] != customer.spec.currency:
            changed = http.patch(
                f"{whmcs_url}/_sim/clients/{customer.whmcs_client_id}",
                json={"currency_id": currencies[customer.spec.currency]},
            )
            if changed.status_code != 200:
                raise MonthError(
                    f"WHMCS refused the currency of client {customer.whmcs_client_id}: {changed.text[:300]}"
                )


def close_month(runtime: Runtime, period: BillingPeriod, now: datetime) -> Emitted:
    """What ``postpay close-period`` does: the close event into the scheduler's outbox, then the relay."""
    scheduler = next(service for service in runtime.services if service.name == "scheduler")
    with runtime.db.transaction() as session:
        emitted = close_period(session, scheduler.outbox, period, trigger="manual", now=now)
    if emitted is None:
        raise MonthError(f"{period.key} could not be closed")
    runtime.relay.wake()
    return emitted


def follow_close(
    runtime: Runtime, period: BillingPeriod, *, timeout: float, show: Callable[[PeriodStatus], None] = lambda _: None
) -> PeriodStatus:
    """Poll the period's status until every customer is invoiced, has nothing to bill, or is parked."""
    deadline = time.monotonic() + timeout
    while True:
        status = period_status(runtime.db, period, parked=count_parked(runtime.bus, period))
        show(status)
        if status.complete:
            return status
        if time.monotonic() > deadline:
            raise MonthError(
                f"the close of {period.key} did not finish within {timeout:g} s "
                f"({status.settled} of {status.expected} customers settled)"
            )
        time.sleep(0.2)


def invoices_of(http: httpx.Client, whmcs_url: str, client_id: int) -> list[dict[str, Any]]:
    return http.get(f"{whmcs_url}/_sim/invoices", params={"client_id": client_id}).json()["invoices"]  # type: ignore[no-any-return]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
