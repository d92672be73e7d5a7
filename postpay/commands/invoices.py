"""``postpay invoices list|show``: postpay's invoices, and where every line's amount came from.

postpay invoices list --period 2026-10
postpay invoices show 1234 --json
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from postpay.lookups.cli_support import echo_json, fail, lookup_context
from postpay.lookups.invoices import InvoiceDetail, invoice_detail, list_invoices

invoices_app = typer.Typer(
    help="Invoices postpay created, each line traced to the usage, price and rounding.", no_args_is_help=True
)
NEEDS = ("invoicer",)


def _money(value: object) -> str:
    return "" if value is None else format(value, "f")


@invoices_app.command("list")
def list_command(
    period: Annotated[str | None, typer.Option(help="Only this billing month, e.g. 2026-10.")] = None,
    client: Annotated[int | None, typer.Option(help="Only this WHMCS client.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The invoicer's ledger: per (client, month) invoiced, nothing to bill, or pending."""
    with lookup_context(NEEDS) as context:
        entries = list_invoices(context.db, period=period, client_id=client, limit=limit)
    if as_json:
        echo_json(entries)
        return
    if not entries:
        typer.echo(
            "No invoice on record" + (f" for {period}" if period else "") + (f" for client {client}" if client else "")
        )
        return
    table = Table("invoice", "client", "period", "state", "currency", "total", "lines", "due", "run key")
    for entry in entries:
        table.add_row(
            str(entry.invoice_id or ""),
            str(entry.whmcs_client_id),
            entry.period,
            entry.status,
            entry.currency or "",
            _money(entry.total),
            str(entry.line_count or ""),
            entry.due_date.isoformat() if entry.due_date else "",
            entry.run_key,
        )
    Console(width=200).print(table)


@invoices_app.command("show")
def show(
    invoice_id: Annotated[int, typer.Argument(help="The WHMCS invoice id.", show_default=False)],
    offline: Annotated[bool, typer.Option("--offline", help="Do not ask WHMCS for the invoice's status.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """One invoice: its lines with their provenance (VM, hours, tokens, cap, token price, unrounded amount,
    rounding), run key, ledger state and WHMCS status."""
    with lookup_context(NEEDS) as context:
        detail = invoice_detail(context.db, context.deps.whmcs, invoice_id, live=not offline)
    if detail is None:
        fail(f"postpay created no invoice #{invoice_id} (its ledger has no such invoice id)")
        return
    if as_json:
        echo_json({**_as_dict(detail), "provenance_note": detail.provenance_note})
        return
    render(Console(width=200), detail)


def _as_dict(detail: InvoiceDetail) -> dict:
    from postpay.lookups.jsonable import jsonable

    data = jsonable(detail)
    for line, original in zip(data["lines"], detail.lines):
        line["rounding"] = _money(original.rounding) or None
    return data


def render(console: Console, detail: InvoiceDetail) -> None:
    entry = detail.ledger
    console.print(
        f"[bold]Invoice #{detail.invoice_id}[/bold]: client {entry.whmcs_client_id}, {entry.period}, "
        f"{entry.currency} {_money(entry.total)}, due {entry.due_date}"
    )
    console.print(f"run key {entry.run_key}; ledger {entry.status} after {entry.attempts} attempt(s)")
    if detail.whmcs_error:
        console.print(f"[yellow]WHMCS: {escape(detail.whmcs_error)}[/yellow]")
    elif detail.whmcs_status is not None:
        console.print(
            f"WHMCS: {detail.whmcs_status}, total {_money(detail.whmcs_total)}, balance {_money(detail.whmcs_balance)}"
        )
    if detail.provenance_note:
        console.print(f"[yellow]{detail.provenance_note}[/yellow]")
        return
    table = Table(
        "#",
        "VM",
        "plan",
        "hours",
        "tokens/h",
        "tokens/month",
        "tokens",
        "cap",
        "token price",
        "unrounded",
        "rounding",
        "amount",
    )
    for line in detail.lines:
        capped = "" if line.capped is None else ("applied" if line.capped else "no")
        table.add_row(
            str(line.position),
            escape(f"{line.vm_name} (#{line.server_id})" if line.server_id else "-"),
            escape(line.plan_name or ""),
            str(line.hours if line.hours is not None else ""),
            str(line.tokens_per_hour or ""),
            str(line.tokens_per_month or ""),
            str(line.tokens or 0),
            capped,
            _money(line.token_price),
            _money(line.unrounded),
            _money(line.rounding),
            f"{line.currency} {_money(line.amount)}",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(invoices_app, name="invoices")
