"""``postpay run`` serves ``/healthz``, ``/readyz`` and ``/metrics``: a real ``postpay run all`` process on
RabbitMQ and PostgreSQL, whose counters move as it handles, fails, retries and parks messages and calls
an upstream that is down; and a readiness probe that says which dependency is missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from postpay.bootstrap import System
from postpay.commands.run import Part, build_runtime, readiness_checks
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming
from shared.db import Database
from shared.events.billing import BillingPeriodClosed, window_fields
from shared.events.enrollment import UserProvisioned
from shared.health import HealthServer
from shared.periods import BillingPeriod
from shared.settings import KernelSettings
from simulators.smtp import free_port
from tests.conftest import unique_namespace
from tests.support.bus_helpers import publish, wait_until

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def namespace(rabbit_url: str, postgres_database: Database) -> Iterator[str]:
    name = unique_namespace()
    yield name
    # The same retry delays the process ran with (POSTPAY_RETRY_DELAYS below), so its retry queues go too.
    bus = RabbitBus(rabbit_url, naming=Naming(name), retry_delays=[0.2])
    system = System(kernel=KernelSettings(), db=postgres_database, bus=bus)
    bus.delete_topology([s for service in system.services for s in service.subscriptions])


@pytest.fixture
def running(
    rabbit_url: str, postgres_url: str, postgres_database: Database, namespace: str, tmp_path: Path
) -> Iterator[str]:
    """``postpay run all`` in its own process; yields the base URL of its health endpoints."""
    port = free_port()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("POSTPAY_")}
    environment.update(
        {
            "POSTPAY_AMQP_URL": rabbit_url,
            "POSTPAY_BROKER_USERS": "guest",  # `run all`: one login for every service
            "POSTPAY_BUS_NAMESPACE": namespace,
            "POSTPAY_DATABASE_URL": f"{postgres_url}?options={quote(f'-csearch_path={postgres_database.schema}')}",
            "POSTPAY_HEALTH_PORT": str(port),
            "POSTPAY_SIGNUP_PORT": "0",
            "POSTPAY_RETRY_DELAYS": "0.2",
            # Nothing listens there: every SolusVM 2 call fails to connect.
            "POSTPAY_SOLUSVM_URL": f"http://127.0.0.1:{free_port()}",
            "POSTPAY_UPSTREAM_MAX_ATTEMPTS": "1",
            "POSTPAY_LOG_LEVEL": "WARNING",
        }
    )
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "postpay.cli", "run", "all"],
        cwd=tmp_path,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert process.poll() is None, (tmp_path / "run.log").read_text()
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=60, interval=0.2, what="postpay run all to be ready")
        yield url
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()


def test_health_readiness_and_metrics_of_a_running_process_move_with_its_work(
    running: str, rabbit_url: str, namespace: str
) -> None:
    assert httpx.get(f"{running}/healthz").json() == {"status": "ok"}
    readiness = httpx.get(f"{running}/readyz").json()
    assert readiness == {"status": "ready", "checks": {"database": True, "broker": True, "consumer": True}}
    assert httpx.get(f"{running}/nowhere").status_code == 404

    before = scrape(running)
    # Every handler's series exists from the start, at zero.
    for handler in ("usage_collector.record_customer", "invoicer.create_invoice", "signup.complete_enrollment"):
        assert value(before, "postpay_messages_handled_total", handler=handler, outcome="done") == 0
        assert value(before, "postpay_messages_failed_total", handler=handler) == 0
        assert value(before, "postpay_handler_seconds_count", handler=handler) == 0
    for service in ("signup", "provisioner", "usage_collector", "invoicer", "scheduler"):
        assert value(before, "postpay_outbox_backlog", service=service) is not None

    bus = RabbitBus(rabbit_url, naming=Naming(namespace))
    # Handled by the usage collector; refused by signup (no such signup): failed, then parked.
    publish(
        bus,
        UserProvisioned(
            signup_id=uuid.uuid4(),
            email="metrics@example.com",
            whmcs_client_id=41,
            solusvm_user_id=42,
            enrolled_at=datetime(2025, 1, 1, tzinfo=UTC),
        ),
    )
    wait_until(
        lambda: (
            value(
                scrape(running),
                "postpay_messages_handled_total",
                handler="usage_collector.record_customer",
                outcome="done",
            )
            == 1
        ),
        timeout=30,
        what="the handled counter to move",
    )
    # The close fans out to that customer, whose usage fetch meets a SolusVM 2 that is down: the call
    # fails, the handler fails, is retried once and parked.
    publish(bus, BillingPeriodClosed(**window_fields(BillingPeriod.parse("2025-10")), trigger="manual"))

    def parked_after_retry() -> Samples | None:
        samples = scrape(running)
        parked = value(
            samples,
            "postpay_messages_parked_total",
            handler="usage_collector.collect_usage",
            reason="retries-exhausted",
        )
        return samples if parked == 1 else None

    after = wait_until(parked_after_retry, timeout=30, interval=0.2, what="the usage request to be parked")
    collect = "usage_collector.collect_usage"
    assert value(after, "postpay_messages_retried_total", handler=collect) == 1
    assert value(after, "postpay_messages_failed_total", handler=collect) == 2
    assert value(after, "postpay_messages_handled_total", handler="usage_collector.fan_out", outcome="done") == 1
    assert value(after, "postpay_handler_seconds_count", handler="usage_collector.record_customer") == 1
    assert value(after, "postpay_messages_failed_total", handler="signup.complete_enrollment") == 1
    assert value(after, "postpay_messages_parked_total", handler="signup.complete_enrollment", reason="rejected") == 1
    # The usage collector's calls (``run all`` also runs the meter, whose sweeps fail to connect too).
    usage_call = ("call", "GET /api/v1/users/{id}/usage")
    upstream_errors = {
        labels: count
        for (name, labels), count in after.items()
        if name == "postpay_upstream_errors_total" and ("upstream", "solusvm") in labels
    }
    assert upstream_errors and all(("error", "connect") in labels for labels in upstream_errors)
    assert sum(count for labels, count in upstream_errors.items() if usage_call in labels) == 2
    latency = [
        count
        for (name, labels), count in after.items()
        if name == "postpay_upstream_call_seconds_count" and ("upstream", "solusvm") in labels and usage_call in labels
    ]
    assert sum(latency) == 2
    # The fan-out wrote one work item to its outbox, and the relay shipped it: nothing left behind.
    assert value(after, "postpay_events_published_total", service="usage_collector") == 1
    wait_until(
        lambda: value(scrape(running), "postpay_outbox_backlog", service="usage_collector") == 0,
        timeout=10,
        what="the backlog gauge",
    )


def test_readiness_names_the_dependency_that_is_missing(postgres_database: Database) -> None:
    dead_broker = RabbitBus(f"amqp://guest:guest@127.0.0.1:{free_port()}/", naming=Naming(unique_namespace()))
    system = System(kernel=KernelSettings(), db=postgres_database, bus=dead_broker)
    runtime = build_runtime(system, Part.invoicer)
    server = HealthServer(readiness_checks(system, runtime), host="127.0.0.1").start()
    try:
        answer = httpx.get(f"http://127.0.0.1:{server.port}/readyz", timeout=10)
        assert answer.status_code == 503
        assert json.loads(answer.text) == {"status": "not ready", "checks": {"database": True, "broker": False}}
        assert httpx.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200, "alive, just not ready"
    finally:
        server.stop()
    unreachable = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    system = System(kernel=KernelSettings(), db=unreachable, bus=dead_broker)
    server = HealthServer(readiness_checks(system, build_runtime(system, Part.invoicer)), host="127.0.0.1").start()
    try:
        answer = httpx.get(f"http://127.0.0.1:{server.port}/readyz", timeout=10)
        assert answer.status_code == 503 and answer.json()["checks"] == {"database": False, "broker": False}
    finally:
        server.stop()
        unreachable.dispose()
