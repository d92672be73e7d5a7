"""``postpay operators add|list|passwd|disable``: accounts for the web console (``postpay run console``).

Passwords are read from a prompt (or ``--password-stdin`` for scripts), never from the command line,
where they would stay in the shell history and the process list.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from postpay.operators.accounts import OperatorError, add_operator, disable_operator, list_operators, set_password
from postpay.operators.actor import actor_name
from postpay.ops.context import open_database
from shared.clock import utcnow

operators_app = typer.Typer(help="Operator accounts of the web console.", no_args_is_help=True)
UsernameArgument = Annotated[str, typer.Argument(help="The operator's username.", show_default=False)]
StdinOption = Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who is acting (default: user@host).")]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def _run(action: object) -> None:
    db = open_database(needs=("console",))
    try:
        with db.transaction() as session:
            action(session)  # type: ignore[operator]
    except OperatorError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()


@operators_app.command("add")
def add(username: UsernameArgument, password_stdin: StdinOption = False, by: ByOption = None) -> None:
    """Create an operator who can log in to the console."""
    password = _password(password_stdin)
    _run(lambda session: add_operator(session, username, password, created_by=actor_name(by), now=utcnow()))
    typer.echo(f"operator {username.strip().lower()} added")


@operators_app.command("passwd")
def passwd(username: UsernameArgument, password_stdin: StdinOption = False, by: ByOption = None) -> None:
    """Set an operator's password (their open sessions end)."""
    password = _password(password_stdin)
    _run(lambda session: set_password(session, username, password, actor=actor_name(by), now=utcnow()))
    typer.echo(f"password of {username} changed; their sessions are closed")


@operators_app.command("disable")
def disable(
    username: UsernameArgument,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (goes to the audit log).")],
    by: ByOption = None,
) -> None:
    """Stop an operator from logging in (their open sessions end)."""
    _run(lambda session: disable_operator(session, username, actor=actor_name(by), reason=reason, now=utcnow()))
    typer.echo(f"operator {username} disabled")


@operators_app.command("list")
def list_command() -> None:
    """Every operator, when created and by whom, and their last login."""
    db = open_database(needs=("console",))
    try:
        with db.transaction() as session:
            found = list_operators(session)
    finally:
        db.dispose()
    table = Table("username", "created", "by", "last login", "disabled")
    for operator in found:
        table.add_row(
            operator.username,
            operator.created_at.isoformat(timespec="minutes"),
            operator.created_by,
            operator.last_login_at.isoformat(timespec="minutes") if operator.last_login_at else "never",
            operator.disabled_at.isoformat(timespec="minutes") if operator.disabled_at else "",
        )
    Console(width=200).print(table if found else "No operator yet: `postpay operators add NAME`.")


def register(app: typer.Typer) -> None:
    app.add_typer(operators_app, name="operators")
