"""The sequential baseline: a once-a-day cron's loop, one client after the other.

For each client: fetch its period usage from SolusVM 2, read its currency from WHMCS, price it, create
its invoice. The same upstream clients as postpay (``shared.upstream``), the same pure pricing and
invoice text, no broker, no database, no crash safety: the fastest a straightforward loop can be,
bounded by the upstreams' latency. It runs over a sample of customers postpay does not bill, and its
per-client time is extrapolated to N.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from bench.simulator import SOLUSVM_TOKEN, WHMCS_IDENTIFIER, WHMCS_SECRET
from bench.world import PRICES, World
from services.invoicer.invoice_document import draft_invoice
from services.invoicer.pricing import price_usage, tariff_for
from services.usage_collector.usage import vm_usages
from shared.upstream.solusvm import SolusVMClient
from shared.upstream.whmcs import WhmcsClient


def bill_customer(world: World, solusvm: SolusVMClient, whmcs: WhmcsClient, client_id: int) -> int:
    """What a close does for one customer, upstream side: usage, currency, invoice (its id returned)."""
    customer, period = world.customer(client_id), world.period
    usage = solusvm.period_usage(customer.solusvm_user_id, period.starts_at, period.ends_at)
    details = whmcs.get_client(client_id)
    assert details is not None and details.currency_code, client_id
    priced = price_usage(vm_usages(usage), tariff_for(details.currency_code, PRICES, {}))
    draft = draft_invoice(client_id, period, priced, now=datetime.now(UTC), due_days=14, taxed=False)
    return whmcs.create_invoice(
        client_id,
        draft.lines,
        date=draft.invoice_date,
        due_date=draft.due_date,
        notes=draft.notes,
        send_invoice=True,
        payment_method=None,
    )


def run_baseline(world: World, solusvm_url: str, whmcs_url: str, sample: range) -> dict[str, Any]:
    """Bill every client in ``sample`` one at a time; time each client and the whole loop."""
    solusvm = SolusVMClient(solusvm_url, SecretStr(SOLUSVM_TOKEN))
    whmcs = WhmcsClient(whmcs_url, SecretStr(WHMCS_IDENTIFIER), SecretStr(WHMCS_SECRET))
    per_client: list[float] = []
    try:
        cpu_started, started = time.process_time(), time.perf_counter()
        for client_id in sample:
            client_started = time.perf_counter()
            bill_customer(world, solusvm, whmcs, client_id)
            per_client.append(time.perf_counter() - client_started)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        solusvm.close()
        whmcs.close()
    mean = seconds / len(per_client)
    return {
        "sample_clients": len(per_client),
        "sample_seconds": seconds,
        "seconds_per_client_mean": mean,
        "seconds_per_client_median": statistics.median(per_client),
        "seconds_per_client_p95": sorted(per_client)[int(0.95 * (len(per_client) - 1))],
        "cpu_ms_per_invoice": 1000 * cpu / len(per_client),
        "invoices_per_second": 1 / mean,
        "extrapolated_seconds_for_n": mean * world.clients,
    }
