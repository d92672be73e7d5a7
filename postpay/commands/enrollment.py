"""``postpay consents list``: the consent ledger, for an operator who must show who accepted what.

    postpay consents list --email ada@example.com
    postpay consents list --client-id 42 --json
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from postpay.bootstrap import make_database
from services.signup import store
from services.signup.validation import email_key
from shared.events.base import format_utc
from shared.settings import KernelSettings

consents_app = typer.Typer(help="The consent ledger: which terms each customer accepted.", no_args_is_help=True)


@consents_app.command("list")
def list_consents(
    email: Annotated[Optional[str], typer.Option(help="The customer's email address (any case).")] = None,
    client_id: Annotated[Optional[int], typer.Option("--client-id", help="The WHMCS client id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Every acceptance recorded for a customer: terms, URL, version, when, from which IP and browser."""
    if email is None and client_id is None:
        raise typer.BadParameter("give --email or --client-id")
    db = make_database(KernelSettings())
    try:
        with db.transaction() as session:
            rows = store.consents_for(session, email_key=email_key(email) if email else None, whmcs_client_id=client_id)
    finally:
        db.dispose()
    records = [
        {
            "email": row.email, "whmcs_client_id": row.whmcs_client_id, "kind": row.kind, "version": row.version,
            "url": row.url, "accepted_at": format_utc(row.accepted_at), "ip_address": row.ip_address,
            "user_agent": row.user_agent, "signup_id": str(row.signup_id),
        }  # fmt: skip
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
        table.add_row(record["accepted_at"], record["email"], str(record["whmcs_client_id"]), record["kind"],
                      record["version"], record["ip_address"] or "", (record["user_agent"] or "")[:60])  # fmt: skip
    Console(width=200).print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(consents_app, name="consents")
