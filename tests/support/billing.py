"""Billing in a test: customers seeded in both simulators and enrolled through ``UserProvisioned``,
the billing services (scheduler, usage collector, invoicer) on the test's bus and database, and an
independent oracle of what each invoice must say.

    with Upstreams(now=...) as upstreams:
        harness = BillingHarness(upstreams, bus, db).start()
        plan = harness.add_plan("S", 7, 5000)
        alice = harness.add_customer("EUR", [VmHistory("web", plan, [(start, None)])])
        harness.enroll([alice])
        harness.close("2026-10")
        harness.wait_settled("2026-10", 1)

The expected invoices (``expected_lines``) come from the invoice oracle (``simulators.oracle``), which
computes them from the seeded run intervals sharing no code with postpay's pricing, so a bug there cannot
hide in the expectation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from postpay.bootstrap import service_builder
from postpay.ops.context import BILLING_SERVICES, BillingContext
from postpay.ops.status import PeriodStatus, period_status
from services.invoicer import store as invoicer_store
from services.invoicer.settings import InvoicerSettings
from services.scheduler.closing import Emitted, close_period, replay_period
from services.scheduler.settings import SchedulerSettings
from services.scheduler.windows import choose_period
from services.usage_collector import store as collector_store
from services.usage_collector.settings import UsageCollectorSettings
from shared.bus.messages import OutgoingMessage
from shared.clock import Clock, utcnow
from shared.db import Database
from shared.events.base import new_envelope
from shared.events.enrollment import UserProvisioned
from shared.periods import BillingPeriod
from shared.runtime import Runtime
from shared.upstream.http import Timeouts
from simulators.oracle import ServerUse, invoice_lines
from simulators.solusvm.seeding import seed as seed_solusvm
from simulators.whmcs.state import Client as WhmcsClientRecord
from simulators.whmcs.state import Invoice
from tests.support.bus_helpers import wait_until
from tests.support.system import Upstreams

PRICES = {"USD": Decimal("0.0010"), "EUR": Decimal("0.0009"), "GBP": Decimal("0.00083")}
CURRENCY_IDS = {"USD": 1, "EUR": 2, "GBP": 3}
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Plan:
    id: int
    name: str
    tokens_per_hour: int
    tokens_per_month: int


@dataclass
class VmHistory:
    """A server as the test describes it: when it ran, and when (if ever) it was deleted."""

    name: str
    plan: Plan
    runs: list[tuple[datetime, datetime | None]]
    deleted_at: datetime | None = None
    server_id: int = 0
    # Resizes after creation, oldest first: (when, the new plan).
    plan_changes: list[tuple[datetime, Plan]] = field(default_factory=list)
    created_at: datetime | None = None

    @property
    def created(self) -> datetime:
        return self.created_at or self.runs[0][0]

    def plan_at(self, moment: datetime) -> Plan:
        """The plan at ``moment`` (a deleted VM's plan at deletion), as the usage endpoint prices it."""
        if self.deleted_at is not None and self.deleted_at < moment:
            moment = self.deleted_at
        plan = self.plan
        for at, changed in self.plan_changes:
            if at <= moment:
                plan = changed
        return plan


@dataclass
class Customer:
    client_id: int
    solusvm_user_id: int
    email: str
    currency: str
    enrolled_at: datetime
    vms: list[VmHistory] = field(default_factory=list)


@dataclass(frozen=True)
class ExpectedLine:
    server_id: int
    hours: int
    tokens: int
    amount: Decimal
    # The days the line says the VM ran: its life inside the period (what the usage endpoint tells).
    ran: str = ""


class BillingHarness:
    def __init__(
        self,
        upstreams: Upstreams,
        bus: Any,
        db: Database,
        *,
        clock: Clock = utcnow,
        invoicer: InvoicerSettings | None = None,
        scheduler: SchedulerSettings | None = None,
        chunk_size: int = 7,
        timeouts: Timeouts | None = None,
        collector: UsageCollectorSettings | None = None,
        services: Sequence[str] = BILLING_SERVICES,
        extra_settings: Sequence[Any] = (),
    ) -> None:
        self.upstreams = upstreams
        self.bus = bus
        self.db = db
        self.clock = clock
        self.invoicer_settings = invoicer or InvoicerSettings(token_prices=PRICES)
        self.scheduler_settings = scheduler or SchedulerSettings()
        overrides = [
            self.invoicer_settings,
            self.scheduler_settings,
            collector or UsageCollectorSettings(usage_fanout_chunk_size=chunk_size),
            *extra_settings,
        ]
        deps = upstreams.dependencies(clock=clock, overrides=overrides, timeouts=timeouts)
        deps.db = db
        built = {name: service_builder(name)(deps) for name in services}
        self.context = BillingContext(db=db, bus=bus, deps=deps, services=built)
        self.runtime = Runtime(bus, db, list(built.values()), relay_poll_seconds=0.05, clock=clock)
        self.runtime.create_tables()
        self._sequence = 0

    # -- running -----------------------------------------------------------------------------
    def start(self, *, background: bool = False) -> BillingHarness:
        self.runtime.start(background=background)
        connected = getattr(self.runtime.consumer, "connected", None)
        if connected is not None:
            assert connected.wait(15), "consumer did not connect"
        return self

    def start_scheduler(self) -> None:
        """Start the scheduler's background loop (after the consumers, e.g. once customers are enrolled)."""
        self.runtime.start(consume=False, relay=False, background=True)

    def stop(self) -> None:
        self.runtime.stop()

    @property
    def timezone(self) -> str:
        return self.scheduler_settings.billing_timezone

    def period(self, key: str) -> BillingPeriod:
        """The month's window: the one recorded when it was closed, else what a close would record now."""
        with self.db.transaction() as session:
            return choose_period(session, key, self.timezone).period

    # -- seeding -----------------------------------------------------------------------------
    def add_plan(self, name: str, tokens_per_hour: int, tokens_per_month: int) -> Plan:
        payload = {"plans": [{"name": name, "tokens_per_hour": tokens_per_hour, "tokens_per_month": tokens_per_month}]}
        (plan_id,) = seed_solusvm(self.upstreams.solusvm_state, payload, LONG_AGO)["plans"]
        return Plan(plan_id, name, tokens_per_hour, tokens_per_month)

    def add_customer(
        self, currency: str = "USD", vms: Sequence[VmHistory] = (), *, enrolled_at: datetime = LONG_AGO
    ) -> Customer:
        """A WHMCS client in ``currency`` and its SolusVM 2 user with the given servers' history."""
        self._sequence += 1
        email = f"customer-{self._sequence}-{uuid.uuid4().hex[:8]}@example.com"
        state = self.upstreams.whmcs.state
        with state.lock:
            client = WhmcsClientRecord(
                id=state.next_id("client"),
                uuid=str(uuid.uuid4()),
                owner_user_id=0,
                firstname="Test",
                lastname=f"Customer {self._sequence}",
                email=email,
                currency_id=CURRENCY_IDS[currency],
            )
            state.add_client(client)
        created = seed_solusvm(self.upstreams.solusvm_state, {"users": [{"email": email}]}, LONG_AGO)
        customer = Customer(client.id, created["users"][0], email, currency, enrolled_at, list(vms))
        if vms:
            self.add_vms(customer, vms)
        return customer

    def add_vms(self, customer: Customer, vms: Sequence[VmHistory]) -> None:
        servers = [
            {
                "user_id": customer.solusvm_user_id,
                "plan_id": vm.plan.id,
                "name": vm.name,
                "created_at": _iso(vm.created),
                "deleted_at": _iso(vm.deleted_at) if vm.deleted_at else None,
                "intervals": [[_iso(start), _iso(end) if end else None] for start, end in vm.runs],
                "plan_changes": [[_iso(at), plan.id] for at, plan in vm.plan_changes],
            }
            for vm in vms
        ]
        ids = seed_solusvm(self.upstreams.solusvm_state, {"servers": servers}, LONG_AGO)["servers"]
        for vm, server_id in zip(vms, ids):
            vm.server_id = server_id
        if customer.vms is not vms:
            customer.vms.extend(v for v in vms if v not in customer.vms)

    def enroll(self, customers: Sequence[Customer]) -> None:
        """Publish one ``UserProvisioned`` per customer (as the provisioner would) and wait until the
        usage collector knows them all."""
        messages = [
            OutgoingMessage.from_envelope(
                new_envelope(
                    UserProvisioned(
                        signup_id=uuid.uuid4(),
                        email=c.email,
                        whmcs_client_id=c.client_id,
                        solusvm_user_id=c.solusvm_user_id,
                        enrolled_at=c.enrolled_at,
                    ),
                    producer="provisioner",
                )
            )
            for c in customers
        ]
        publisher = self.bus.publisher()
        try:
            for start in range(0, len(messages), 200):
                result = publisher.publish(messages[start : start + 200])
                assert not result.unroutable, result.unroutable
        finally:
            publisher.close()
        wanted = {c.client_id for c in customers}
        wait_until(lambda: wanted <= self.enrolled_client_ids(), timeout=60, what="customers enrolled")

    def enrolled_client_ids(self) -> set[int]:
        with self.db.transaction() as session:
            return set(session.execute(select(collector_store.customers.c.whmcs_client_id)).scalars())

    # -- operating ---------------------------------------------------------------------------
    def close(self, key: str, *, trigger: str = "manual", timezone: str | None = None) -> Emitted:
        """Close ``key`` as the scheduler would with ``POSTPAY_BILLING_TIMEZONE`` = ``timezone``."""
        requested = BillingPeriod.parse(key, timezone or self.timezone)
        with self.db.transaction() as session:
            emitted = close_period(
                session, self.context.services["scheduler"].outbox, requested, trigger=trigger, now=self.clock()
            )  # type: ignore[arg-type]
        assert emitted is not None
        self.runtime.relay.wake()
        return emitted

    def replay(self, key: str, client_ids: Sequence[int] | None = None) -> Emitted:
        with self.db.transaction() as session:
            emitted = replay_period(
                session,
                self.context.services["scheduler"].outbox,
                self.period(key),
                client_ids=client_ids,
                now=self.clock(),
            )
        self.runtime.relay.wake()
        return emitted

    def status(self, key: str) -> PeriodStatus:
        return period_status(self.db, self.period(key))

    def wait_settled(self, key: str, count: int, *, timeout: float = 60) -> PeriodStatus:
        """Until ``count`` customers of the period are invoiced or have nothing to bill."""
        return wait_until(
            lambda: (s := self.status(key)).settled >= count and s,
            timeout=timeout,
            what=f"{count} customers of {key} settled",
        )

    def ledger(self, key: str) -> dict[int, invoicer_store.LedgerEntry]:
        with self.db.transaction() as session:
            rows = session.execute(select(invoicer_store.ledger).where(invoicer_store.ledger.c.period == key))
            fields = invoicer_store.LedgerEntry.__dataclass_fields__
            return {
                row.whmcs_client_id: invoicer_store.LedgerEntry(**{f: getattr(row, f) for f in fields}) for row in rows
            }

    def invoices_of(self, client_id: int) -> list[Invoice]:
        with self.upstreams.whmcs.state.lock:
            return list(self.upstreams.whmcs.state.invoices_of(client_id))

    def all_invoices(self) -> list[Invoice]:
        with self.upstreams.whmcs.state.lock:
            return list(self.upstreams.whmcs.state.invoices.values())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- the oracle ----------------------------------------------------------------------------------
def expected_lines(
    customer: Customer, period: BillingPeriod, price: Decimal, *, now: datetime, places: int = 2
) -> list[ExpectedLine]:
    """What the invoice must bill (``simulators.oracle``), in server order; a resized VM is priced at
    its plan at ``now`` (at deletion, if deleted), as the usage endpoint prices it."""
    servers = []
    for vm in sorted(customer.vms, key=lambda v: v.server_id):
        plan = vm.plan_at(now)
        servers.append(
            ServerUse(
                vm.server_id,
                plan.tokens_per_hour,
                plan.tokens_per_month,
                vm.runs,
                created_at=vm.created,
                deleted_at=vm.deleted_at,
            )
        )
    lines = invoice_lines(
        servers,
        start=period.starts_at,
        end=period.ends_at,
        timezone=period.timezone,
        price=price,
        now=now,
        places=places,
    )
    return [ExpectedLine(line.key, line.hours, line.tokens, line.amount, line.ran) for line in lines]


def assert_invoice_matches(invoice: Invoice, expected: Sequence[ExpectedLine], period: BillingPeriod) -> None:
    """Line by line: one line per VM, in server order, naming its hours, tokens and period."""
    assert len(invoice.items) == len(expected), (invoice.items, expected)
    for item, line in zip(invoice.items, expected):
        assert f"(#{line.server_id}," in item.description, (item.description, line)
        assert f": {line.hours} hour" in item.description, (item.description, line)
        assert f", {line.tokens} token" in item.description, (item.description, line)
        assert item.description.endswith(f", {line.ran}"), (item.description, line)
        assert item.amount == line.amount, (item.description, item.amount, line.amount)
    assert invoice.subtotal == sum((line.amount for line in expected), Decimal(0))


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
