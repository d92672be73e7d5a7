"""The RabbitMQ bus (kombu on py-amqp): topology, and factories for publishers, consumers and the
parking lot. Every connection is confined to one thread; each factory call opens its own.

Queues are durable quorum queues. A consumer's queue dead-letters to its parking lot when RabbitMQ's
delivery limit is reached (a message that keeps killing its consumer), at least once. Retry queues hold
a failed message for their TTL and dead-letter it back to the consumer's queue, at least once.

The URL may list the nodes of a cluster (``shared.bus.addresses``): every connection, a consumer's, a
publisher's or a health check's, goes to the first node that answers, so a reconnect after a node died
lands on a surviving one. Quorum queues get ``quorum_initial_group_size`` replicas, or the broker's
default when it is unset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import kombu

from shared.bus.addresses import broker_urls
from shared.bus.amqp_wire import CONNECTION_ERRORS
from shared.bus.rabbit_consume import RabbitConsumer
from shared.bus.rabbit_parking import RabbitParkingLot
from shared.bus.rabbit_publish import RabbitPublisher
from shared.bus.topology import Naming, Subscription, check_unique

__all__ = ["CONNECTION_ERRORS", "RabbitBus"]

# Browsing a parking lot (`postpay dlq list`) returns its messages unacked, which counts as a delivery.
# RabbitMQ 4 gives quorum queues a default delivery limit of 20 and a parking lot has nowhere to
# dead-letter to, so without an explicit, practically unreachable limit, looking at parked messages
# twenty times would drop them.
PARKING_LOT_ARGUMENTS = {"x-queue-type": "quorum", "x-delivery-limit": 1_000_000}


class RabbitBus:
    def __init__(
        self,
        url: str,
        *,
        naming: Naming | None = None,
        retry_delays: Sequence[float] = (1.0, 10.0, 60.0, 600.0),
        prefetch: int = 64,
        concurrency: int = 16,
        confirm_timeout: float = 15.0,
        heartbeat: int = 30,
        delivery_limit: int = 20,
        connect_timeout: float = 5.0,
        quorum_initial_group_size: int | None = None,
    ) -> None:
        self.url = url
        self.urls = broker_urls(url)
        self.quorum_initial_group_size = quorum_initial_group_size
        self.naming = naming or Naming()
        self.retry_delays = list(retry_delays)
        self.prefetch = prefetch
        self.concurrency = concurrency
        self.confirm_timeout = confirm_timeout
        self.heartbeat = heartbeat
        self.delivery_limit = delivery_limit
        self.connect_timeout = connect_timeout
        self.subscriptions: list[Subscription] = []

    def connection(self) -> kombu.Connection:
        return kombu.Connection(
            ";".join(self.urls),
            failover_strategy="round-robin",
            heartbeat=self.heartbeat,
            connect_timeout=self.connect_timeout,
            transport_options={"client_properties": {"connection_name": "postpay"}},
        )

    def connect(self, connection: kombu.Connection, *, retries: int = 0) -> None:
        """Connect to the first address that answers; ``retries`` more rounds over the list after a pause.

        kombu counts every address tried as a retry and pauses only after a whole round, so a round over
        the list costs one refused connect per dead node, not a wait.
        """
        attempts = len(self.urls) * (retries + 1)
        connection.ensure_connection(max_retries=attempts - 1, interval_start=0.5, interval_step=0.5, interval_max=2)

    def open_channel(self, connection: kombu.Connection, *, retries: int = 0) -> Any:
        self.connect(connection, retries=retries)
        channel = connection.channel()
        # Bodies stay bytes: py-amqp would otherwise decode them to str by their content_encoding,
        # and a body that is not valid in that encoding is exactly what the parking lot is for.
        channel.auto_decode = False
        return channel

    def ping(self) -> bool:
        try:
            with self.connection() as connection:
                self.connect(connection)
            return True
        except CONNECTION_ERRORS:
            return False

    # -- topology ----------------------------------------------------------------------------
    def quorum_arguments(self) -> dict[str, Any]:
        # Only when set: RabbitMQ refuses to redeclare a queue whose group size differs, and the queues
        # of an install that never set it were declared without it.
        if self.quorum_initial_group_size is None:
            return {"x-queue-type": "quorum"}
        return {"x-queue-type": "quorum", "x-quorum-initial-group-size": self.quorum_initial_group_size}

    def parking_lot_arguments(self) -> dict[str, Any]:
        return {**PARKING_LOT_ARGUMENTS, **self.quorum_arguments()}

    def main_queue_arguments(self, subscription: Subscription) -> dict[str, Any]:
        return {
            **self.quorum_arguments(),
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.naming.parking_lot(subscription.queue),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def retry_queue_arguments(self, subscription: Subscription, delay: float) -> dict[str, Any]:
        return {
            **self.quorum_arguments(),
            "x-message-ttl": max(1, round(delay * 1000)),
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.naming.queue(subscription.queue),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def declare(self, subscriptions: Sequence[Subscription]) -> None:
        """Declare the exchange and every queue, binding and retry queue (idempotent)."""
        subscriptions = check_unique(subscriptions)
        with self.connection() as connection:
            channel = self.open_channel(connection, retries=2)
            self.declare_on(channel, subscriptions)
        known = {s.queue for s in self.subscriptions}
        self.subscriptions.extend(s for s in subscriptions if s.queue not in known)

    def declare_on(self, channel: Any, subscriptions: Sequence[Subscription]) -> None:
        channel.exchange_declare(self.naming.exchange, "topic", durable=True, auto_delete=False)
        for subscription in subscriptions:
            parking_lot = self.naming.parking_lot(subscription.queue)
            channel.queue_declare(parking_lot, durable=True, auto_delete=False, arguments=self.parking_lot_arguments())
            queue = self.naming.queue(subscription.queue)
            channel.queue_declare(
                queue, durable=True, auto_delete=False, arguments=self.main_queue_arguments(subscription)
            )
            for routing_key in subscription.routing_keys:
                channel.queue_bind(queue, self.naming.exchange, routing_key)
            for delay in sorted(set(self.retry_delays)):
                channel.queue_declare(
                    self.naming.retry_queue(subscription.queue, delay),
                    durable=True,
                    auto_delete=False,
                    arguments=self.retry_queue_arguments(subscription, delay),
                )

    def delete_topology(self, subscriptions: Sequence[Subscription]) -> None:
        """Remove what ``declare`` made (tests clean up their own namespace with it)."""
        with self.connection() as connection:
            channel = self.open_channel(connection)
            for subscription in subscriptions:
                names = [self.naming.queue(subscription.queue), self.naming.parking_lot(subscription.queue)]
                names += [self.naming.retry_queue(subscription.queue, d) for d in set(self.retry_delays)]
                for name in names:
                    channel.queue_delete(name)
            channel.exchange_delete(self.naming.exchange)

    # -- factories ---------------------------------------------------------------------------
    def publisher(self) -> Any:
        return RabbitPublisher(self)

    def consumer(self, bindings: Sequence[Any]) -> Any:
        return RabbitConsumer(self, list(bindings))

    def parking_lot(self) -> Any:
        return RabbitParkingLot(self)
