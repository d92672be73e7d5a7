"""A customer's figures as the client-area panel and the account page show them: the month's usage so
far, priced, with an estimate for the whole month, and the latest invoices with their pay links.

Usage comes from the usage collector by events (see ``shared.events.usage``): a view reads the newest
figure the signup holds; when that is older than ``panel_usage_max_age_seconds`` the view asks for a
new one (at most once per ``REQUEST_EVERY`` per client, whoever is looking) and waits for it at most
``panel_usage_wait_seconds``, then shows what it has, with the time it is from. Nothing here calls
SolusVM 2. Prices come from ``shared.pricing``, the invoicer's own code, so the figures follow the
invoice's rules: hours rounded up per VM, the monthly cap, each line rounded to the currency's unit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from services.signup import figures_store
from services.signup.figures_store import InvoiceRow, UsageRow
from services.signup.settings import SignupSettings
from shared.clock import Clock
from shared.db import Database
from shared.errors import ConfigurationError
from shared.events.billing import VmUsage
from shared.events.usage import UsageToDateRequested
from shared.money import format_money
from shared.outbox import Outbox
from shared.periods import BillingPeriod
from shared.pricing import Tariff, tariff_for, vm_tokens

REQUEST_EVERY = timedelta(seconds=30)
LATEST_INVOICES = 5
_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class VmLine:
    name: str
    server_id: int
    plan_name: str
    hours: int
    tokens: int
    amount: str | None
    running: bool


@dataclass(frozen=True)
class UsageView:
    period: str
    as_of: datetime
    stale: bool
    source: str
    currency: str | None
    lines: tuple[VmLine, ...]
    total_tokens: int
    total: str | None
    estimate: str | None


@dataclass(frozen=True)
class InvoiceLink:
    invoice_id: int
    period: str
    amount: str
    due_date: str
    state: str  # "overdue", "paid", "cancelled"..., or "" when postpay was told nothing more
    url: str


def still_running(vm: VmUsage, as_of: datetime) -> bool:
    """Ran up to the figure's time and was not deleted: the estimate assumes it runs on."""
    return vm.deleted_at is None and vm.ran_until is not None and vm.ran_until >= as_of


def estimated_tokens(vm: VmUsage, as_of: datetime, month_ends_at: datetime) -> int:
    """The month's tokens if a VM running now keeps running to the month's end (a stopped or deleted one
    adds nothing): the billing rule applied to its hours so far plus the hours left."""
    if not still_running(vm, as_of):
        return vm.tokens
    left = max(month_ends_at - as_of, timedelta(0))
    return vm_tokens(vm.hours + -(-left // _HOUR), vm.tokens_per_hour, vm.tokens_per_month)


def usage_view(
    row: UsageRow, *, tariff: Tariff | None, month_ends_at: datetime, now: datetime, max_age: timedelta
) -> UsageView:
    """The figure priced line by line (each rounded on its own, as the invoice will be)."""

    def money(tokens: int) -> Decimal | None:
        return tariff.amount(tokens) if tariff is not None else None

    lines, total, estimate = [], Decimal(0), Decimal(0)
    for vm in row.vms:
        amount = money(vm.tokens)
        lines.append(
            VmLine(
                vm.name or f"#{vm.server_id}",
                vm.server_id,
                vm.plan_name,
                vm.hours,
                vm.tokens,
                _shown(amount, tariff),
                still_running(vm, row.as_of),
            )
        )
        total += amount or 0
        estimate += money(estimated_tokens(vm, row.as_of, month_ends_at)) or 0
    priced = tariff is not None
    return UsageView(
        period=row.period,
        as_of=row.as_of,
        stale=now - row.as_of > max_age,
        source=row.source,
        currency=tariff.currency if tariff else None,
        lines=tuple(lines),
        total_tokens=sum(vm.tokens for vm in row.vms),
        total=_shown(total, tariff) if priced else None,
        estimate=_shown(estimate, tariff) if priced else None,
    )


def _shown(amount: Decimal | None, tariff: Tariff | None) -> str | None:
    return f"{tariff.currency} {format_money(amount, tariff.currency)}" if amount is not None and tariff else None


def invoice_links(
    rows: Sequence[InvoiceRow], overdue_ids: Sequence[int], url: Callable[[int], str]
) -> list[InvoiceLink]:
    links = []
    for row in rows:
        state = "overdue" if row.invoice_id in overdue_ids else (row.settled_status or "").lower()
        amount = (
            f"{row.currency} {format_money(row.total, row.currency)}" if row.total is not None and row.currency else ""
        )
        links.append(
            InvoiceLink(
                row.invoice_id,
                row.period or "",
                amount,
                row.due_date.isoformat() if row.due_date else "",
                state,
                url(row.invoice_id),
            )
        )
    return links


class AccountFigures:
    """Reads (and, when stale, asks for) a client's figures. ``on_commit`` wakes the outbox relay."""

    def __init__(
        self,
        db: Database,
        settings: SignupSettings,
        clock: Clock,
        outbox: Outbox,
        on_commit: Callable[[], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.db, self.settings, self.clock, self.outbox = db, settings, clock, outbox
        self._on_commit, self._sleep = on_commit, sleep

    def invoices(
        self, client_id: int, overdue_ids: Sequence[int], *, pay_url: Callable[[int], str]
    ) -> list[InvoiceLink]:
        with self.db.transaction() as session:
            rows = figures_store.latest_invoices(session, client_id, LATEST_INVOICES)
        return invoice_links(rows, overdue_ids, pay_url)

    def usage(self, client_id: int, currency: str | None) -> UsageView | None:
        """This month's figure, fresh if it can be had within the wait; None before the first arrives."""
        now = self.clock()
        period = BillingPeriod.containing(now, self.settings.billing_timezone)
        row = self._current(client_id, period)
        max_age = timedelta(seconds=self.settings.panel_usage_max_age_seconds)
        if row is None or now - row.as_of > max_age:
            if self._ask(client_id, period, now):
                row = self._wait_for_newer(client_id, period, row) or row
        if row is None:
            return None
        return usage_view(
            row, tariff=self._tariff(currency), month_ends_at=period.ends_at, now=self.clock(), max_age=max_age
        )

    def _current(self, client_id: int, period: BillingPeriod) -> UsageRow | None:
        with self.db.transaction() as session:
            row, _ = figures_store.usage_of(session, client_id)
        return row if row is not None and row.period == period.key else None

    def _ask(self, client_id: int, period: BillingPeriod, now: datetime) -> bool:
        with self.db.transaction() as session:
            if not figures_store.claim_request(session, client_id, now, now - REQUEST_EVERY):
                return False
            request = UsageToDateRequested(
                whmcs_client_id=client_id, period=period.key, starts_at=period.starts_at, timezone=period.timezone
            )
            self.outbox.add_event(session, request)
        try:
            self._on_commit()
        except Exception:
            pass
        return True

    def _wait_for_newer(self, client_id: int, period: BillingPeriod, before: UsageRow | None) -> UsageRow | None:
        deadline = time.monotonic() + self.settings.panel_usage_wait_seconds
        while time.monotonic() < deadline:
            self._sleep(0.1)
            row = self._current(client_id, period)
            if row is not None and (before is None or row.as_of > before.as_of):
                return row
        return None

    def _tariff(self, currency: str | None) -> Tariff | None:
        if not currency:
            return None
        try:
            return tariff_for(currency, self.settings.token_prices, {})
        except ConfigurationError:
            return None  # no token price for it: the invoice would be held too; show tokens only
