"""The signup's two halves as separate processes on the real broker and database: ``postpay run
signup-web`` alone accepts a registration and relays its ``UserRegistered``; ``postpay run
signup-handlers``, another process started later, consumes it and sends the verification email."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from postpay.bootstrap import System
from postpay.commands.run import migrate
from services.signup.schema import tables
from shared.bus.memory import InMemoryBus
from shared.bus.rabbit import RabbitBus
from shared.db import Database
from shared.settings import KernelSettings
from simulators.smtp import SmtpCapture, free_port
from tests.support.enrollment import STRONG_PASSWORD, unique_email
from tests.support.service_processes import ServiceProcess, database_url_with_schema, wait_for_log

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]


def migrate_signup(db: Database) -> list:
    """The signup's tables, as ``postpay run`` would migrate them; and what a process with one broker user
    for everything declares (every service's queues), to delete afterwards."""
    system = System(kernel=KernelSettings(), db=db, bus=InMemoryBus())
    try:
        migrate(system, ("signup",))
        return [subscription for service in system.services for subscription in service.subscriptions]
    finally:
        for client in (system.deps.whmcs, system.deps.solusvm):
            client.close()


def outbox_rows(db: Database) -> int:
    with db.transaction() as session:
        return int(session.execute(select(func.count()).select_from(tables.outbox.table)).scalar_one())


def wait_until(condition, what: str, timeout: float, *processes: ServiceProcess) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        for process in processes:
            assert process.crashed() is None, process.crashed()
        assert time.monotonic() < deadline, f"{what} within {timeout}s:\n" + "\n".join(p.log_tail() for p in processes)
        time.sleep(0.1)


def test_the_web_alone_accepts_a_registration_that_the_handlers_in_another_process_then_handle(
    rabbit_bus: RabbitBus, postgres_database: Database, tmp_path: Path
) -> None:
    declared = migrate_signup(postgres_database)
    web_port = free_port()
    with SmtpCapture() as smtp:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("POSTPAY_")},
            "POSTPAY_AMQP_URL": rabbit_bus.url,
            "POSTPAY_BROKER_USERS": rabbit_bus.login_user,
            "POSTPAY_BUS_NAMESPACE": rabbit_bus.naming.namespace,
            "POSTPAY_DATABASE_URL": database_url_with_schema(postgres_database),
            "POSTPAY_LOG_LEVEL": "INFO",
            "POSTPAY_HEALTH_PORT": "0",
            "POSTPAY_SIGNUP_HOST": "127.0.0.1",
            "POSTPAY_SIGNUP_PORT": str(web_port),
            "POSTPAY_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
            "POSTPAY_SMTP_HOST": smtp.host,
            "POSTPAY_SMTP_PORT": str(smtp.port),
            # Polling alone would not find the row this soon: the test sees it relayed sooner, on the wake.
            "POSTPAY_RELAY_POLL_SECONDS": "10",
        }
        web = ServiceProcess("signup-web", env, tmp_path).start()
        handlers = ServiceProcess("signup-handlers", env, tmp_path)
        try:
            wait_for_log(web, "signup web serving", timeout=60)
            email = unique_email()
            body = {"name": "Grace Hopper", "company": "", "email": email, "password": STRONG_PASSWORD}
            deadline = time.monotonic() + 30
            while True:  # the server logs before it binds: retry until it answers
                try:
                    response = httpx.post(f"http://127.0.0.1:{web_port}/api/v1/signups", json=body, timeout=10)
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, web.log_tail()
                    time.sleep(0.1)
            assert response.status_code == 202, response.text

            # The web relays its own outbox at once (woken by its commit, not its 10 s poll), to a queue it
            # declared itself: the event waits there while no handler runs anywhere.
            wait_until(lambda: outbox_rows(postgres_database) == 0, "the web relayed UserRegistered", 5, web)
            time.sleep(1.0)
            assert smtp.to(email) == []
            assert not web.logged_since_start('"consuming"')

            handlers.start()
            (message,) = smtp.wait_for(to=email, timeout=60)
            assert "Confirm your email address" in str(message["Subject"])
            assert handlers.logged_since_start('"consuming"')
            # The handlers serve no page: only the web process ever started the web server.
            assert not handlers.logged_since_start("signup web serving")
            assert web.crashed() is None and handlers.crashed() is None
        finally:
            handlers.stop()
            web.stop()
            # The processes declared the production retry delays, not this bus's short ones.
            rabbit_bus.delete_topology(declared, also_delays=KernelSettings.model_fields["retry_delays"].default)
