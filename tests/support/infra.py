"""Where the tests' broker and database come from.

``POSTPAY_TEST_AMQP_URL`` / ``POSTPAY_TEST_DATABASE_URL`` name running servers. Without them, a Docker
engine that answers starts containers (testcontainers). Without either, the test fails and says so:
a test never skips its broker or database quietly.

``./scripts/test`` (scripts/testbed) decides before pytest starts, with these same names and this same
Docker check: it sets a variable only for a server running here, and leaves it unset where Docker is to
be used, so the two never disagree.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

AMQP_VARIABLE = "POSTPAY_TEST_AMQP_URL"
DATABASE_VARIABLE = "POSTPAY_TEST_DATABASE_URL"


@functools.cache
def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


_containers: list[object] = []


def amqp_url() -> str:
    url = os.environ.get(AMQP_VARIABLE)
    if url:
        return url
    if docker_answers():
        from testcontainers.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer("rabbitmq:3.13-management")
        container.start()
        _containers.append(container)
        host, port = container.get_container_host_ip(), container.get_exposed_port(5672)
        return f"amqp://guest:guest@{host}:{port}/"
    pytest.fail(
        f"this test needs RabbitMQ: set {AMQP_VARIABLE} (e.g. amqp://guest:guest@127.0.0.1:5672/) "
        "or run a Docker engine for testcontainers; ./scripts/test says which applies here and, as root "
        "on Debian, installs and starts one",
        pytrace=False,
    )


def database_url() -> str:
    url = os.environ.get(DATABASE_VARIABLE)
    if url:
        return url
    if docker_answers():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver="psycopg")
        container.start()
        _containers.append(container)
        return container.get_connection_url()
    pytest.fail(
        f"this test needs PostgreSQL: set {DATABASE_VARIABLE} "
        "(e.g. postgresql://postgres@127.0.0.1:5432/test) or run a Docker engine for testcontainers; "
        "./scripts/test says which applies here and, as root on Debian, installs and starts one",
        pytrace=False,
    )


def stop_containers() -> None:
    for container in _containers:
        container.stop()  # type: ignore[attr-defined]
    _containers.clear()


@contextmanager
def fresh_schema(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL schema of its own, dropped with everything in it afterwards."""
    from sqlalchemy import create_engine, text

    from shared.db import normalise_url

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(postgres_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
        yield name
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    finally:
        admin.dispose()
