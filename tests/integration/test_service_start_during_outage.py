"""A service process started while the broker is down waits for it, instead of exiting.

Seen in the month-close chaos test: a killed invoicer, restarted while the broker itself was being
restarted, gave up after ~1.5 s of connection retries and exited. On a private node, because stopping
the shared broker would break every other test running beside this one.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from services.usage_collector import store
from shared.db import Database
from tests.support.private_broker import PrivateBroker
from tests.support.service_processes import ServiceProcess, database_url_with_schema, wait_for_log

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]


def test_a_service_started_during_a_broker_outage_waits_and_then_consumes(
    private_broker_up: PrivateBroker, postgres_database: Database, tmp_path: Path
) -> None:
    store.tables.metadata.create_all(postgres_database.engine)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("POSTPAY_")},
        "POSTPAY_AMQP_URL": private_broker_up.url,
        "POSTPAY_BROKER_USERS": "guest",
        "POSTPAY_DATABASE_URL": database_url_with_schema(postgres_database),
        "POSTPAY_BUS_NAMESPACE": f"test-{uuid.uuid4().hex[:10]}",
        "POSTPAY_LOG_LEVEL": "INFO",
    }
    private_broker_up.stop_app()
    collector = ServiceProcess("usage-collector", env, tmp_path).start()
    try:
        wait_for_log(collector, "broker unreachable at start", timeout=30)
        time.sleep(3)  # twice as long as the start used to keep trying before it exited
        assert collector.crashed() is None
        assert not collector.logged_since_start('"consuming"')

        private_broker_up.start_app()
        wait_for_log(collector, '"consuming"', timeout=60)
        assert collector.crashed() is None
        assert collector.terminate() == 0  # and it still stops cleanly on SIGTERM
    finally:
        collector.stop()
