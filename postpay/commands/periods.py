"""``postpay periods list``: every billing month, closed or not, with its window and progress."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from postpay.lookups.cli_support import echo_json, lookup_context
from postpay.lookups.periods import list_periods

periods_app = typer.Typer(
    help="Billing months: which are closed, and how far each close has come.", no_args_is_help=True
)
NEEDS = ("scheduler", "usage_collector")


@periods_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """From the first month postpay knows of to the current one, newest first."""
    with lookup_context(NEEDS) as context:
        periods = list_periods(context.db, context.scheduler_settings.billing_timezone, context.deps.clock())
    if as_json:
        echo_json([{**_row(p)} for p in periods])
        return
    table = Table("month", "window", "state", "closed at", "expected", "invoiced", "nothing to bill", "still to do")
    for period in periods:
        status = period.status
        table.add_row(
            period.key,
            f"{period.starts_at.isoformat()} to {period.ends_at.isoformat()}",
            period.state,
            period.closed_at.isoformat(timespec="minutes") if period.closed_at else "",
            str(status.expected),
            str(status.invoiced),
            str(status.nothing_to_bill),
            str(max(status.expected - status.accounted, 0)) if period.state == "closed" else "",
        )
    Console(width=200).print(table)


def _row(period: object) -> dict:
    from postpay.lookups.jsonable import jsonable

    data = jsonable(period)
    data["status"].pop("period", None)
    return data


def register(app: typer.Typer) -> None:
    app.add_typer(periods_app, name="periods")
