"""After a run: is every invoice there, once, saying exactly what the oracle says?

The invoices are read from the WHMCS simulator's own records (``/_sim/invoices``), not from postpay's
ledger, and compared line by line with ``bench.world.expected_lines``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from bench.world import World, expected_lines

MAX_REPORTED = 10


@dataclass
class InvoiceCheck:
    expected: int = 0
    found: int = 0
    lines: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0 and self.found == self.expected

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(text)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "expected_invoices": self.expected,
            "invoices_found": self.found,
            "lines_checked": self.lines,
            "totals": {code: str(total) for code, total in sorted(self.totals.items())},
            "problem_count": self.problem_count,
            "problems": self.problems,
        }


def check_invoices(world: World, invoices: list[dict[str, Any]], billed: Iterable[int], now: datetime) -> InvoiceCheck:
    """Every client in ``billed`` has exactly one invoice matching the oracle; nobody else has any."""
    by_client: dict[int, list[dict[str, Any]]] = {}
    for invoice in invoices:
        by_client.setdefault(int(invoice["client_id"]), []).append(invoice)
    result = InvoiceCheck()
    billed_ids = set(billed)
    for client_id in sorted(billed_ids):
        result.expected += 1
        found = by_client.pop(client_id, [])
        if len(found) != 1:
            result.problem(f"client {client_id}: {len(found)} invoices, not 1")
            continue
        result.found += 1
        customer = world.customer(client_id)
        _compare(result, found[0], expected_lines(customer, world.period, now), customer.currency)
    for client_id, extra in sorted(by_client.items()):
        result.problem(f"client {client_id} was not to be invoiced by this run but has {len(extra)} invoice(s)")
    return result


def _compare(result: InvoiceCheck, invoice: dict[str, Any], expected: list[Any], currency: str) -> None:
    where = f"invoice {invoice['id']} (client {invoice['client_id']})"
    items = invoice["items"]
    if invoice["currency_code"] != currency or invoice["status"] != "Unpaid":
        result.problem(f"{where}: {invoice['currency_code']} {invoice['status']}, expected {currency} Unpaid")
    if len(items) != len(expected):
        result.problem(f"{where}: {len(items)} lines, expected {len(expected)}")
        return
    for item, line in zip(items, expected):
        result.lines += 1
        text = item["description"]
        wanted = (f"(#{line.server_id},", f": {line.hours} hour", f", {line.tokens} token")
        if (
            not all(part in text for part in wanted)
            or not text.endswith(f", {line.ran}")
            or Decimal(item["amount"]) != line.amount
        ):
            result.problem(f"{where}: line {text!r} {item['amount']}, expected {line}")
    total = sum((line.amount for line in expected), Decimal(0))
    if Decimal(invoice["subtotal"]) != total:
        result.problem(f"{where}: subtotal {invoice['subtotal']}, expected {total}")
    result.totals[currency] = result.totals.get(currency, Decimal(0)) + total
