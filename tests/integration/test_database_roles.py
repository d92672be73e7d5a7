"""One database role per service, as deploy/ creates them (Compose's init script, the Kubernetes
cluster's bootstrap SQL), on a PostgreSQL cluster of the test's own: each service creates its tables as
its own role and no other service can read or write them, while the owner (the relay, the operators'
tools) reaches every one."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from postpay.bootstrap import SERVICES, System
from shared import migrations
from shared.bus.memory import InMemoryBus
from shared.db import Database
from shared.settings import KernelSettings
from tests.support.private_postgres import PrivatePostgres

pytestmark = [pytest.mark.postgres]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def compose_roles(postgres: PrivatePostgres) -> None:
    """What the postgres image does for Compose: the owner from POSTGRES_USER (a superuser there), then
    deploy/postgres/init-roles.sh."""
    postgres.sql("CREATE ROLE postpay LOGIN SUPERUSER")
    postgres.sql("CREATE DATABASE postpay OWNER postpay")
    passwords = {f"POSTGRES_{name.upper()}_PASSWORD": f"pw-{name}" for name in SERVICES}
    postgres.script(
        DEPLOY / "postgres" / "init-roles.sh", {"POSTGRES_USER": "postpay", "POSTGRES_DB": "postpay", **passwords}
    )


def kubernetes_roles(postgres: PrivatePostgres) -> None:
    """What CloudNativePG does: the owner (no superuser) owns the database, then the bootstrap SQL of
    deploy/k8s/postgres.yaml runs as the superuser in it (managed.roles later sets the passwords)."""
    (cluster,) = [doc for doc in yaml.safe_load_all((DEPLOY / "k8s" / "postgres.yaml").read_text()) if doc]
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    postgres.sql(f"CREATE ROLE {initdb['owner']} LOGIN")
    postgres.sql(f"CREATE DATABASE {initdb['database']} OWNER {initdb['owner']}")
    for statement in initdb["postInitApplicationSQL"]:
        postgres.sql(statement, database=initdb["database"])


@pytest.fixture(params=["compose", "kubernetes"])
def cluster(request: pytest.FixtureRequest) -> Iterator[PrivatePostgres]:
    with PrivatePostgres(Path(tempfile.mkdtemp(prefix="postpay-pg-"))) as postgres:
        {"compose": compose_roles, "kubernetes": kubernetes_roles}[request.param](postgres)
        yield postgres


def services() -> dict[str, object]:
    db = Database("sqlite://")
    system = System(kernel=KernelSettings(), db=db, bus=InMemoryBus())
    for client in (system.deps.whmcs, system.deps.solusvm):
        client.close()
    db.dispose()
    return {service.name: service for service in system.services}


def test_each_service_owns_its_tables_and_no_other_service_reaches_them(cluster: PrivatePostgres) -> None:
    definitions = services()
    databases = {name: Database(cluster.url(f"postpay_{name}")) for name in SERVICES}
    owner = Database(cluster.url("postpay"))
    try:
        for name, db in databases.items():
            migrations.upgrade(db, definitions[name])  # type: ignore[arg-type]
        for name, db in databases.items():
            with db.transaction() as session:
                session.execute(text(f"SELECT count(*) FROM {name}_outbox")).scalar_one()
            for other in SERVICES:
                if other == name:
                    continue
                with pytest.raises(ProgrammingError, match="permission denied"):
                    with db.transaction() as session:
                        session.execute(text(f"SELECT count(*) FROM {other}_outbox"))
        # The relay and the operators' tools: every outbox, and the scheduler's tables (a close by hand).
        with owner.transaction() as session:
            for name in SERVICES:
                session.execute(text(f"DELETE FROM {name}_outbox WHERE false"))
            session.execute(text("SELECT count(*) FROM scheduler_alembic_version")).scalar_one()
    finally:
        for db in [*databases.values(), owner]:
            db.dispose()
