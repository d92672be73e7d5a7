"""``postpay holds list|show|release|reject|resume``: invoices the invoicer held for an operator.

An invoice that breaks a check (more hours than the month has, a total above the ceiling, a jump from
the client's earlier invoices...) is held instead of created; when too many of a period's customers are
held, the rest of the period is paused. See docs/operations.md, "Held invoices".
"""

from __future__ import annotations

import getpass
import re
import socket
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from postpay.ops.context import BillingContext
from postpay.ops.holds import HoldError, reject, release, resume
from services.invoicer import public as invoicer
from shared.bus.rabbit import CONNECTION_ERRORS
from shared.money import format_money
from shared.periods import PERIOD_PATTERN

holds_app = typer.Typer(help="Invoices held for an operator, and paused periods.", no_args_is_help=True)

ClientArgument = Annotated[int, typer.Argument(help="The WHMCS client id.", show_default=False)]
PeriodArgument = Annotated[str, typer.Argument(help="The billing month, e.g. 2026-10.", show_default=False)]
ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="Why (goes to the audit log).")]
ActorOption = Annotated[str | None, typer.Option("--by", help="Who is acting (default: user@host).")]
AllOption = Annotated[bool, typer.Option("--all", help="Decided ones too (released, rejected, superseded).")]


def _actor(by: str | None) -> str:
    return by or f"{getpass.getuser()}@{socket.gethostname()}"


def _check_period(period: str) -> str:
    if not re.match(PERIOD_PATTERN, period):
        raise typer.BadParameter(f"a billing period looks like 2026-10, not {period!r}")
    return period


def _minor_units(context: BillingContext) -> dict[str, int]:
    return context.invoicer_settings.currency_minor_units


@holds_app.command("list")
def list_holds(
    period: Annotated[str | None, typer.Option("--period", help="Only this month.")] = None,
    everything: AllOption = False,
) -> None:
    """Held and paused invoices (waiting for a decision), and the periods paused."""
    console = Console()
    context = BillingContext.from_settings()
    try:
        statuses = (invoicer.HELD, invoicer.PAUSED)
        if everything:
            statuses += (invoicer.RELEASED, invoicer.REJECTED, invoicer.SUPERSEDED)
        with context.db.transaction() as session:
            pauses = invoicer.active_pauses(session)
            shown = invoicer.holds_listing(
                session, period=_check_period(period) if period else None, statuses=statuses, limit=100_000
            )
        for pause in pauses:
            if period is None or pause.period == period:
                console.print(
                    f"[red]{pause.period} is paused since {pause.paused_at.isoformat()} ({pause.held} of "
                    f"{pause.seen} customers seen were held): postpay holds resume {pause.period} "
                    "--reason ...[/red]"
                )
        table = Table("period", "client", "status", "total", "reasons", "since", "decided")
        for hold in shown:
            decided = f"{hold.decided_by}: {hold.decision_reason}" if hold.decided_by else ""
            table.add_row(
                hold.period,
                str(hold.whmcs_client_id),
                hold.status,
                f"{hold.currency} {format_money(hold.total, hold.currency, _minor_units(context))}",
                ", ".join(reason.code for reason in hold.reasons) or "-",
                hold.created_at.isoformat(),
                decided,
            )
        console.print(table)
        console.print(f"{len(shown)} invoice(s)")
    finally:
        context.close()


@holds_app.command("show")
def show(client: ClientArgument, period: PeriodArgument) -> None:
    """One held invoice: why, its lines as computed, and every decision about it."""
    console = Console()
    context = BillingContext.from_settings()
    try:
        with context.db.transaction() as session:
            hold = invoicer.hold(session, client, _check_period(period))
            history = invoicer.hold_history(session, period, client)
        if hold is None:
            raise typer.BadParameter(f"no invoice of client {client} for {period} was held")
        units = _minor_units(context)
        console.print(
            f"[bold]client {client}, {period}[/bold]: {hold.status}, {hold.currency} "
            f"{format_money(hold.total, hold.currency, units)}"
        )
        for reason in hold.reasons:
            console.print(f"  [red]{reason.code}[/red]: {reason.text}")
        if hold.provenance:
            console.print(f"  {hold.provenance}")
        table = Table("line", hold.currency)
        for line in hold.lines:
            table.add_row(line.description, format_money(line.amount, hold.currency, units))
        console.print(table)
        log = Table("when", "action", "by", "why")
        for entry in history:
            log.add_row(entry.at.isoformat(), entry.action, entry.actor, entry.reason)
        console.print(log)
    finally:
        context.close()


@holds_app.command("release")
def release_command(
    client: ClientArgument, period: PeriodArgument, reason: ReasonOption, by: ActorOption = None
) -> None:
    """Invoice a held invoice exactly as it was computed (dated today); audited."""
    console = Console()
    context = BillingContext.from_settings()
    try:
        now = context.deps.clock()
        try:
            hold = release(
                context.db,
                context.services["invoicer"].outbox,
                client,
                _check_period(period),
                actor=_actor(by),
                reason=reason,
                now=now,
            )
        except HoldError as exc:
            raise typer.BadParameter(str(exc)) from exc
        console.print(
            f"released: client {client}, {period}, {hold.currency} "
            f"{format_money(hold.total, hold.currency, _minor_units(context))}; {_ship(context)}"
        )
    finally:
        context.close()


@holds_app.command("reject")
def reject_command(
    client: ClientArgument, period: PeriodArgument, reason: ReasonOption, by: ActorOption = None
) -> None:
    """Never invoice this held invoice; the reason is recorded (bill by hand in WHMCS if need be)."""
    console = Console()
    context = BillingContext.from_settings()
    try:
        try:
            reject(context.db, client, _check_period(period), actor=_actor(by), reason=reason, now=context.deps.clock())
        except HoldError as exc:
            raise typer.BadParameter(str(exc)) from exc
        console.print(f"rejected: client {client}, {period} will not be invoiced by postpay")
    finally:
        context.close()


@holds_app.command("resume")
def resume_command(period: PeriodArgument, reason: ReasonOption, by: ActorOption = None) -> None:
    """End a period's pause: every invoice kept while it was paused is created; held ones stay held."""
    console = Console()
    context = BillingContext.from_settings()
    try:
        try:
            resumed = resume(
                context.db,
                context.services["invoicer"].outbox,
                _check_period(period),
                actor=_actor(by),
                reason=reason,
                now=context.deps.clock(),
            )
        except HoldError as exc:
            raise typer.BadParameter(str(exc)) from exc
        state = "resumed" if resumed.newly_resumed else "was resumed already"
        console.print(f"{period} {state}: {resumed.released} paused invoice(s) released; {_ship(context)}")
    finally:
        context.close()


def _ship(context: BillingContext) -> str:
    """Publish the invoicer's outbox now where the broker is reachable; otherwise its relay will."""
    try:
        shipped = context.publish_events("invoicer")
    except CONNECTION_ERRORS as exc:
        return f"RabbitMQ is unreachable ({exc.__class__.__name__}): the release waits in the invoicer's outbox"
    return "published to the invoicer" if shipped else "queued in the invoicer's outbox (its relay publishes it)"


def register(app: typer.Typer) -> None:
    app.add_typer(holds_app, name="holds")
