"""The billing services' migrations build exactly the tables their models declare, and undo them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import inspect, text

from postpay.bootstrap import service_builder
from postpay.ops.context import BILLING_SERVICES
from services.scheduler import store as scheduler_store
from shared import migrations
from shared.db import Database
from shared.dependencies import Dependencies
from shared.periods import BillingPeriod


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


def test_periods_closed_before_windows_were_recorded_get_their_calendar_window(database: Database) -> None:
    scheduler = service_builder("scheduler")(Dependencies(whmcs=None, solusvm=None, mailer=None))
    migrations.upgrade(database, scheduler, "7c1d0a9e4b52")
    with database.transaction() as session:
        session.execute(
            text(
                "INSERT INTO scheduler_closed_periods (period, timezone, event_id, trigger, closed_at) "
                "VALUES ('2026-10', 'Europe/Berlin', :id, 'schedule', :at)"
            ),
            {
                "id": uuid.uuid4() if database.is_postgres else uuid.uuid4().hex,
                "at": datetime(2026, 11, 1, tzinfo=UTC) if database.is_postgres else "2026-11-01 00:00:00",
            },
        )
    migrations.upgrade(database, scheduler)
    with database.transaction() as session:
        period = scheduler_store.recorded_period(session, "2026-10")
    assert period == BillingPeriod.parse("2026-10", "Europe/Berlin")
    assert (period.starts_at, period.ends_at) == (
        datetime(2026, 9, 30, 22, tzinfo=UTC),
        datetime(2026, 10, 31, 23, tzinfo=UTC),
    )
