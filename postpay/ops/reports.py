"""How the billing operator commands print: dry-run previews, period status, live progress."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from postpay.ops.dry_run import ClientPreview
from postpay.ops.status import PeriodStatus
from services.invoicer.public import LineChange
from shared.money import format_money

_MARKS = {"same": " ", "changed": "~", "added": "+", "removed": "-"}
_STYLES = {"same": "", "changed": "yellow", "added": "green", "removed": "red"}


def _money(amount: Decimal | None) -> str:
    return "" if amount is None else format(amount, "f")


def render_preview(console: Console, preview: ClientPreview) -> None:
    client = f"client {preview.client_id}"
    if preview.verdict == "failed":
        console.print(f"[red]{client}: cannot preview: {preview.error}[/red]")
    elif preview.verdict == "nothing-to-bill":
        console.print(f"{client}: nothing to bill")
    elif preview.verdict in ("would-hold", "would-pause"):
        draft = preview.draft
        assert draft is not None
        if preview.verdict == "would-hold":
            why = "; ".join(reason.text for reason in preview.reasons)
            console.print(
                f"[red]{client}: would hold an invoice of {draft.currency} {_money(draft.total)} for an "
                f"operator: {why}[/red]"
            )
        else:
            console.print(
                f"[yellow]{client}: would keep an invoice of {draft.currency} {_money(draft.total)}: "
                f"its period is paused[/yellow]"
            )
    elif preview.verdict == "would-create":
        draft = preview.draft
        assert draft is not None
        lines = "1 line" if len(draft.lines) == 1 else f"{len(draft.lines)} lines"
        console.print(
            f"[green]{client}: would create an invoice of {draft.currency} {_money(draft.total)} "
            f"({lines}, due {draft.due_date.isoformat()})[/green]"
        )
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
        table.add_column("line")
        table.add_column(draft.currency, justify="right")
        for line in draft.lines:
            table.add_row(line.description, _money(line.amount))
        console.print(table)
    else:
        issued = preview.issued
        assert issued is not None
        was = f"{issued.currency_code or '?'} {_money(issued.subtotal)}"
        if preview.verdict == "unchanged":
            console.print(f"{client}: invoice #{issued.id} matches the usage ({was})")
            return
        proposed = preview.draft
        now = f"{proposed.currency} {_money(proposed.total)}" if proposed else "nothing to bill"
        console.print(
            f"[yellow]{client}: invoice #{issued.id} ({issued.status}, {was}) differs from the usage "
            f"now ({now}); a replay will not change it[/yellow]"
        )
        _render_changes(console, preview.changes)


def _render_changes(console: Console, changes: Iterable[LineChange]) -> None:
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    for column, justify in (("", "left"), ("line", "left"), ("issued", "right"), ("now", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for change in changes:
        issued = _money(change.issued.amount) if change.issued else ""
        proposed = _money(change.proposed.amount) if change.proposed else ""
        description = change.description
        if change.kind == "changed" and change.issued and change.issued.description != description:
            description = f"{change.issued.description}\n→ {description}"
        table.add_row(_MARKS[change.kind], description, issued, proposed, style=_STYLES[change.kind])
    console.print(table)


def render_summary(console: Console, verdicts: Counter[str]) -> None:
    parts = [f"{count} {verdict}" for verdict, count in sorted(verdicts.items())]
    console.print(f"[bold]dry run: {', '.join(parts) or 'no customers'}; nothing was created or changed[/bold]")


def render_status(console: Console, status: PeriodStatus, minor_units: Mapping[str, int] | None = None) -> None:
    """``minor_units``: the invoicer's overrides of ISO 4217, so totals print as precisely as they were billed."""
    period = status.period
    console.print(
        f"[bold]{period.key}[/bold] ({period.timezone}: {period.starts_at.isoformat()} to {period.ends_at.isoformat()})"
    )
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(justify="left")
    table.add_column(justify="right")
    fanout = "not started" if not status.fanout_started else ("done" if status.fanout_finished else "running")
    table.add_row("customers expected", str(status.expected))
    table.add_row(f"work items requested ({fanout})", str(status.requested))
    table.add_row("usage collected", str(status.collected))
    table.add_row("invoiced", str(status.invoiced))
    table.add_row("nothing to bill", str(status.nothing_to_bill))
    table.add_row("parked", "unknown" if status.parked is None else str(status.parked))
    table.add_row("held for an operator", str(status.held))
    table.add_row("paused", str(status.paused))
    table.add_row("rejected", str(status.rejected))
    table.add_row("outcome uncertain (waiting)", str(status.uncertain))
    table.add_row("still to do", str(max(status.expected - status.accounted, 0)))
    for currency, total in sorted(status.invoiced_totals.items()):
        table.add_row(f"invoiced {currency}", format_money(total, currency, minor_units))
    console.print(table)
    pause = status.pause
    if pause is not None and pause.active:
        console.print(
            f"[red]{period.key} is paused since {pause.paused_at.isoformat()}: {pause.held} of {pause.seen} "
            f"customers seen were held. Review them (postpay holds list --period {period.key}), then "
            f"postpay holds resume {period.key} --reason ...[/red]"
        )
    elif pause is not None and pause.resumed_at is not None:
        console.print(f"{period.key} was paused, and resumed by {pause.resumed_by} at {pause.resumed_at.isoformat()}")
    if status.held:
        console.print(f"[yellow]{status.held} invoice(s) held: postpay holds list --period {period.key}[/yellow]")
    if status.meter is not None:
        render_meter(console, status)


def render_meter(console: Console, status: PeriodStatus) -> None:
    """The meter's coverage of the period: whether it has watched past its end, and every gap."""
    meter, period = status.meter, status.period
    assert meter is not None
    until = meter.observed_until.isoformat() if meter.observed_until else "nothing yet"
    state = "past the period's end" if meter.covers(period) else "not yet past the period's end"
    console.print(f"meter: observed until {until} ({state})")
    if meter.waiting:
        console.print(f"  waiting for the meter: {meter.waiting} customer(s)")
    if meter.metered_since is None or meter.metered_since > period.starts_at:
        since = meter.metered_since.isoformat() if meter.metered_since else "never"
        console.print(f"  [yellow]not metered from the period's start: the meter began {since}[/yellow]")
    for gap in meter.gaps:
        hours = (gap.ends_at - gap.starts_at).total_seconds() / 3600
        console.print(
            f"  [yellow]gap: {gap.starts_at.isoformat()} to {gap.ends_at.isoformat()} "
            f"({hours:.1f} h unobserved)[/yellow]"
        )
    if not meter.gaps:
        console.print("  no gaps")


def follow_status(console: Console, poll: Callable[[], PeriodStatus], wait: Callable[[], bool]) -> PeriodStatus:
    """A live bar until the close is complete; ``wait`` sleeps between polls and returns False to stop."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        status = poll()
        task = progress.add_task(status.period.key, total=max(status.expected, 1), detail="")
        while True:
            parked = "?" if status.parked is None else str(status.parked)
            progress.update(
                task,
                total=max(status.expected, 1),
                completed=status.accounted,
                detail=f"collected {status.collected} · invoiced {status.invoiced} · "
                f"nothing {status.nothing_to_bill} · held {status.held} · paused {status.paused} · "
                f"parked {parked}",
            )
            if status.complete or not wait():
                return status
            status = poll()
