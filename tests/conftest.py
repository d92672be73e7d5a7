"""Fixtures shared by the whole suite: the real broker and database, isolated per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.bus.memory import InMemoryBus
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming
from shared.db import Database
from shared.logging import configure_logging
from tests.support import infra
from tests.support.schedule import LaneScheduling, order

LOG_LEVEL = os.environ.get("POSTPAY_TEST_LOG_LEVEL", "WARNING")
configure_logging(LOG_LEVEL)

# The private RabbitMQ node's and cluster's fixtures, registered here so that one of each serves the
# whole session.
pytest_plugins = ["tests.support.private_broker", "tests.support.private_cluster", "tests.support.whmcs"]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def suite_logging_restored() -> Iterator[None]:
    """For a test that runs a command which sends the logs elsewhere (a file it then closes)."""
    yield
    configure_logging(LOG_LEVEL)


@pytest.fixture(scope="session")
def rabbit_url() -> str:
    return infra.amqp_url()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return infra.database_url()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    infra.stop_containers()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist (``./scripts/test`` runs 3 workers), the longest tests first; run serially, as collected."""
    if hasattr(config, "workerinput"):
        items[:] = order(items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LaneScheduling | None:
    """``-n N`` (whose ``--dist`` is ``load``) deals tests out in lanes (tests/support/schedule.py); a
    ``--dist`` the caller chose otherwise is xdist's own."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.workermanage import parse_tx_spec_config

    def report(message: str) -> None:
        failed = pytest.CollectReport(nodeid="", outcome="failed", longrepr=message, result=[])
        config.hook.pytest_collectreport(report=failed)

    return LaneScheduling(len(parse_tx_spec_config(config)), log.lanesched, report=report)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'postpay.sqlite'}")
    yield db
    db.dispose()


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[Database]:
    """A fresh schema per test, dropped afterwards."""
    with infra.fresh_schema(postgres_url) as schema:
        db = Database(postgres_url, schema=schema, pool_size=10)
        yield db
        db.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue(f"{request.param}_database")


def unique_namespace() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def rabbit_bus(rabbit_url: str) -> Iterator[RabbitBus]:
    bus = RabbitBus(rabbit_url, naming=Naming(unique_namespace()), retry_delays=[0.2, 0.5], confirm_timeout=10)
    yield bus
    if bus.subscriptions:
        bus.delete_topology(bus.subscriptions)


@pytest.fixture
def memory_bus() -> InMemoryBus:
    return InMemoryBus(retry_delays=[0.2, 0.5], naming=Naming(unique_namespace()))


@pytest.fixture(params=["memory", "rabbit"])
def bus(request: pytest.FixtureRequest) -> object:
    return request.getfixturevalue(f"{request.param}_bus")


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    directory = ARTIFACTS / request.node.name.replace("/", "_")
    directory.mkdir(parents=True, exist_ok=True)
    return directory
