"""How the demo talks: a spinner per step (interactive) or plain lines (CI), and the invoice tables.

Each invoice is printed as WHMCS holds it, next to the amounts the demo expects from the scenario, so
a reader sees both the product's answer and why it is right.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from postpay.demo.expected import ExpectedLine, expected_total


class Narrator:
    def __init__(self, console: Console, *, interactive: bool) -> None:
        self.console = console
        self.interactive = interactive

    def title(self, text: str) -> None:
        self.console.rule(f"[bold]{escape(text)}[/bold]")

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        started = time.perf_counter()
        if self.interactive:
            with self.console.status(escape(text)):
                yield
        else:
            yield
        self.console.print(f"[green]✓[/green] {escape(text)} [dim]({time.perf_counter() - started:.1f} s)[/dim]")

    def note(self, text: str) -> None:
        self.console.print(f"    {escape(text)}", highlight=False)

    def failure(self, text: str) -> None:
        self.console.print(f"[bold red]✗ {escape(text)}[/bold red]")


@dataclass
class InvoiceCheck:
    """One customer's invoice (or its absence) against the expectation; ``problems`` empty when right."""

    customer: str
    email: str
    client_id: int
    currency: str
    expected: list[ExpectedLine]
    invoices: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)

    def check(self) -> InvoiceCheck:
        if not self.expected:
            if self.invoices:
                self.problems.append(f"{len(self.invoices)} invoice(s), but nothing ran in the month")
            return self
        if len(self.invoices) != 1:
            self.problems.append(f"{len(self.invoices)} invoices instead of exactly one")
            return self
        invoice = self.invoices[0]
        if invoice["currency_code"] != self.currency:
            self.problems.append(f"invoiced in {invoice['currency_code']}, not {self.currency}")
        items = invoice["items"]
        if len(items) != len(self.expected):
            self.problems.append(f"{len(items)} lines instead of {len(self.expected)}")
        for item, line in zip(items, self.expected):
            words = [f"{line.vm} (#", f"plan {line.plan})", f": {line.hours} hour", f", {line.tokens} token"]
            if not all(word in item["description"] for word in words) or Decimal(item["amount"]) != line.amount:
                self.problems.append(f"line {item['description']!r} {item['amount']} is not {line}")
        if Decimal(invoice["subtotal"]) != expected_total(self.expected):
            self.problems.append(f"subtotal {invoice['subtotal']}, expected {expected_total(self.expected)}")
        return self


def render_check(console: Console, period: str, result: InvoiceCheck) -> None:
    who = f"{result.customer} <{result.email}>, WHMCS client {result.client_id}"
    if not result.expected and not result.invoices:
        console.print(
            f"[green]✓[/green] {escape(who)}: nothing to bill for {period} (no VM ran in it)", highlight=False
        )
        return
    for invoice in result.invoices:
        mark = "[green]✓[/green]" if not result.problems else "[red]✗[/red]"
        console.print(
            f"{mark} [bold]Invoice #{invoice['id']}[/bold] · {escape(who)} · {period} · "
            f"{invoice['currency_code']} {invoice['subtotal']} · {invoice['status']}, due {invoice['duedate']}",
            highlight=False,
        )
        table = Table(box=box.SIMPLE_HEAD if console.is_terminal else box.ASCII, show_footer=True)
        # In a narrow terminal the description wraps; the amounts never do.
        table.add_column("line (as the WHMCS invoice has it)", footer="total", ratio=1)
        table.add_column(invoice["currency_code"], justify="right", footer=invoice["subtotal"], no_wrap=True)
        table.add_column("expected", justify="right", footer=format(expected_total(result.expected), "f"), no_wrap=True)
        expected = [format(line.amount, "f") for line in result.expected]
        for index, item in enumerate(invoice["items"]):
            table.add_row(
                escape(item["description"]), item["amount"], expected[index] if index < len(expected) else "-"
            )
        console.print(table)
    for problem in result.problems:
        console.print(f"[red]  ✗ {escape(problem)}[/red]")
