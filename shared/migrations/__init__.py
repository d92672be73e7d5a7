"""Running each service's Alembic migrations (``postpay db upgrade``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from shared.db import Database
from shared.service import ServiceDefinition

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def versions_directory(service: str | ServiceDefinition) -> Path:
    """``services/<name>/migrations``, or where a definition outside services/ keeps its own
    (``migrations``, e.g. the operator console's)."""
    if isinstance(service, ServiceDefinition):
        if service.migrations is not None:
            return service.migrations
        service = service.name
    return ROOT / "services" / service / "migrations"


def _config(service: ServiceDefinition, connection: object) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("version_locations", str(versions_directory(service)))
    config.set_main_option("path_separator", "os")
    config.attributes["metadata"] = service.metadata
    config.attributes["service"] = service.name
    config.attributes["connection"] = connection
    return config


def upgrade(db: Database, service: ServiceDefinition, revision: str = "heads") -> None:
    with db.engine.begin() as connection:
        upgrade_on(connection, service, revision)


def upgrade_on(connection: object, service: ServiceDefinition, revision: str = "heads") -> None:
    """Upgrade within a connection the caller holds (e.g. under an advisory lock)."""
    command.upgrade(_config(service, connection), revision)


def downgrade(db: Database, service: ServiceDefinition, revision: str = "base") -> None:
    with db.engine.begin() as connection:
        command.downgrade(_config(service, connection), revision)


def revision(db: Database, service: ServiceDefinition, message: str) -> None:
    """Autogenerate a revision from the difference between the models and the database."""
    versions_directory(service).mkdir(parents=True, exist_ok=True)
    with db.engine.begin() as connection:
        command.revision(_config(service, connection), message=message, autogenerate=True)


def pending_changes(db: Database, service: ServiceDefinition) -> list[object]:
    """What the models have that the migrated database lacks (empty when migrations are complete)."""
    prefix = f"{service.name}_"

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        if type_ == "table":
            return name is not None and name.startswith(prefix) and name != f"{prefix}alembic_version"
        return True

    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": include_name, "compare_type": True})
        return list(compare_metadata(context, service.metadata))


def is_current(connection: Any, service: ServiceDefinition) -> bool:
    """Whether the service's tables are at its newest revision (False when never migrated)."""
    heads = ScriptDirectory.from_config(_config(service, connection)).get_heads()
    context = MigrationContext.configure(connection, opts={"version_table": f"{service.name}_alembic_version"})
    return set(context.get_current_heads()) == set(heads)
