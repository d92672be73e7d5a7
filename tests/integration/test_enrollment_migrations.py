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


def test_a_signup_registered_before_the_upgrade_waits_for_verification_and_keeps_its_id(database: Database) -> None:
    """Before clients followed verification, a registration whose client was not created yet was in
    'creating_client'. After the upgrade it waits for its email to be verified (nothing upstream yet),
    and the id its registrant holds still shows its progress."""
    import uuid
    from datetime import UTC, datetime

    from sqlalchemy import text

    from services.signup import schema, store

    service = service_builder("signup")(Dependencies(whmcs=None, solusvm=None, mailer=None))
    migrations.upgrade(database, service, "4f6b2c8d1e07")
    signup_id, now = uuid.uuid4(), datetime.now(UTC)
    with database.transaction() as session:
        session.execute(
            text(
                "INSERT INTO signup_signups (id, email, email_key, name, company, encrypted_password, stage, created_at, "
                "updated_at) VALUES (:id, 'old@example.com', 'old@example.com', 'Old Timer', '', 'x', 'creating_client', :now, :now)"
            ),
            {"id": signup_id if database.is_postgres else signup_id.hex, "now": now},
        )
    migrations.upgrade(database, service)
    with database.transaction() as session:
        signup = store.get_signup(session, signup_id)
        registered = store.signup_of_registration(session, signup_id)
    assert (
        signup is not None
        and signup.stage == schema.Stage.AWAITING_VERIFICATION
        and signup.registration_id == signup_id
    )
    assert registered == signup and signup.is_current(signup_id)
    migrations.downgrade(database, service)
