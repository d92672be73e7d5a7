"""The month-close benchmark harness at a tiny N: it runs end to end on the real broker and database,
checks every invoice against its oracle, and records its figures. A harness check, not a timing."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bench.checking import check_invoices
from bench.month_close import main
from bench.world import World, expected_lines
from shared.periods import BillingPeriod
from tests.support.bench_runs import server_arguments

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres, pytest.mark.slow]

CLIENTS, VMS, SAMPLE = 12, 2, 3


def test_a_tiny_close_is_run_checked_invoice_by_invoice_and_recorded(
    rabbit_url: str, postgres_url: str, tmp_path: Path
) -> None:
    code = main(
        [
            "--clients",
            str(CLIENTS),
            "--vms",
            str(VMS),
            "--baseline-sample",
            str(SAMPLE),
            "--repeat",
            "1",
            "--solusvm-latency-ms",
            "1",
            "--whmcs-latency-ms",
            "1",
            "--concurrency",
            "4",
            "--stall-seconds",
            "20",
            *server_arguments(rabbit_url, postgres_url, tmp_path),
            "--name",
            "smoke",
        ]
    )

    assert code == 0
    (path,) = tmp_path.glob("smoke-*.json")
    result = json.loads(path.read_text())
    (run,) = result["runs"]
    check = run["check"]
    # postpay's customers and the baseline's sample, each with exactly one invoice matching the oracle.
    assert check["ok"] and check["problem_count"] == 0
    assert check["expected_invoices"] == check["invoices_found"] == CLIENTS + SAMPLE
    assert check["lines_checked"] == (CLIENTS + SAMPLE) * VMS
    assert run["invoices"] == CLIENTS and run["parked"] == 0
    assert run["create_invoice_calls"] == CLIENTS + SAMPLE
    assert run["baseline"]["sample_clients"] == SAMPLE
    assert run["invoices_per_second"] > 0 and run["cpu_ms_per_invoice"] > 0
    assert set(run["peak_rss_mib"]) == {"usage-collector-1", "invoicer-1"}
    assert result["machine"]["cpus"] and result["summary"]["settings"][0]["all_checked_ok"]


def _invoice(world: World, client_id: int, now: datetime) -> dict[str, object]:
    """A WHMCS simulator invoice view exactly as the oracle expects it."""
    customer = world.customer(client_id)
    lines = expected_lines(customer, world.period, now)
    return {
        "id": client_id,
        "client_id": client_id,
        "currency_code": customer.currency,
        "status": "Unpaid",
        "subtotal": str(sum((line.amount for line in lines), Decimal(0))),
        "items": [
            {
                "description": f"vm (#{line.server_id}, plan X): {line.hours} hours, {line.tokens} tokens, {line.ran}",
                "amount": str(line.amount),
            }
            for line in lines
        ],
    }


def test_the_check_fails_on_a_wrong_amount_a_missing_invoice_or_a_second_one() -> None:
    world = World(4, 3, BillingPeriod.parse("2026-10"))
    now = datetime(2026, 11, 2, tzinfo=UTC)
    good = [_invoice(world, n, now) for n in range(1, 5)]
    assert check_invoices(world, good, range(1, 5), now).ok

    wrong = copy.deepcopy(good)
    item = wrong[1]["items"][0]  # type: ignore[index]
    item["amount"] = str(Decimal(item["amount"]) + Decimal("0.01"))
    assert check_invoices(world, wrong, range(1, 5), now).problem_count == 1

    missing = check_invoices(world, good[:3], range(1, 5), now)
    assert not missing.ok and missing.found == 3
    second = check_invoices(world, [*good, {**good[0], "id": 99}], range(1, 5), now)
    assert not second.ok and second.problem_count == 1
