"""The demo's story, as data: who signs up, in which currency, and how their VMs ran last month.

Deterministic for a given month and number of customers, so a test can rebuild the same story and
check the printed invoices against it. Four patterns repeat: a customer with a VM capped at its monthly
price, one paying in EUR whose VM was deleted mid-month, one with a VM that lived forty minutes, and
one whose only VM stopped before the month began (nothing to bill). Later repeats are shifted by a
few hours so no two customers look the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from shared.periods import BillingPeriod

# Prices per SolusVM 2 token; the demo sets them for both the landing page and the invoicer.
TOKEN_PRICES: dict[str, Decimal] = {"USD": Decimal("0.0010"), "EUR": Decimal("0.0009")}

Run = tuple[datetime, datetime | None]


@dataclass(frozen=True)
class PlanSpec:
    name: str
    tokens_per_hour: int
    tokens_per_month: int


# Every month has at least 672 hours: a Pro VM running all month always reaches its cap.
STARTER = PlanSpec("Starter", 5, 3000)
STANDARD = PlanSpec("Standard", 14, 8000)
PRO = PlanSpec("Pro", 30, 15000)
PLANS = (STARTER, STANDARD, PRO)


@dataclass(frozen=True)
class VmSpec:
    name: str
    plan: PlanSpec
    runs: tuple[Run, ...]
    story: str
    deleted_at: datetime | None = None

    @property
    def created_at(self) -> datetime:
        return self.runs[0][0]


@dataclass(frozen=True)
class CustomerSpec:
    first_name: str
    last_name: str
    company: str
    email: str
    currency: str
    vms: tuple[VmSpec, ...]

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


_PEOPLE = (
    ("Ada", "Lovelace", "Analytical Engines"),
    ("Grace", "Hopper", "Compiler Works"),
    ("Alan", "Turing", "Bletchley Computing"),
    ("Katherine", "Johnson", "Orbital Mechanics"),
    ("Edsger", "Dijkstra", "Shortest Paths"),
    ("Barbara", "Liskov", "Substitution Labs"),
    ("Donald", "Knuth", "Literate Programs"),
    ("Margaret", "Hamilton", "Flight Software"),
)


def _vms(pattern: int, start: datetime, shift: timedelta) -> tuple[VmSpec, ...]:
    day, hour, minute = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
    at = start + shift  # moments inside the month move with the shift; those before it do not
    if pattern == 0:
        return (
            VmSpec("web", PRO, ((start - 12 * day, None),), "ran all month: capped at the plan's monthly price"),
            VmSpec(
                "db",
                STARTER,
                ((at + 3 * day + 2 * hour + 30 * minute, at + 17 * day + 5 * hour + 10 * minute),),
                "started on the 4th, stopped on the 18th",
            ),
        )
    if pattern == 1:
        build_end = at + 14 * day + 45 * minute
        return (
            VmSpec(
                "build",
                STANDARD,
                ((at + 2 * day, at + 2 * day + 6 * hour), (at + 9 * day + 30 * minute, build_end)),
                "ran twice, then deleted mid-month",
                deleted_at=build_end,
            ),
            VmSpec("api", STARTER, ((at + 20 * day + 8 * hour, None),), "started on the 21st, still running"),
        )
    if pattern == 2:
        batch_end = at + 5 * day + 50 * minute
        return (
            VmSpec(
                "batch",
                STARTER,
                ((at + 5 * day + 10 * minute, batch_end),),
                "lived forty minutes, then deleted: one hour",
                deleted_at=batch_end,
            ),
            VmSpec(
                "cache",
                STANDARD,
                ((start - 3 * day, at + 12 * day + timedelta(seconds=1)),),
                "stopped one second into an hour on the 13th",
            ),
            VmSpec(
                "old",
                PRO,
                ((start - 40 * day, start - 20 * day),),
                "deleted before the month: not billed",
                deleted_at=start - 20 * day,
            ),
        )
    return (VmSpec("legacy", STANDARD, ((start - 30 * day, start - 2 * day),), "stopped before the month began"),)


def customers(period: BillingPeriod, count: int) -> list[CustomerSpec]:
    """The demo's ``count`` customers and their VMs in ``period``."""
    if count < 1:
        raise ValueError("the demo needs at least one customer")
    found = []
    for index in range(count):
        first, last, company = _PEOPLE[index % len(_PEOPLE)]
        round_ = index // len(_PEOPLE)
        suffix = str(round_ + 1) if round_ else ""
        shift = timedelta(hours=5 * ((index // 4) % 20))
        found.append(
            CustomerSpec(
                first_name=first,
                last_name=f"{last}{' ' + suffix if suffix else ''}",
                company=company,
                email=f"{first}.{last}{suffix}@example.com".lower(),
                currency="EUR" if index % 4 == 1 else "USD",
                vms=_vms(index % 4, period.starts_at, shift),
            )
        )
    return found
