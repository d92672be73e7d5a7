"""Period boundaries through the real flow: close → usage collector → SolusVM 2 simulator's usage
endpoint → invoicer → WHMCS simulator, in UTC and in Europe/Berlin, for months of 28 to 31 days and
both daylight-saving changes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.scheduler.settings import SchedulerSettings
from shared.bus.memory import InMemoryBus
from shared.clock import ManualClock
from shared.db import Database
from shared.periods import BillingPeriod
from tests.support.billing import PRICES, BillingHarness, VmHistory, assert_invoice_matches, expected_lines
from tests.support.system import Upstreams

# Hours in each month, written out by hand: the local midnights of Europe/Berlin make March an hour
# short and October an hour long.
MONTHS = {
    ("UTC", "2026-02"): 672,
    ("UTC", "2026-04"): 720,
    ("UTC", "2026-10"): 744,
    ("Europe/Berlin", "2026-02"): 672,
    ("Europe/Berlin", "2026-03"): 743,
    ("Europe/Berlin", "2026-10"): 745,
    ("Europe/Berlin", "2026-12"): 744,
}


@pytest.mark.parametrize(("timezone", "key"), list(MONTHS), ids=[f"{tz}-{key}" for tz, key in MONTHS])
def test_each_vm_is_billed_for_exactly_its_running_time_inside_the_local_month(
    timezone: str, key: str, memory_bus: InMemoryBus, sqlite_database: Database
) -> None:
    period = BillingPeriod.parse(key, timezone)
    start, end = period.starts_at, period.ends_at
    now = end + timedelta(minutes=15)
    with Upstreams(now=now) as upstreams:
        harness = BillingHarness(
            upstreams,
            memory_bus,
            sqlite_database,
            clock=ManualClock(now),
            scheduler=SchedulerSettings(billing_timezone=timezone),
        ).start()
        try:
            capped = harness.add_plan("S", 10, 5000)
            metered = harness.add_plan("Metered", 2, 1_000_000)
            vms = {
                "whole month": VmHistory("whole", metered, [(start - timedelta(days=10), None)]),
                "capped": VmHistory("capped", capped, [(start - timedelta(days=3), None)]),
                "across the start": VmHistory(
                    "early", metered, [(start - timedelta(hours=2), start + timedelta(hours=5))]
                ),
                "across the end": VmHistory("late", metered, [(end - timedelta(hours=3), None)]),
                "five minutes": VmHistory(
                    "blip",
                    capped,
                    [(start + timedelta(days=9, hours=8), start + timedelta(days=9, hours=8, minutes=5))],
                    deleted_at=start + timedelta(days=9, hours=8, minutes=5),
                ),
                "deleted mid-month": VmHistory(
                    "gone",
                    metered,
                    [(start - timedelta(days=1), start + timedelta(days=14, minutes=30))],
                    deleted_at=start + timedelta(days=14, minutes=30),
                ),
                "stopped before": VmHistory(
                    "idle", metered, [(start - timedelta(days=20), start - timedelta(seconds=1))]
                ),
                "started after": VmHistory("future", metered, [(end, None)]),
            }
            customer = harness.add_customer("EUR", list(vms.values()))
            idle = harness.add_customer("USD", [VmHistory("old", metered, [(start - timedelta(days=5), start)])])
            harness.enroll([customer, idle])

            harness.close(key)
            harness.wait_settled(key, 2)
        finally:
            harness.stop()

        (invoice,) = harness.invoices_of(customer.client_id)
        assert harness.invoices_of(idle.client_id) == [], "a VM that stopped at the start bills nothing"
        expected = expected_lines(customer, period, PRICES["EUR"], now=now)
        assert_invoice_matches(invoice, expected, period)

        by_server = {line.server_id: line for line in expected}
        month_hours = MONTHS[(timezone, key)]
        assert by_server[vms["whole month"].server_id].hours == month_hours
        assert by_server[vms["whole month"].server_id].tokens == 2 * month_hours
        assert by_server[vms["capped"].server_id].tokens == 5000
        assert by_server[vms["across the start"].server_id].hours == 5
        assert by_server[vms["across the end"].server_id].hours == 3
        assert (by_server[vms["five minutes"].server_id].hours, by_server[vms["five minutes"].server_id].tokens) == (
            1,
            10,
        )
        assert by_server[vms["deleted mid-month"].server_id].hours == 14 * 24 + 1
        assert vms["stopped before"].server_id not in by_server
        assert vms["started after"].server_id not in by_server
        assert invoice.subtotal == sum((line.amount for line in expected), Decimal(0))
        # Each line names the local days the VM ran, whatever the UTC instants: all month for one that
        # ran all month, the one day of a five-minute VM.
        descriptions = {item.description.split(" (#")[0]: item.description for item in invoice.items}
        assert descriptions[vms["whole month"].name].endswith(f"ran {period.first_day} to {period.last_day}")
        five_minutes = vms["five minutes"].runs[0][0].astimezone(ZoneInfo(timezone)).date()
        assert descriptions[vms["five minutes"].name].endswith(f", ran {five_minutes}")
        assert invoice.notes.count(f"{period.first_day} to {period.last_day}") == 1
        assert f"[postpay:{customer.client_id}:{key}]" in invoice.notes
