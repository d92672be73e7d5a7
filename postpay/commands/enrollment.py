"""``postpay consents list``: the consent ledger, for an operator who must show who accepted what.

postpay consents list --email ada@example.com
postpay consents list --client-id 42 --json
postpay consents list                (the latest acceptances)
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from postpay.ops.context import open_database
from services.signup import public as signup
from shared.events.base import format_utc

consents_app = typer.Typer(help="The consent ledger: which terms each customer accepted.", no_args_is_help=True)


@consents_app.command("list")
def list_consents(
    email: Annotated[str | None, typer.Option(help="The customer's email address (any case).")] = None,
    client_id: Annotated[int | None, typer.Option("--client-id", help="The WHMCS client id.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Without --email or --client-id: the latest this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Every acceptance recorded for a customer (terms, URL, version, when, from which IP and browser), or the
    latest acceptances of all customers."""
    db = open_database(needs=("signup",))
    try:
        with db.transaction() as session:
            if email is None and client_id is None:
                rows = list(reversed(signup.latest_consents(session, limit)))
            else:
                rows = signup.consents_of(session, email=email, whmcs_client_id=client_id)
    finally:
        db.dispose()
    records = [
        {
            "email": row.email,
            "whmcs_client_id": row.whmcs_client_id,
            "kind": row.kind,
            "version": row.version,
            "url": row.url,
            "accepted_at": format_utc(row.accepted_at),
            "ip_address": row.ip_address,
            "user_agent": row.user_agent,
            "signup_id": str(row.signup_id),
        }
        for row in rows
    ]
    if as_json:
        for record in records:
            typer.echo(json.dumps(record))
        return
    if not records:
        typer.echo("No consent recorded for that customer.")
        raise typer.Exit(1)
    table = Table("Accepted at (UTC)", "Email", "WHMCS client", "Terms", "Version", "IP address", "User agent")
    for record in records:
        table.add_row(
            record["accepted_at"],
            record["email"],
            str(record["whmcs_client_id"]),
            record["kind"],
            record["version"],
            record["ip_address"] or "",
            (record["user_agent"] or "")[:60],
        )
    Console(width=200).print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(consents_app, name="consents")
