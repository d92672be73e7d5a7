"""``postpay db upgrade|revision|check``: each service's schema, by its own migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from postpay.bootstrap import SERVICES, make_database, make_dependencies, service_builder
from postpay.operators import schema as console_schema
from shared import migrations
from shared.settings import KernelSettings

db_app = typer.Typer(help="Database schema: migrations of every service.", no_args_is_help=True)

ServiceOption = Annotated[str | None, typer.Option("--service", help="Only this service.")]


def _services(name: str | None) -> list:
    """Each service's definition, and the operator console's (its tables migrate the same way)."""
    names = [name] if name else [*SERVICES, console_schema.NAME]
    deps = make_dependencies()
    return [
        console_schema.console_definition() if n == console_schema.NAME else service_builder(n)(deps) for n in names
    ]


@db_app.command("upgrade")
def upgrade(service: ServiceOption = None, revision: str = "heads") -> None:
    """Apply migrations (all services unless --service)."""
    db = make_database(KernelSettings())
    for definition in _services(service):
        migrations.upgrade(db, definition, revision)
        typer.echo(f"{definition.name}: at {revision}")


@db_app.command("revision")
def revision(
    service: Annotated[str, typer.Option("--service", help="The service whose models changed.")],
    message: Annotated[str, typer.Option("-m", "--message", help="What the revision does.")],
) -> None:
    """Autogenerate a revision for one service (run against an up-to-date database)."""
    db = make_database(KernelSettings())
    (definition,) = _services(service)
    migrations.upgrade(db, definition)
    migrations.revision(db, definition, message)


@db_app.command("check")
def check(service: ServiceOption = None) -> None:
    """Fail when a service's models and its migrated tables differ."""
    db = make_database(KernelSettings())
    failed = False
    for definition in _services(service):
        changes = migrations.pending_changes(db, definition)
        if changes:
            failed = True
            typer.echo(f"{definition.name}: models differ from the database: {changes}", err=True)
        else:
            typer.echo(f"{definition.name}: up to date")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
