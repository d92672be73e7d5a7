"""``postpay customers list|show|import``: the support desk's view of a customer, and bringing existing
customers into postpay.

    postpay customers show 42            (or an email address)
    postpay customers import --client 42 --solusvm-user 17 --from 2026-11 --reason "moved from X"
    postpay customers import --csv customers.csv --reason "moved from X"
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from postpay.lookups.cli_support import echo_json, fail, lookup_context
from postpay.lookups.customers import CustomerDetail, NoSuchCustomer, customer_detail, list_customers
from postpay.lookups.imports import ImportRefused, ImportRequest, import_customers, read_csv
from postpay.operators.actor import actor_name

customers_app = typer.Typer(
    help="Customers: look-ups for the support desk, and importing existing customers.", no_args_is_help=True
)


@customers_app.command("list")
def list_command(
    status: Annotated[
        str | None,
        typer.Option(
            help="A stage (creating_client, awaiting_verification, "
            "awaiting_terms, provisioning, enrolled) or a standing "
            "(active, suspended, locked)."
        ),
    ] = None,
    search: Annotated[str | None, typer.Option(help="Part of the email, name or company, or a client id.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Customers who registered or were imported, by email."""
    with lookup_context(("signup", "provisioner")) as context:
        try:
            rows = list_customers(context.db, status=status, search=search, limit=limit)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--status") from exc
    if as_json:
        echo_json(rows)
        return
    table = Table("email", "name", "stage", "WHMCS client", "SolusVM 2 user", "standing", "registered")
    for row in rows:
        table.add_row(
            escape(row.email),
            escape(row.name),
            row.stage,
            str(row.whmcs_client_id or ""),
            str(row.solusvm_user_id or ""),
            row.standing or "",
            row.created_at.isoformat(timespec="minutes"),
        )
    Console(width=200).print(table if rows else "No customer matches.")


@customers_app.command("show")
def show(
    customer: Annotated[str, typer.Argument(help="WHMCS client id or email address.", show_default=False)],
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not ask WHMCS and SolusVM 2 (no usage to date).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Enrolment stage, consents, WHMCS client, SolusVM 2 user and its state, standing, invoices, usage to date."""
    with lookup_context() as context:
        try:
            detail = customer_detail(
                context.db,
                customer,
                whmcs=None if offline else context.deps.whmcs,
                solusvm=None if offline else context.deps.solusvm,
                now=context.deps.clock(),
                timezone=context.scheduler_settings.billing_timezone,
            )
        except NoSuchCustomer as exc:
            fail(str(exc))
            return
    if as_json:
        data = {"stage": detail.stage, "email": detail.email}
        from postpay.lookups.jsonable import jsonable

        data.update(jsonable(detail))
        if data.get("signup"):
            data["signup"].pop("encrypted_password", None)
        echo_json(data)
        return
    render(Console(width=200), detail)


def render(console: Console, detail: CustomerDetail) -> None:
    who = detail.email or f"client {detail.whmcs_client_id}"
    console.print(f"[bold]{escape(who)}[/bold]: {detail.stage}")
    facts = Table(show_header=False, box=None, padding=(0, 2))
    facts.add_row("WHMCS client", str(detail.whmcs_client_id or "-"))
    if detail.whmcs_client:
        client = detail.whmcs_client
        facts.add_row(
            "", escape(f"{client['name']} <{client['email']}>, {client['status']}, pays in {client['currency']}")
        )
    facts.add_row("SolusVM 2 user", str(detail.solusvm_user_id or "-"))
    if detail.solusvm_user:
        facts.add_row("", escape(f"{detail.solusvm_user['email']}, {detail.solusvm_user['status']}"))
    facts.add_row("billed since", detail.enrolled_for_billing_at.isoformat() if detail.enrolled_for_billing_at else "-")
    if detail.account:
        overdue = ", ".join(f"#{n}" for n in detail.account.overdue_invoice_ids) or "none overdue"
        facts.add_row("standing", escape(f"{detail.account.status} ({overdue}): {detail.account.reason}"))
    if detail.usage_to_date:
        usage = detail.usage_to_date
        facts.add_row(f"usage in {usage.period}", f"{usage.total_tokens} tokens on {len(usage.vms)} VM(s) so far")
    console.print(facts)
    for problem in detail.problems:
        console.print(f"[yellow]{escape(problem)}[/yellow]")
    if detail.consents:
        table = Table("accepted at", "terms", "version", "where", "IP address")
        for consent in detail.consents:
            table.add_row(
                consent.accepted_at.isoformat(timespec="seconds"),
                consent.kind,
                escape(consent.version),
                escape(consent.url),
                consent.ip_address or "",
            )
        console.print(table)
    if detail.invoices:
        table = Table("period", "state", "invoice", "currency", "total", "due")
        for entry in detail.invoices:
            table.add_row(
                entry.period,
                entry.status,
                str(entry.invoice_id or ""),
                entry.currency or "",
                format(entry.total, "f") if entry.total is not None else "",
                entry.due_date.isoformat() if entry.due_date else "",
            )
        console.print(table)


@customers_app.command("import")
def import_command(
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (kept in the consent record and the audit log).")],
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="A CSV file with the columns whmcs_client_id, solusvm_user (id or email) and billed_from.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    client: Annotated[int | None, typer.Option("--client", help="The WHMCS client id.")] = None,
    solusvm_user: Annotated[str | None, typer.Option("--solusvm-user", help="The SolusVM 2 user: id or email.")] = None,
    billed_from: Annotated[
        str | None,
        typer.Option("--from", help="First month postpay bills (2026-11), or that month's first day (2026-11-01)."),
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who is importing (default: user@host).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every row; import nothing.")] = False,
) -> None:
    """Enrol customers who already have a WHMCS client and a SolusVM 2 user (moving from another post-pay
    setup): they are billed from the month given, with a consent record naming the operator."""
    if not reason.strip():
        raise typer.BadParameter("say why: the consent record and the audit log keep it", param_hint="--reason")
    if csv_file is not None and (client or solusvm_user or billed_from):
        raise typer.BadParameter("give either --csv or --client/--solusvm-user/--from")
    if csv_file is not None:
        try:
            requests = read_csv(csv_file)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--csv") from exc
    elif client and solusvm_user and billed_from:
        requests = [ImportRequest(1, client, solusvm_user, billed_from)]
    else:
        raise typer.BadParameter("give --csv, or all of --client, --solusvm-user and --from")
    with lookup_context() as context:
        try:
            results = import_customers(context, requests, operator=actor_name(by), reason=reason, dry_run=dry_run)
        except ImportRefused as exc:
            for problem in exc.problems:
                typer.echo(problem, err=True)
            typer.echo("nothing was imported: fix the rows above and run the import again", err=True)
            raise typer.Exit(1) from exc
    for line in results:
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.add_typer(customers_app, name="customers")
