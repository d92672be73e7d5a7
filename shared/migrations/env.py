"""Alembic environment shared by every service.

Each service keeps its revisions in ``services/<name>/migrations`` and its own version table
(``<name>_alembic_version``); only tables named ``<name>_*`` are compared, so one service's migrations
never touch another's tables.
"""

from __future__ import annotations

from alembic import context

config = context.config
metadata = config.attributes["metadata"]
service = config.attributes["service"]
connection = config.attributes["connection"]


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    if type_ == "table":
        return name is not None and name.startswith(f"{service}_") and name != f"{service}_alembic_version"
    return True


context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=f"{service}_alembic_version",
    include_name=include_name,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)

with context.begin_transaction():
    context.run_migrations()
