"""The month-close benchmark's world: N customers with M servers each, derived from a few numbers.

Everything here is a pure function of ``World`` (and a seed), so the simulators (built in their own
processes), postpay's customer projection and the oracle that checks every invoice agree without
sharing any state. Customer ``n`` is WHMCS client ``n`` and SolusVM 2 user ``n + 1`` (user 1 is the
panel's admin); its servers are ``(n - 1) * M + 1 .. n * M``.

The first ``clients`` customers are billed by postpay; the ``baseline_clients`` after them exist in
both simulators but are not enrolled: the sequential baseline bills (a sample of) them, so the two
never invoice the same customer.

The expected invoices (``expected_lines``) come from the invoice oracle (``simulators.oracle``), which
shares no code with postpay's pricing or the simulator's usage endpoint.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from shared.periods import BillingPeriod
from simulators.oracle import ServerUse, invoice_lines

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Plan:
    id: int
    name: str
    tokens_per_hour: int
    tokens_per_month: int


# The plans a fresh simulated panel has (SimState.with_defaults); the SolusVM builder checks they match.
PLANS = (Plan(1, "S", 7, 5000), Plan(2, "M", 14, 10000), Plan(3, "L", 28, 20000))
# WHMCS currency ids of the simulator's defaults, and the token price postpay is configured with.
CURRENCIES = (("USD", 1), ("EUR", 2), ("GBP", 3))
PRICES = {"USD": Decimal("0.0010"), "EUR": Decimal("0.0009"), "GBP": Decimal("0.00083")}

Run = tuple[datetime, datetime | None]


@dataclass(frozen=True)
class Vm:
    server_id: int
    name: str
    plan: Plan
    runs: tuple[Run, ...]
    deleted_at: datetime | None


@dataclass(frozen=True)
class Customer:
    client_id: int
    solusvm_user_id: int
    email: str
    currency: str
    currency_id: int
    vms: tuple[Vm, ...]


@dataclass(frozen=True)
class ExpectedLine:
    server_id: int
    hours: int
    tokens: int
    amount: Decimal
    ran: str = ""  # "ran <day>[ to <day>]": the VM's life inside the period, as the invoice line says


@dataclass(frozen=True)
class World:
    clients: int
    vms: int
    period: BillingPeriod
    baseline_clients: int = 0
    seed: int = 20261101

    @property
    def total_clients(self) -> int:
        return self.clients + self.baseline_clients

    @property
    def baseline_ids(self) -> range:
        return range(self.clients + 1, self.total_clients + 1)

    def customer(self, n: int) -> Customer:
        if not 1 <= n <= self.total_clients:
            raise ValueError(f"no customer {n} in a world of {self.total_clients}")
        rng = random.Random(self.seed * 1_000_003 + n)
        code, currency_id = CURRENCIES[n % len(CURRENCIES)]
        vms = tuple(self._vm(n, j, rng) for j in range(self.vms))
        return Customer(n, n + 1, f"customer-{n}@bench.example.com", code, currency_id, vms)

    def customers(self, first: int = 1, last: int | None = None) -> Iterator[Customer]:
        for n in range(first, (last if last is not None else self.total_clients) + 1):
            yield self.customer(n)

    def _vm(self, n: int, j: int, rng: random.Random) -> Vm:
        """A server history that bills something this period, of one of four shapes."""
        start, end = self.period.starts_at, self.period.ends_at
        length = int((end - start).total_seconds())
        offset = timedelta(seconds=rng.randrange(0, length - 7200))
        plan = PLANS[(n + j) % len(PLANS)]
        shape = (n + j) % 4
        deleted_at = None
        if shape == 0:  # running all month, and still running
            runs: tuple[Run, ...] = ((start - timedelta(days=rng.randint(1, 60)), None),)
        elif shape == 1:  # created inside the month, still running
            runs = ((start + offset, None),)
        elif shape == 2:  # stopped inside the month (still exists)
            runs = ((start - timedelta(hours=rng.randint(1, 500)), start + offset + timedelta(seconds=1)),)
        else:  # short-lived: created and deleted inside the month, odd seconds included
            created = start + offset
            deleted_at = min(created + timedelta(hours=rng.randint(0, 100), seconds=rng.randint(1, 3599)), end)
            runs = ((created, deleted_at),)
        return Vm((n - 1) * self.vms + j + 1, f"vm-{n}-{j}", plan, runs, deleted_at)


def expected_lines(customer: Customer, period: BillingPeriod, now: datetime) -> list[ExpectedLine]:
    """What the customer's invoice must bill (``simulators.oracle``), in server order."""
    servers = [
        ServerUse(vm.server_id, vm.plan.tokens_per_hour, vm.plan.tokens_per_month, vm.runs, deleted_at=vm.deleted_at)
        for vm in sorted(customer.vms, key=lambda v: v.server_id)
    ]
    lines = invoice_lines(
        servers,
        start=period.starts_at,
        end=period.ends_at,
        timezone=period.timezone,
        price=PRICES[customer.currency],
        now=now,
    )
    return [ExpectedLine(line.key, line.hours, line.tokens, line.amount, line.ran) for line in lines]
