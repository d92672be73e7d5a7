"""Billing commands: ``postpay scheduler``, ``close-period``, ``replay`` and ``period status``.

These replace the seed's by-hand invoicing (editing WHMCS's configuration file to invoice a past
month, and remembering to undo it): closing a month is idempotent, and a replay can never create a
second invoice for a (client, period).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any

import typer
from rich.console import Console

from postpay.lookups.periods import closed_info, never_closed_hint
from postpay.ops.context import BillingContext
from postpay.ops.dry_run import preview_period
from postpay.ops.reports import follow_status, render_preview, render_status, render_summary
from postpay.ops.status import PeriodStatus, count_parked, period_status
from services.scheduler.public import (
    Emitted,
    PeriodChoice,
    PeriodNotClosed,
    PeriodNotEnded,
    close_period,
    replay_period,
)
from services.usage_collector.public import UsageCollectorSettings, customers_page
from shared.bus.messages import PublishError
from shared.bus.rabbit import CONNECTION_ERRORS
from shared.periods import BillingPeriod
from shared.settings import KernelSettings

PeriodArgument = Annotated[str, typer.Argument(help="The billing month, e.g. 2026-10.", show_default=False)]

period_app = typer.Typer(help="Billing periods: how far a month's close has come.", no_args_is_help=True)


def _context() -> BillingContext:
    return BillingContext.from_settings()


def _choice(context: BillingContext, key: str) -> PeriodChoice:
    try:
        return context.period_choice(key)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _period(context: BillingContext, key: str) -> BillingPeriod:
    return _choice(context, key).period


def _ended_choice(context: BillingContext, key: str) -> PeriodChoice:
    """The window of a month that has ended. A month still running in the configured zone is refused
    before the database is read (a closed month's own window is checked again when it is used)."""
    try:
        calendar = BillingPeriod.parse(key, context.scheduler_settings.billing_timezone)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if not calendar.has_ended(context.deps.clock()):
        raise typer.BadParameter(
            f"{calendar.key} ({calendar.timezone}) ends at {calendar.ends_at.isoformat()}; "
            "it cannot be billed before then"
        )
    return _choice(context, key)


def _explain_window(console: Console, choice: PeriodChoice) -> None:
    """Say which window is used when the configured zone is not simply applied."""
    period = choice.period
    if choice.zone_setting_ignored:
        console.print(
            f"{period.key} was closed in {period.timezone}: its recorded window is used, not "
            f"POSTPAY_BILLING_TIMEZONE={choice.requested_timezone}, which takes effect from the first "
            "month not closed yet"
        )
    elif choice.continues_previous:
        console.print(
            f"{period.key} starts where {period.previous().key} ended (local midnight in "
            f"{period.starts_in}), so no hour is billed twice or dropped; {period.timezone} applies from "
            f"its end on: {period.hours} hours"
        )


def _announce(console: Console, context: BillingContext, emitted: Emitted) -> None:
    period = emitted.period
    try:
        shipped = context.publish_scheduler_events()
    except CONNECTION_ERRORS as exc:
        # The close is committed in the scheduler's outbox: it waits there, it is not lost.
        console.print(
            f"[yellow]RabbitMQ is unreachable ({exc.__class__.__name__}); the close waits in the "
            "scheduler's outbox and a running scheduler or relay publishes it once the broker returns[/]"
        )
        shipped = 0
    except PublishError as exc:
        console.print(
            f"[yellow]RabbitMQ did not take the close ({exc}); it waits in the scheduler's outbox "
            "and the scheduler or relay publishes it[/]"
        )
        shipped = 0
    where = "published" if shipped else "queued in the scheduler's outbox (its relay publishes it)"
    console.print(
        f"{period.key} ({period.timezone}, {period.starts_at.isoformat()} to {period.ends_at.isoformat()}): "
        f"{emitted.trigger} event {emitted.event_id} {where}"
    )


def scheduler() -> None:
    """Run the scheduler until SIGTERM: daily, close every billing month that has ended."""
    from postpay.commands.run import Part, run

    if KernelSettings().amqp_url is None:
        # Its close events would go to a bus inside this process that no collector listens to, while
        # the months would be recorded as closed: run everything in one process instead.
        raise typer.BadParameter(
            "the scheduler alone needs RabbitMQ (POSTPAY_AMQP_URL); with the in-process bus run `postpay run all`"
        )
    run(Part.scheduler)


def close_period_command(period: PeriodArgument) -> None:
    """Close a billing month by hand (idempotent: closing it again changes nothing)."""
    console = Console()
    context = _context()
    try:
        # The month in the zone configured now; close_period keeps the window recorded if it was closed.
        requested = BillingPeriod.parse(
            _ended_choice(context, period).period.key, context.scheduler_settings.billing_timezone
        )
        now = context.deps.clock()
        with context.db.transaction() as session:
            emitted = close_period(session, context.services["scheduler"].outbox, requested, trigger="manual", now=now)
        assert emitted is not None and emitted.choice is not None
        _explain_window(console, emitted.choice)
        if not emitted.newly_closed:
            console.print(
                f"{emitted.period.key} was already closed: its close event is sent again, and every "
                "consumer that saw it skips it"
            )
        _announce(console, context, emitted)
    except PeriodNotEnded as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        context.close()


def replay(
    period: Annotated[str, typer.Option("--period", help="The billing month, e.g. 2026-10.", show_default=False)],
    client: Annotated[list[int] | None, typer.Option("--client", help="Only this WHMCS client (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Create nothing; print what would be invoiced.")] = False,
) -> None:
    """Collect and price a month again. Invoiced (client, period) pairs are never invoiced twice;
    --dry-run prints, per client, the invoice that would be created or its diff against the issued one."""
    console = Console()
    context = _context()
    try:
        choice = _ended_choice(context, period)
        billing_period = choice.period
        now = context.deps.clock()
        if not billing_period.has_ended(now):
            raise typer.BadParameter(f"{billing_period.key} has not ended yet")
        if not choice.recorded and not dry_run:
            raise typer.BadParameter(
                f"{billing_period.key} has not been closed: close it first (postpay close-period {billing_period.key})"
            )
        _explain_window(console, choice)
        if not choice.recorded:
            console.print(
                f"{billing_period.key} is not closed yet: previewing the window a close would record now "
                f"({billing_period.starts_at.isoformat()} to {billing_period.ends_at.isoformat()})"
            )
        if client:
            _check_enrolled(context, billing_period, client)
        if dry_run:
            verdicts: Counter[str] = Counter()
            previews = preview_period(
                context.db,
                context.deps.solusvm,
                context.deps.whmcs,
                billing_period,
                context.invoicer_settings,
                now=now,
                client_ids=client,
                collector=context.deps.settings(UsageCollectorSettings),
            )
            for preview in previews:
                verdicts[preview.verdict] += 1
                render_preview(console, preview)
            render_summary(console, verdicts)
            return
        with context.db.transaction() as session:
            emitted = replay_period(
                session, context.services["scheduler"].outbox, billing_period, client_ids=client, now=now
            )
        _announce(console, context, emitted)
    except (PeriodNotEnded, PeriodNotClosed) as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        context.close()


def _check_enrolled(context: BillingContext, period: BillingPeriod, client_ids: list[int]) -> None:
    """A replay for a client the collector does not bill in this period would silently do nothing."""
    with context.db.transaction() as session:
        page = customers_page(session, enrolled_before=period.ends_at, after=0, limit=len(client_ids), only=client_ids)
    unknown = sorted(set(client_ids) - {customer.whmcs_client_id for customer in page})
    if unknown:
        raise typer.BadParameter(f"not enrolled before {period.key} ended: client {', '.join(map(str, unknown))}")


@period_app.command("status")
def status(
    period: PeriodArgument,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Show a live progress bar until the close is done.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls when following.", min=0.1)] = 1.0,
) -> None:
    """Customers expected, collected, invoiced, with nothing to bill, and parked, for one month."""
    console = Console()
    context = _context()
    try:
        billing_period = _period(context, period)

        if context.bus_is_local:
            console.print("parked work is counted only on RabbitMQ: the in-process bus keeps it inside its own process")

        def parked() -> int | None:
            if context.bus_is_local:
                return None
            try:
                return count_parked(context.bus, billing_period)
            except CONNECTION_ERRORS as exc:
                # The counts from the database still help while the broker is away; say what is missing.
                console.print(f"[yellow]broker unreachable ({exc.__class__.__name__}): parked work not counted[/]")
                return None

        if closed_info(context.db, billing_period.key) is None:
            console.print(f"[yellow]{never_closed_hint(billing_period.key)}[/yellow]")
            if follow:
                # The operator may be watching for the scheduler's close: say so, since nothing moves until then.
                console.print("following: waiting for the month to be closed (Ctrl-C to stop)")
        if follow:
            follow_status(console, _poller(context, billing_period, parked), lambda: _sleep(interval))
        render_status(
            console,
            period_status(context.db, billing_period, parked=parked()),
            context.invoicer_settings.currency_minor_units,
        )
    finally:
        context.close()


def _poller(
    context: BillingContext, period: BillingPeriod, parked: Callable[[], int | None]
) -> Callable[[], PeriodStatus]:
    """Period status for a live bar. Counting parked messages walks the parking lots, so it is redone
    every few seconds, or at each poll once nothing else moves (only parked work may be left then)."""
    last: dict[str, Any] = {"at": time.monotonic(), "parked": parked(), "settled": -1}

    def poll() -> PeriodStatus:
        status = period_status(context.db, period, parked=last["parked"], with_totals=False)
        stalled = status.fanout_finished and status.settled == last["settled"]
        if stalled or time.monotonic() - last["at"] > 5:
            last.update(at=time.monotonic(), parked=parked())
            status = replace(status, parked=last["parked"])
        last["settled"] = status.settled
        return status

    return poll


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True


def register(app: typer.Typer) -> None:
    app.command("scheduler")(scheduler)
    app.command("close-period")(close_period_command)
    app.command("replay")(replay)
    app.add_typer(period_app, name="period")
