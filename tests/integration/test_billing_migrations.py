"""The billing services' migrations build exactly the tables their models declare, and undo them."""

from __future__ import annotations

from sqlalchemy import inspect

from postpay.bootstrap import service_builder
from postpay.ops.context import BILLING_SERVICES
from shared import migrations
from shared.db import Database
from shared.dependencies import Dependencies


def test_billing_migrations_match_the_models_and_downgrade_cleanly(database: Database) -> None:
    deps = Dependencies(whmcs=None, solusvm=None, mailer=None)
    for name in BILLING_SERVICES:
        service = service_builder(name)(deps)
        migrations.upgrade(database, service)
        assert migrations.pending_changes(database, service) == [], name
        tables = {t for t in inspect(database.engine).get_table_names() if t.startswith(f"{name}_")}
        assert tables == set(service.metadata.tables) | {f"{name}_alembic_version"}, name
        migrations.downgrade(database, service)
        left = {t for t in inspect(database.engine).get_table_names() if t.startswith(f"{name}_")}
        assert left <= {f"{name}_alembic_version"}, name
