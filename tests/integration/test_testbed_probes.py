"""The test command's real probes tell the three answers apart on real servers: the tests' own broker and
database answer; a wrong password or a missing database is a refusal (with the server's reason); a port
nobody listens on is silence. Only logins are tried: nothing on either server is changed."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit

import pytest

from scripts.testbed.decisions import Reach, Server
from scripts.testbed.machine import LocalMachine
from simulators.smtp import free_port

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]


def server(url: str) -> Server:
    return Server("probe", "UNUSED", url, "unused")


def with_path_and_password(url: str, *, path: str | None = None, password: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if password is not None:
        netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return parts._replace(netloc=netloc, path=parts.path if path is None else path).geturl()


def test_the_suites_broker_and_database_answer(rabbit_url: str, postgres_url: str) -> None:
    machine = LocalMachine(os.environ)
    assert machine.reach(server(rabbit_url)) == (Reach.ANSWERS, "")
    database = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    assert machine.reach(server(database)) == (Reach.ANSWERS, "")


def test_a_wrong_broker_password_is_a_refusal_with_the_reason(rabbit_url: str) -> None:
    reach, detail = LocalMachine(os.environ).reach(server(with_path_and_password(rabbit_url, password="wrong")))
    assert reach is Reach.REFUSES
    assert "ACCESS_REFUSED" in detail


def test_a_missing_database_is_a_refusal_with_the_reason(postgres_url: str) -> None:
    database = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    missing = f"no_such_database_{uuid.uuid4().hex[:8]}"
    reach, detail = LocalMachine(os.environ).reach(server(with_path_and_password(database, path=f"/{missing}")))
    assert reach is Reach.REFUSES
    assert missing in detail and "does not exist" in detail


def test_a_port_nobody_listens_on_is_silence() -> None:
    machine = LocalMachine(os.environ)
    port = free_port()
    assert machine.reach(server(f"amqp://guest:guest@127.0.0.1:{port}/")) == (Reach.SILENT, "")
    assert machine.reach(server(f"postgresql://postgres@127.0.0.1:{port}/test")) == (Reach.SILENT, "")
