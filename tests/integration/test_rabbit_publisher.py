"""The relay's publisher after a quiet spell: nobody drives its heartbeats between publishes, so the
broker drops an idle connection; the next publish must simply work, not fail and log a retry."""

from __future__ import annotations

import time
import uuid

from shared.bus.messages import OutgoingMessage
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming, Subscription
from shared.events.base import new_envelope
from tests.support.toy import ProbeHappened


def test_a_publish_after_the_broker_dropped_the_idle_connection_just_works(rabbit_url: str) -> None:
    bus = RabbitBus(rabbit_url, naming=Naming(f"test-{uuid.uuid4().hex[:10]}"), heartbeat=1)
    subscription = Subscription("idle", "probe", (ProbeHappened,), lambda event, ctx: None)
    bus.declare([subscription])
    publisher = bus.publisher()
    try:
        first = new_envelope(ProbeHappened(key="before"), producer="test")
        assert first.event_id in publisher.publish([OutgoingMessage.from_envelope(first)]).confirmed
        # Well past two missed heartbeats: RabbitMQ has closed the connection on its side by now.
        time.sleep(4.0)
        second = new_envelope(ProbeHappened(key="after"), producer="test")
        assert second.event_id in publisher.publish([OutgoingMessage.from_envelope(second)]).confirmed
        with bus.connection() as connection:
            channel = bus.open_channel(connection)
            assert channel.queue_declare(bus.naming.queue("idle.probe"), passive=True).message_count == 2
    finally:
        publisher.close()
        bus.delete_topology([subscription])
