"""``postpay dlq`` as an operator uses it, on RabbitMQ: a poison message parked by the real invoicer
consumer is listed, shown, requeued with an audit line saying who and why, and purged; a parking lot
that was never declared gets one clear line, not a traceback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from postpay.bootstrap import System
from postpay.cli import app
from shared.runtime import Runtime
from shared.settings import KernelSettings
from tests.support.bus_helpers import publish_raw, wait_until

QUEUE = "invoicer.create_invoice"


@pytest.fixture
def namespace(rabbit_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    namespace = f"dlq-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("POSTPAY_AMQP_URL", rabbit_url)
    monkeypatch.setenv("POSTPAY_BROKER_USERS", "guest")  # the test's one login, for every producer
    monkeypatch.setenv("POSTPAY_BUS_NAMESPACE", namespace)
    monkeypatch.setenv("POSTPAY_DATABASE_URL", f"sqlite:///{tmp_path / 'dlq.sqlite'}")
    return namespace


@pytest.fixture
def invoicer(namespace: str) -> Iterator[Runtime]:
    system = System(kernel=KernelSettings())
    runtime = system.runtime(["invoicer"])
    runtime.create_tables()
    runtime.start(relay=False)
    assert runtime.consumer.connected.wait(10), "consumer did not connect"
    yield runtime
    runtime.stop()
    # The runtime declared every service's queues (so each event is routable): remove them all.
    system.bus.delete_topology([s for service in system.services for s in service.subscriptions])
    system.db.dispose()


def dlq(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["dlq", *args])
    return result.exit_code, result.output


def parked_count(runtime: Runtime) -> int:
    return len(runtime.bus.parking_lot().list(runtime.bus.naming.parking_lot(QUEUE)))


def test_an_operator_lists_shows_requeues_and_purges_a_parked_message(invoicer: Runtime) -> None:
    publish_raw(invoicer.bus, QUEUE, b"{not json")
    wait_until(lambda: parked_count(invoicer) == 1, what="poison message parked")

    code, lots = dlq("list")
    assert code == 0, lots
    assert any(f"{QUEUE}.parked" in line and line.split()[-2:] == ["1", "│"] for line in lots.splitlines()), lots

    code, listing = dlq("list", QUEUE)
    assert code == 0 and "undecodable" in listing, listing

    code, shown = dlq("show", QUEUE, "-p", "0")
    assert code == 0, shown
    detail = json.loads(shown)
    assert detail["reason"] == "undecodable" and detail["body"] == "{not json"

    with structlog.testing.capture_logs() as logs:
        code, output = dlq("requeue", QUEUE, "--all", "--reason", "producer fixed", "--by", "alice")
    assert code == 0 and "requeued 1 message(s)" in output, output
    audit = [line for line in logs if line.get("audit")]
    assert len(audit) == 1
    assert audit[0]["action"] == "requeue" and audit[0]["outcome"] == "done"
    assert audit[0]["actor"] == "alice" and audit[0]["why"] == "producer fixed" and audit[0]["count"] == 1

    # Still undecodable, so the consumer parks it again, now saying who sent it back and why.
    reparked = wait_until(
        lambda: invoicer.bus.parking_lot().list(invoicer.bus.naming.parking_lot(QUEUE)),
        what="requeued message parked again",
    )
    assert reparked[0].headers["x-postpay-requeued-by"] == "alice"
    assert reparked[0].headers["x-postpay-requeued-reason"] == "producer fixed"

    code, output = dlq("purge", QUEUE, "--all", "--reason", "junk from a test producer", "--yes")
    assert code == 0 and "purged 1 message(s)" in output, output
    assert parked_count(invoicer) == 0


def test_requeue_without_a_reason_is_refused_and_moves_nothing(invoicer: Runtime) -> None:
    publish_raw(invoicer.bus, QUEUE, b"\xff\xfe")
    wait_until(lambda: parked_count(invoicer) == 1, what="poison message parked")
    code, output = dlq("requeue", QUEUE, "--all")
    assert code == 2 and "--reason" in output
    code, output = dlq("requeue", QUEUE, "--all", "--reason", "   ")
    assert code != 0
    assert parked_count(invoicer) == 1


def test_a_parking_lot_never_declared_gets_a_clear_line(namespace: str) -> None:
    code, output = dlq("list", QUEUE)
    assert code == 2
    assert f"no parking lot {namespace}.{QUEUE}.parked" in output and "Traceback" not in output
    code, output = dlq("list")
    assert code == 0 and "not declared yet" in output, output


def test_an_unknown_handler_queue_is_named_with_the_known_ones(namespace: str) -> None:
    code, output = dlq("list", "invoicer.no_such_handler")
    assert code == 2
    assert "no handler queue 'invoicer.no_such_handler'" in output and QUEUE in output
