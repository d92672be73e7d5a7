"""Account lifecycle commands: ``postpay accounts sync [--dry-run]`` and ``postpay accounts list``.

``sync`` asks the provisioner to check every customer's standing now (as the daily tick does), by an
AccountsSyncRequested in the scheduler's outbox. ``sync --dry-run`` decides exactly as a check would,
from the same WHMCS reads and the same rule, and prints per customer what would change and why; it
writes nothing: not to postpay's tables, not to an outbox, not to WHMCS or SolusVM 2.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from postpay.ops.context import BillingContext
from services.provisioner.public import (
    Decision,
    Preview,
    ProvisionerSettings,
    accounts_page,
    customers_page,
    preview_standing,
    today_in,
)
from services.scheduler.public import request_accounts_sync
from shared.bus.amqp_wire import CONNECTION_ERRORS
from shared.bus.messages import PublishError

accounts_app = typer.Typer(help="The account lifecycle: SolusVM 2 users in step with WHMCS.", no_args_is_help=True)

ClientOption = Annotated[list[int] | None, typer.Option("--client", help="Only this WHMCS client (repeatable).")]


@accounts_app.command("sync")
def sync(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Change nothing; print what would change and why.")
    ] = False,
    client: ClientOption = None,
) -> None:
    """Check every customer's standing now, as the daily tick does: overdue → suspended, paid →
    reactivated, closed → locked, email in step."""
    console = Console()
    context = BillingContext.from_settings()
    try:
        timezone = context.scheduler_settings.billing_timezone
        now = context.deps.clock()
        if client:
            _check_provisioned(context, client)
        if dry_run:
            settings = context.deps.settings(ProvisionerSettings)
            today = today_in(now, timezone)
            console.print(
                f"Dry run for {today} ({timezone}), grace {settings.accounts_grace_days} days: nothing is changed."
            )
            verdicts: Counter[str] = Counter()
            for preview in preview_standing(context.db, context.deps.whmcs, settings, today, client_ids=client):
                verdicts[_render(console, preview)] += 1
            console.print(
                "Summary: "
                + (", ".join(f"{count} {verdict}" for verdict, count in sorted(verdicts.items())) or "no customers")
            )
            return
        with context.db.transaction() as session:
            requested = request_accounts_sync(
                session,
                context.services["scheduler"].outbox,
                timezone=timezone,
                now=now,
                trigger="manual",
                client_ids=client,
            )
        assert requested is not None  # a manual sync always has a fresh id
        try:
            shipped = context.publish_scheduler_events()
        except (PublishError, *CONNECTION_ERRORS) as exc:
            console.print(f"[yellow]not published now ({exc.__class__.__name__}: {exc})[/]")
            shipped = 0
        where = "published" if shipped else "queued in the scheduler's outbox (its relay publishes it)"
        console.print(f"accounts sync {requested.event_id} for {requested.day} ({timezone}) {where}")
    finally:
        context.close()


def _check_provisioned(context: BillingContext, client_ids: list[int]) -> None:
    """A sync for a client postpay never provisioned would silently check nobody."""
    with context.db.transaction() as session:
        page = customers_page(session, after=0, limit=len(client_ids), only=client_ids)
    unknown = sorted(set(client_ids) - {customer.whmcs_client_id for customer in page})
    if unknown:
        raise typer.BadParameter(f"not enrolled in SolusVM 2: client {', '.join(map(str, unknown))}")


def _render(console: Console, preview: Preview) -> str:
    """One customer's line (and details); returns its verdict for the summary."""
    customer = preview.customer
    who = f"client {customer.whmcs_client_id} (SolusVM 2 user {customer.solusvm_user_id})"
    decision = preview.decision
    if decision is None:
        console.print(f"{who}: [red]failed[/red]: {escape(preview.error or '')} (a check would retry; nothing changes)")
        return "failed"
    verdict = _verdict(decision)
    if verdict == "unchanged":
        console.print(f"{who}: {decision.status}, unchanged: {escape(decision.reason)}")
        return verdict
    if decision.status_changed:
        console.print(f"{who}: [bold]{decision.previous_status} → {decision.status}[/bold]: {escape(decision.reason)}")
    else:
        console.print(f"{who}: {decision.status}: {escape(decision.reason)}")
    for invoice in decision.newly_overdue:
        console.print(f"  invoice #{invoice.invoice_id} becomes overdue (due {invoice.due_date})")
    for invoice_id, status in decision.no_longer_overdue:
        console.print(f"  invoice #{invoice_id} is no longer overdue ({escape(status)})")
    if decision.new_email is not None:
        console.print(f"  email {escape(decision.previous_email)} → {escape(decision.new_email)}")
    if decision.reassert and not decision.status_changed:
        console.print(f"  an earlier write to SolusVM 2 is unconfirmed: {decision.status} is sent again")
    return verdict


def _verdict(decision: Decision) -> str:
    if decision.status_changed:
        return {"suspended": "to suspend", "locked": "to lock", "active": "to reactivate"}[decision.status]
    if decision.new_email is not None:
        return "email to update"
    if decision.changed or decision.reassert:
        return "other changes"
    return "unchanged"


@accounts_app.command("list")
def list_accounts(
    status: Annotated[str | None, typer.Option(help="Only this status: active, suspended or locked.")] = None,
) -> None:
    """Customers' account states as last applied to SolusVM 2 (customers never checked are not listed)."""
    if status is not None and status not in ("active", "suspended", "locked"):
        raise typer.BadParameter("status must be active, suspended or locked")
    console = Console()
    context = BillingContext.from_settings()
    try:
        table = Table("client", "SolusVM 2 user", "email", "status", "overdue", "checked", "why")
        after, shown = 0, 0
        while True:
            with context.db.transaction() as session:
                page = accounts_page(session, after=after, limit=500, status=status)
            for customer, account in page:
                overdue = ", ".join(f"#{number}" for number in account.overdue_invoice_ids)
                checked = account.checked_at.isoformat(timespec="minutes") if account.checked_at else "never"
                why = account.reason + (f" [{account.note}]" if account.note else "")
                table.add_row(
                    str(customer.whmcs_client_id),
                    str(customer.solusvm_user_id),
                    escape(customer.email),
                    account.status,
                    overdue,
                    checked,
                    escape(why),
                )
            shown += len(page)
            if len(page) < 500:
                break
            after = page[-1][0].whmcs_client_id
        console.print(table if shown else "no customer has been checked yet")
    finally:
        context.close()


def register(app: typer.Typer) -> None:
    app.add_typer(accounts_app, name="accounts")
