"""Start-up waits out what passes on its own (an unreachable broker, quorum queues still forming on a
fresh broker) and says so; it stops at once on a configuration fault."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import amqp
import pytest

from postpay.commands.run import wait_for_broker
from shared.bus.amqp_wire import is_transient_topology_error
from shared.logging import configure_logging

HOME_NODE_DOWN = amqp.exceptions.NotFound(
    reply_text="NOT_FOUND - home node 'rabbit@postpay-rabbitmq-server-2' of durable queue "
    "'invoicer.create_invoice.retry.10s' in vhost '/' is down or inaccessible",
    method_sig=(50, 10),
)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (HOME_NODE_DOWN, True),
        (
            amqp.exceptions.NotFound(reply_text="NOT_FOUND - queue 'q' in vhost '/' process is stopped by supervisor"),
            True,
        ),
        (amqp.exceptions.InternalError(reply_text="INTERNAL_ERROR - Cannot declare a queue 'q': timeout"), True),
        (amqp.exceptions.NotFound(reply_text="NOT_FOUND - no queue 'q' in vhost '/'"), False),
        (amqp.exceptions.NotFound(reply_text="NOT_FOUND - no exchange 'postpay.events' in vhost '/'"), False),
        (amqp.exceptions.PreconditionFailed(reply_text="PRECONDITION_FAILED - inequivalent arg 'x-queue-type'"), False),
        (amqp.exceptions.AccessRefused(reply_text="ACCESS_REFUSED - access to queue 'q' refused for user 'x'"), False),
        (ValueError("not a broker error"), False),
    ],
)
def test_which_declare_errors_pass_on_their_own(error: BaseException, transient: bool) -> None:
    assert is_transient_topology_error(error) is transient


class FlakyRuntime:
    """Declares fail with ``errors``, one each, then succeed."""

    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = list(errors)
        self.declares = 0
        self.stop_event = threading.Event()

    def declare(self) -> None:
        self.declares += 1
        if self.errors:
            raise self.errors.pop(0)


def log_lines(action: Any) -> tuple[Any, list[dict[str, Any]]]:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    result = action()
    return result, [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("suite_logging_restored")
def test_start_up_retries_a_home_node_that_is_down_and_logs_each_retry() -> None:
    runtime = FlakyRuntime([HOME_NODE_DOWN, HOME_NODE_DOWN, ConnectionRefusedError("refused")])
    done, lines = log_lines(lambda: wait_for_broker(runtime, first_delay=0.01))  # type: ignore[arg-type]
    assert done is True and runtime.declares == 4
    retries = [line for line in lines if line["event"].startswith("broker not ready to declare")]
    assert len(retries) == 2 and "home node" in retries[0]["error"] and retries[1]["retry_in_seconds"] == 0.02
    assert any(line["event"] == "broker unreachable at start; waiting for it" for line in lines)


def test_start_up_stops_at_once_on_a_configuration_fault() -> None:
    fault = amqp.exceptions.PreconditionFailed(reply_text="PRECONDITION_FAILED - inequivalent arg 'x-queue-type'")
    runtime = FlakyRuntime([fault])
    with pytest.raises(amqp.exceptions.PreconditionFailed):
        wait_for_broker(runtime, first_delay=0.01)  # type: ignore[arg-type]
    assert runtime.declares == 1


def test_start_up_gives_up_waiting_when_asked_to_stop() -> None:
    runtime = FlakyRuntime([HOME_NODE_DOWN] * 100)
    runtime.stop_event.set()
    assert wait_for_broker(runtime, first_delay=0.01) is False  # type: ignore[arg-type]
    assert runtime.declares == 1
