"""A broker failover list whose first node is down: every kind of connection postpay makes (the
consumer's, the relay's and a publisher's, the topology's and the readiness check's) goes on to the next
address instead of failing on the first."""

from __future__ import annotations

import uuid

from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming
from shared.db import Database
from shared.runtime import Runtime
from tests.support.bus_helpers import publish, wait_until
from tests.support.private_broker import free_port
from tests.support.toy import ProbeHappened, count, effects, followups, toy_service


def test_every_connection_skips_a_dead_node_at_the_head_of_the_failover_list(
    rabbit_url: str, sqlite_database: Database
) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"  # nothing listens there
    bus = RabbitBus(f"{dead};{rabbit_url}", naming=Naming(f"test-{uuid.uuid4().hex[:10]}"), retry_delays=[0.2, 0.5])
    assert bus.ping(), "the readiness check gave up on the first address"
    runtime = Runtime(bus, sqlite_database, [toy_service()], relay_poll_seconds=0.05)
    runtime.create_tables()
    try:
        runtime.start()  # declares the topology, then consumes
        assert runtime.consumer.connected.wait(15), "the consumer did not connect"
        key = uuid.uuid4().hex
        publish(bus, ProbeHappened(key=key, emit_followup=True))
        # The follow-up went through the relay's publisher and back through the consumer.
        wait_until(lambda: count(sqlite_database, followups, key) == 1, timeout=20, what="the follow-up handled")
        assert count(sqlite_database, effects, key) == 1
    finally:
        runtime.stop()
        bus.delete_topology(bus.subscriptions or toy_service().subscriptions)


def test_a_list_of_dead_nodes_is_reported_unreachable_not_hung(rabbit_url: str) -> None:
    dead = [f"amqp://guest:guest@127.0.0.1:{free_port()}/" for _ in range(3)]
    bus = RabbitBus(";".join(dead), connect_timeout=2)
    assert not bus.ping()
