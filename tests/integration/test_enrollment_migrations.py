"""The enrollment services' migrations build exactly the tables their models declare, and undo them."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from postpay.bootstrap import service_builder
from shared import migrations
from shared.db import Database
from shared.dependencies import Dependencies


@pytest.mark.parametrize("name", ["signup", "provisioner"])
def test_enrollment_migrations_match_the_models_and_downgrade_cleanly(database: Database, name: str) -> None:
    service = service_builder(name)(Dependencies(whmcs=None, solusvm=None, mailer=None))
    migrations.upgrade(database, service)
    assert migrations.pending_changes(database, service) == []
    tables = {t for t in inspect(database.engine).get_table_names() if t.startswith(f"{name}_")}
    assert tables == set(service.metadata.tables) | {f"{name}_alembic_version"}
    migrations.downgrade(database, service)
    left = {t for t in inspect(database.engine).get_table_names() if t.startswith(f"{name}_")}
    assert left <= {f"{name}_alembic_version"}
