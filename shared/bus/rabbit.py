"""The RabbitMQ bus (kombu on py-amqp): topology, and factories for publishers, consumers and the
parking lot. Every connection is confined to one thread; each factory call opens its own.

Queues are durable quorum queues. A consumer's queue dead-letters to its parking lot when RabbitMQ's
delivery limit is reached (a message that keeps killing its consumer), at least once. Retry queues hold
a failed message for their TTL and dead-letter it back to the consumer's queue, at least once.

The URL may list the nodes of a cluster (``shared.bus.addresses``): every connection, a consumer's, a
publisher's or a health check's, goes to the first node that answers, so a reconnect after a node died
lands on a surviving one. Quorum queues get ``quorum_initial_group_size`` replicas, or the broker's
default when it is unset.

Each service also has a direct exchange of its own, ``<service>.internal``, bound to each of its queues
by the queue's name: its retry and parking copies, an operator's requeues and the broker's own
dead-lettering go through it. With a broker user per service (``BrokerUsers``), that is the only way
into a service's queues besides the events exchange: nobody may write to the default exchange, which
reaches every queue by name (and RabbitMQ asks the declaring user for write access to a queue's
dead-letter exchange, so dead-lettering through the default exchange would need it).

Every publish carries ``user_id``, the connection's user, which RabbitMQ checks; a per-service user
cannot declare the events exchange (declaring is also the right to delete), so it only checks that
the exchange is there (``deploy/`` creates it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import kombu

from shared.bus.addresses import broker_urls
from shared.bus.amqp_wire import CONNECTION_ERRORS
from shared.bus.identity import BrokerUsers
from shared.bus.rabbit_consume import RabbitConsumer
from shared.bus.rabbit_parking import RabbitParkingLot
from shared.bus.rabbit_publish import RabbitPublisher
from shared.bus.topology import Naming, Subscription, check_unique
from shared.events.base import OPERATOR

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
        users: BrokerUsers | None = None,
        passwords: Mapping[str, str] | None = None,
    ) -> None:
        """``users``: each producer's broker user (None: the URL's user for every one, nobody told
        apart). ``passwords``: other producers' passwords, for a process that publishes for several
        (``postpay run relay``)."""
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
        self.login_user: str = kombu.Connection(url).userid or "guest"
        self.users = users or BrokerUsers(shared=self.login_user)
        self.passwords = dict(passwords or {})

    @property
    def declares_everything(self) -> bool:
        """One broker user for everything may declare every service's queues and the events exchange."""
        return self.users.single_user

    def trusted_copiers(self) -> frozenset[str]:
        """Whose copies (retries, parked messages, requeues) a consumer on this bus believes: its own
        and the operator's."""
        return frozenset({self.login_user, self.users.user_of(OPERATOR)})

    def can_publish_as(self, producer: str) -> bool:
        return self.users.user_of(producer) == self.login_user or producer in self.passwords

    def publisher_login(self, producer: str | None) -> tuple[str, str]:
        """(user, URL) a publisher for ``producer`` connects with: the producer's own user when its
        password is known, else this process's (and the broker and consumers judge what it sends)."""
        if producer is not None and self.users.user_of(producer) != self.login_user and producer in self.passwords:
            user = self.users.user_of(producer)
            return user, with_credentials(self.url, user, self.passwords[producer])
        return self.login_user, self.url

    def connection(self, url: str | None = None) -> kombu.Connection:
        return kombu.Connection(
            ";".join(broker_urls(url) if url else self.urls),
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
            "x-dead-letter-exchange": self.naming.internal_exchange(subscription.service),
            "x-dead-letter-routing-key": self.naming.parking_lot(subscription.queue),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def retry_queue_arguments(self, subscription: Subscription, delay: float) -> dict[str, Any]:
        return {
            **self.quorum_arguments(),
            "x-message-ttl": max(1, round(delay * 1000)),
            "x-dead-letter-exchange": self.naming.internal_exchange(subscription.service),
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
        channel.exchange_declare(
            self.naming.exchange, "topic", durable=True, auto_delete=False, passive=not self.declares_everything
        )
        for service in sorted({subscription.service for subscription in subscriptions}):
            channel.exchange_declare(self.naming.internal_exchange(service), "direct", durable=True, auto_delete=False)
        for subscription in subscriptions:
            internal = self.naming.internal_exchange(subscription.service)
            parking_lot = self.naming.parking_lot(subscription.queue)
            channel.queue_declare(parking_lot, durable=True, auto_delete=False, arguments=self.parking_lot_arguments())
            channel.queue_bind(parking_lot, internal, parking_lot)
            queue = self.naming.queue(subscription.queue)
            channel.queue_declare(
                queue, durable=True, auto_delete=False, arguments=self.main_queue_arguments(subscription)
            )
            channel.queue_bind(queue, internal, queue)
            for routing_key in subscription.routing_keys:
                channel.queue_bind(queue, self.naming.exchange, routing_key)
            for delay in sorted(set(self.retry_delays)):
                retry_queue = self.naming.retry_queue(subscription.queue, delay)
                channel.queue_declare(
                    retry_queue,
                    durable=True,
                    auto_delete=False,
                    arguments=self.retry_queue_arguments(subscription, delay),
                )
                channel.queue_bind(retry_queue, internal, retry_queue)

    def delete_topology(self, subscriptions: Sequence[Subscription], also_delays: Sequence[float] = ()) -> None:
        """Remove what ``declare`` made (tests clean up their own namespace with it); ``also_delays``:
        retry queues another process declared in this namespace with its own delays."""
        delays = set(self.retry_delays) | set(also_delays)
        with self.connection() as connection:
            channel = self.open_channel(connection)
            for subscription in subscriptions:
                names = [self.naming.queue(subscription.queue), self.naming.parking_lot(subscription.queue)]
                names += [self.naming.retry_queue(subscription.queue, d) for d in delays]
                for name in names:
                    channel.queue_delete(name)
            for service in {subscription.service for subscription in subscriptions}:
                channel.exchange_delete(self.naming.internal_exchange(service))
            channel.exchange_delete(self.naming.exchange)

    # -- factories ---------------------------------------------------------------------------
    def publisher(self, producer: str | None = None) -> Any:
        """A publisher for ``producer``'s events (see ``publisher_login``)."""
        user, url = self.publisher_login(producer)
        return RabbitPublisher(self, url=url, user_id=user)

    def consumer(self, bindings: Sequence[Any]) -> Any:
        return RabbitConsumer(self, list(bindings))

    def parking_lot(self) -> Any:
        return RabbitParkingLot(self)


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` (one address or a failover list) logging in as ``user`` instead, at every address."""

    def one(address: str) -> str:
        parts = urlsplit(address)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))

    return ";".join(one(address) for address in broker_urls(url))
