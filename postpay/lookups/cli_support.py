"""What the look-up commands share: a checked context, JSON output, plain one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from postpay.bootstrap import SERVICES
from postpay.lookups.jsonable import jsonable
from postpay.ops.context import BillingContext

JsonOption = typer.Option("--json", help="Print JSON instead of a table.")


@contextmanager
def lookup_context(needs: tuple[str, ...] = SERVICES) -> Iterator[BillingContext]:
    context = BillingContext.from_settings(needs=needs)
    try:
        yield context
    finally:
        context.close()


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(jsonable(value), indent=2, sort_keys=True))


def fail(message: str, code: int = 1) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)
