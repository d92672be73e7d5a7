"""A whole month metered at accelerated time on the real broker and PostgreSQL, closed with each usage
source: the meter's invoices stay within the documented bound of the endpoint's and never above them.

The meter's own poll loop runs, its waits moving the simulator's clock to the next sweep, so October
takes seconds. Two billing systems share the simulators: one bills from the usage endpoint, the other
(with the meter) from what the meter saw; both invoice the same customers in the WHMCS simulator.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from postpay.ops.context import BILLING_SERVICES
from services.meter.settings import MeterSettings
from services.usage_collector.settings import UsageCollectorSettings
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming
from shared.db import Database
from shared.periods import BillingPeriod
from tests.support.billing import PRICES, BillingHarness, Customer
from tests.support.infra import fresh_schema
from tests.support.metering import drive_meter, month_histories, runs_in
from tests.support.system import Upstreams

PERIOD = BillingPeriod.parse("2026-10")
INTERVAL = timedelta(minutes=30)
METER_FROM = PERIOD.starts_at - timedelta(hours=2)
CLOSE_AT = PERIOD.ends_at + timedelta(hours=1)
LINE = re.compile(r"\(#(?P<server>\d+), plan [^)]*\): (?P<hours>\d+) hours?, (?P<tokens>\d+) tokens?,")


@pytest.fixture
def other_postgres_database(postgres_url: str) -> Iterator[Database]:
    """A second fresh schema: the second billing system's database."""
    with fresh_schema(postgres_url) as schema:
        db = Database(postgres_url, schema=schema, pool_size=10)
        yield db
        db.dispose()


@pytest.fixture
def other_rabbit_bus(rabbit_url: str) -> Iterator[RabbitBus]:
    bus = RabbitBus(
        rabbit_url, naming=Naming(f"test-{uuid.uuid4().hex[:10]}"), retry_delays=[0.2, 0.5, 1.0], confirm_timeout=10
    )
    yield bus
    if bus.subscriptions:
        bus.delete_topology(bus.subscriptions)


def metered_harness(upstreams: Upstreams, bus: object, db: Database, **collector: object) -> BillingHarness:
    return BillingHarness(
        upstreams,
        bus,
        db,
        clock=upstreams.solusvm_clock.now,
        services=(*BILLING_SERVICES, "meter"),
        collector=UsageCollectorSettings(usage_source="meter", **collector),  # type: ignore[arg-type]
        extra_settings=[MeterSettings(meter_interval_seconds=int(INTERVAL.total_seconds()))],
    )


def invoice_lines(harness: BillingHarness, customer: Customer) -> dict[int, tuple[int, int, Decimal]]:
    """Server id → (hours, tokens, amount) of the invoice this billing system created for the customer."""
    entry = harness.ledger(PERIOD.key).get(customer.client_id)
    if entry is None or entry.invoice_id is None:
        return {}
    (invoice,) = [i for i in harness.invoices_of(customer.client_id) if i.id == entry.invoice_id]
    lines = {}
    for item in invoice.items:
        match = LINE.search(item.description)
        assert match, item.description
        lines[int(match["server"])] = (int(match["hours"]), int(match["tokens"]), item.amount)
    return lines


@pytest.mark.rabbit
@pytest.mark.postgres
@pytest.mark.slow
def test_a_metered_month_bills_within_the_bound_and_never_above_the_endpoint(
    rabbit_bus: RabbitBus,
    postgres_database: Database,
    other_rabbit_bus: RabbitBus,
    other_postgres_database: Database,
) -> None:
    rng = random.Random(2026)
    with Upstreams(now=METER_FROM) as upstreams:
        endpoint = BillingHarness(upstreams, rabbit_bus, postgres_database, clock=upstreams.solusvm_clock.now)
        metered = metered_harness(upstreams, other_rabbit_bus, other_postgres_database)
        plans = [metered.add_plan("S", 7, 5000), metered.add_plan("M", 14, 10000), metered.add_plan("Capped", 40, 3000)]
        specs = month_histories(rng, plans, PERIOD.starts_at, PERIOD.ends_at, INTERVAL, count=40)
        customers = [
            metered.add_customer(rng.choice(["USD", "EUR"]), [s.history for s in specs[i : i + 4]])
            for i in range(0, len(specs), 4)
        ]
        endpoint.start()
        metered.start()
        try:
            endpoint.enroll(customers)
            metered.enroll(customers)
            began = time.monotonic()
            sweeps = drive_meter(metered, upstreams.solusvm_clock, until=CLOSE_AT - timedelta(minutes=10))
            print(f"metered {sweeps} sweeps in {time.monotonic() - began:.1f} s")
            upstreams.solusvm_clock.set(CLOSE_AT)
            endpoint.close(PERIOD.key)
            metered.close(PERIOD.key)
            endpoint.wait_settled(PERIOD.key, len(customers), timeout=90)
            metered.wait_settled(PERIOD.key, len(customers), timeout=90)
        finally:
            endpoint.stop()
            metered.stop()
    assert sweeps >= (CLOSE_AT - METER_FROM) / INTERVAL - 2
    kinds = {spec.history.server_id: spec for spec in specs}
    compared = 0
    for customer in customers:
        exact, sampled = invoice_lines(endpoint, customer), invoice_lines(metered, customer)
        assert exact, f"client {customer.client_id} used its VMs in October"
        assert set(sampled) <= set(exact), "the meter billed a VM the endpoint did not"
        for server_id, (hours, tokens, amount) in exact.items():
            spec = kinds[server_id]
            got_hours, got_tokens, got_amount = sampled.get(server_id, (0, 0, Decimal(0)))
            bound = -(-runs_in(spec.history, PERIOD.starts_at, PERIOD.ends_at) * 2 * INTERVAL // timedelta(hours=1))
            assert 0 <= hours - got_hours <= bound, (spec.kind, server_id, hours, got_hours, bound)
            assert got_tokens <= tokens and got_amount <= amount, (spec.kind, server_id)
            if spec.kind in ("steady", "capped", "flash", "resized", "late", "deleted"):
                # Runs that begin and end with a logged creation or deletion, or outlast the month.
                assert (got_hours, got_tokens) == (hours, tokens), (spec.kind, server_id, hours, got_hours)
            compared += 1
    assert compared == len(specs)
    assert any(
        kinds[s].kind == "cycling" and invoice_lines(metered, c)[s][0] < invoice_lines(endpoint, c)[s][0]
        for c in customers
        for s in invoice_lines(metered, c)
    ), "sampling shaved some hours somewhere"
    assert sum(sum(a for _, _, a in invoice_lines(metered, c).values()) for c in customers) > 0
    assert PRICES  # prices are the harness's: both systems priced with the same table
