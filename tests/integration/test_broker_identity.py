"""Only the right service may state a fact: on a real RabbitMQ node with a user per producer, set up from
the same definitions deploy/ loads (``postpay broker definitions``).

The broker refuses the signup user's attempt to publish another service's events or to write into
another service's queue; a message that still reaches a queue with a publisher the catalog does not
name (a leaked administrator, a misconfigured broker) is parked as ``unauthorised-producer`` and changes
nothing; retries and an operator's requeue keep speaking for the original publisher, so a rightful event
still passes and a forged one is parked again. Users and permissions live on a private node, never on
the shared broker.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import amqp
import pytest
from sqlalchemy import select

from postpay.bootstrap import SERVICES, System
from postpay.broker_access import definitions
from postpay.commands.broker import service_subscriptions
from services.usage_collector import store as collector_store
from shared.bus.identity import RELAY, BrokerUsers
from shared.bus.memory import InMemoryBus
from shared.bus.messages import PUBLISHED_BY_HEADER, OutgoingMessage, PublishError
from shared.bus.parking import Selection
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming
from shared.db import Database
from shared.events import (
    OPERATOR,
    BillingPeriodClosed,
    UsageCollected,
    UserProvisioned,
    UserRegistered,
    new_envelope,
)
from shared.relay import OutboxRelay
from shared.runtime import Runtime
from shared.settings import KernelSettings
from tests.support.bus_helpers import publish, wait_until
from tests.support.private_broker import PrivateBroker
from tests.support.toy import ProbeHappened, attempts, count, effects, toy_service

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]

TEST = "test"  # the producer of the toy's ProbeHappened: a publisher only


@dataclass
class Access:
    broker: PrivateBroker
    naming: Naming
    users: BrokerUsers
    passwords: dict[str, str]

    def user(self, producer: str) -> str:
        return self.users.user_of(producer)

    def bus(self, producer: str, *, passwords: dict[str, str] | None = None) -> RabbitBus:
        """A bus logged in as ``producer``'s own user, as that process would be."""
        return RabbitBus(
            self.broker.url_as(self.user(producer), self.passwords[producer]),
            naming=self.naming,
            users=self.users,
            passwords=passwords,
            retry_delays=[0.2, 0.5],
            confirm_timeout=10,
        )

    def admin(self) -> RabbitBus:
        """The node's administrator (guest): may write anywhere, as a leaked admin password would."""
        return RabbitBus(self.broker.url, naming=self.naming, retry_delays=[0.2, 0.5], confirm_timeout=10)

    def channel_as(self, producer: str) -> tuple[amqp.Connection, Any]:
        connection = amqp.Connection(
            f"127.0.0.1:{self.broker.port}", userid=self.user(producer), password=self.passwords[producer]
        )
        connection.connect()
        return connection, connection.channel()


@pytest.fixture
def access(private_broker_up: PrivateBroker, suite_logging_restored: None) -> Iterator[Access]:
    # suite_logging_restored: service_subscriptions() sets the process's logging to ERROR (for `postpay
    # broker`'s stdout), which the next test in this process inherited: test_dlq_cli's audit warning
    # went unseen when xdist ran it next.
    namespace = f"test-{uuid.uuid4().hex[:10]}"
    producers = [*SERVICES, "toy", OPERATOR, RELAY, TEST]
    users = BrokerUsers(named={producer: f"{namespace}-{producer}" for producer in producers})
    passwords = {producer: secrets.token_hex(12) for producer in producers}
    services = {**service_subscriptions(), "toy": toy_service().subscriptions}
    naming = Naming(namespace)
    private_broker_up.import_definitions(definitions(naming, users, services, passwords, publishers=[TEST]))
    access = Access(private_broker_up, naming, users, passwords)
    yield access
    if private_broker_up.accepts_connections():
        access.admin().delete_topology([s for subscriptions in services.values() for s in subscriptions])
        for producer in producers:
            private_broker_up.delete_user(users.user_of(producer))


def body(event: Any, producer: str) -> bytes:
    return new_envelope(event, producer=producer).to_json().encode()


def provisioned(client_id: int) -> UserProvisioned:
    return UserProvisioned(
        signup_id=uuid.uuid4(),
        email=f"c{client_id}@example.com",
        whmcs_client_id=client_id,
        solusvm_user_id=client_id + 1000,
        enrolled_at="2026-09-01T00:00:00Z",
    )


def usage_collected() -> UsageCollected:
    return UsageCollected(
        period="2026-10",
        starts_at="2026-10-01T00:00:00Z",
        ends_at="2026-11-01T00:00:00Z",
        timezone="UTC",
        whmcs_client_id=1,
        solusvm_user_id=2,
        vms=(),
        total_tokens=0,
    )


def period_closed() -> BillingPeriodClosed:
    return BillingPeriodClosed(
        period="2026-10",
        starts_at="2026-10-01T00:00:00Z",
        ends_at="2026-11-01T00:00:00Z",
        timezone="UTC",
        trigger="manual",
    )


def refused(channel_of: Any, action: Any) -> amqp.exceptions.AMQPError:
    """What the broker answers ``action`` (on a fresh channel) with; it must refuse."""
    connection, channel = channel_of()
    try:
        channel.confirm_select()
        with pytest.raises((amqp.exceptions.AccessRefused, amqp.exceptions.PreconditionFailed)) as error:
            action(channel)
        return error.value
    finally:
        connection.close()


def test_the_signup_user_may_publish_its_own_events_and_nothing_else(access: Access) -> None:
    exchange, signup = access.naming.exchange, access.user("signup")
    connection, channel = access.channel_as("signup")
    try:
        channel.confirm_select()
        channel.basic_publish_confirm(
            amqp.Message(
                body(UserRegistered(signup_id=uuid.uuid4(), email="a@example.com", name="Ada"), "signup"),
                user_id=signup,
            ),
            exchange=exchange,
            routing_key="UserRegistered",
        )
    finally:
        connection.close()

    def as_signup() -> tuple[amqp.Connection, Any]:
        return access.channel_as("signup")

    forged = {
        "UserProvisioned": provisioned(1),
        "UsageCollected": usage_collected(),
        "BillingPeriodClosed": period_closed(),
    }
    for event_type, event in forged.items():
        error = refused(
            as_signup,
            lambda ch, e=event, t=event_type: ch.basic_publish_confirm(
                amqp.Message(body(e, "provisioner"), user_id=signup), exchange=exchange, routing_key=t
            ),
        )
        assert isinstance(error, amqp.exceptions.AccessRefused) and f"topic '{event_type}'" in str(error), error

    record_customer = access.naming.queue("usage_collector.record_customer")
    error = refused(
        as_signup,
        lambda ch: ch.basic_publish_confirm(
            amqp.Message(body(provisioned(1), "provisioner"), user_id=signup), exchange="", routing_key=record_customer
        ),
    )
    assert "amq.default" in str(error), "straight into another service's queue"
    error = refused(
        as_signup,
        lambda ch: ch.basic_publish_confirm(
            amqp.Message(b"{}", user_id=access.user("provisioner")), exchange=exchange, routing_key="UserRegistered"
        ),
    )
    assert isinstance(error, amqp.exceptions.PreconditionFailed) and "user_id" in str(error)
    refused(as_signup, lambda ch: ch.queue_declare(record_customer, durable=True, auto_delete=False))
    refused(as_signup, lambda ch: ch.exchange_delete(exchange))
    refused(
        as_signup,
        lambda ch: ch.basic_publish_confirm(
            amqp.Message(body(provisioned(1), "provisioner"), user_id=signup),
            exchange=access.naming.internal_exchange("usage_collector"),
            routing_key=record_customer,
        ),
    )

    def eavesdrop(channel: Any) -> None:
        own = access.naming.queue("signup.eavesdrop")
        channel.queue_declare(own, durable=False, auto_delete=True)
        channel.queue_bind(own, exchange, "UsageCollected")

    assert "topic 'UsageCollected'" in str(refused(as_signup, eavesdrop))

    # postpay's own publisher, in a signup process an attacker controls: the broker says no.
    publisher = access.bus("signup").publisher("signup")
    try:
        with pytest.raises(PublishError):
            publisher.publish([OutgoingMessage.from_envelope(new_envelope(provisioned(1), producer="provisioner"))])
    finally:
        publisher.close()


def test_a_forged_user_provisioned_is_parked_and_records_no_customer(
    access: Access, postgres_database: Database
) -> None:
    collector_bus = access.bus("usage_collector")
    system = System(kernel=KernelSettings(), db=postgres_database, bus=collector_bus)
    system.create_tables()
    runtime = system.runtime(("usage_collector",))
    runtime.start(background=False)
    admin = access.admin()
    queue = "usage_collector.record_customer"
    try:
        assert runtime.consumer.connected.wait(15)
        publisher = access.bus("provisioner").publisher("provisioner")
        try:
            rightful = new_envelope(provisioned(501), producer="provisioner")
            assert rightful.event_id in publisher.publish([OutgoingMessage.from_envelope(rightful)]).confirmed
        finally:
            publisher.close()
        wait_until(lambda: customers(postgres_database) == {501}, what="the provisioner's customer recorded")

        forgeries = [
            {"user_id": "guest"},  # a leaked administrator
            {"user_id": "guest", "headers": {PUBLISHED_BY_HEADER: access.user("provisioner")}},  # claims a voucher
            {},  # no user_id at all
        ]
        for number, forgery in enumerate(forgeries):
            properties = {
                "content_type": "application/json",
                "delivery_mode": 2,
                "application_headers": forgery.get("headers", {}),
            }
            if "user_id" in forgery:
                properties["user_id"] = forgery["user_id"]
            with admin.connection() as connection:
                channel = admin.open_channel(connection)
                channel.confirm_select()
                channel.basic_publish_confirm(
                    amqp.Message(body(provisioned(666 + number), "provisioner"), **properties),
                    exchange="",
                    routing_key=access.naming.queue(queue),
                )
        lot = admin.parking_lot()
        admin.subscriptions = list(collector_bus.subscriptions)
        parked = wait_until(
            lambda: len(lot.list(access.naming.parking_lot(queue))) == 3 and lot.list(access.naming.parking_lot(queue)),
            what="three forgeries parked",
        )
    finally:
        runtime.stop()
        close_clients(system)
    assert [message.reason for message in parked] == ["unauthorised-producer"] * 3
    assert "published by guest" in parked[0].error and access.user("provisioner") in parked[0].error
    assert "unidentified" in parked[2].error
    assert customers(postgres_database) == {501}, "no forged customer was recorded"


def close_clients(system: System) -> None:
    for client in (system.deps.whmcs, system.deps.solusvm):
        client.close()


def customers(db: Database) -> set[int]:
    with db.transaction() as session:
        return set(session.execute(select(collector_store.customers.c.whmcs_client_id)).scalars())


def test_retries_and_requeues_speak_for_the_original_publisher(access: Access, postgres_database: Database) -> None:
    toy = toy_service()
    runtime = Runtime(access.bus("toy"), postgres_database, [toy], relay_poll_seconds=0.05)
    runtime.create_tables()
    runtime.start()
    queue = "toy.apply_probe"
    lot_name = access.naming.parking_lot(queue)
    operator = access.bus(OPERATOR)
    operator.subscriptions = list(toy.subscriptions)
    lot = operator.parking_lot()
    publisher = access.bus(TEST).publisher(TEST)
    try:
        assert runtime.consumer.connected.wait(15)
        once, thrice = (
            ProbeHappened(key=f"once-{uuid.uuid4().hex}", fail_times=1),
            ProbeHappened(key=f"thrice-{uuid.uuid4().hex}", fail_times=3),
        )
        result = publisher.publish(
            [OutgoingMessage.from_envelope(new_envelope(e, producer=TEST)) for e in (once, thrice)]
        )
        assert len(result.confirmed) == 2
        # Retried through the toy's own exchange under the toy's user, and still the test's event.
        wait_until(lambda: count(postgres_database, effects, once.key) == 1, what="applied on its retry")
        assert count(postgres_database, attempts, once.key) == 2
        parked = wait_until(lambda: lot.list(lot_name), what="retries exhausted")
        assert [m.reason for m in parked] == ["retries-exhausted"]
        assert parked[0].headers[PUBLISHED_BY_HEADER] == access.user(TEST)
        lot.requeue(lot_name, Selection(everything=True), actor="ops", reason="fixed")
        wait_until(lambda: count(postgres_database, effects, thrice.key) == 1, what="requeued and applied")

        forged = ProbeHappened(key=f"forged-{uuid.uuid4().hex}")
        admin = access.admin()
        with admin.connection() as connection:
            channel = admin.open_channel(connection)
            channel.confirm_select()
            channel.basic_publish_confirm(
                amqp.Message(body(forged, TEST), content_type="application/json", user_id="guest", delivery_mode=2),
                exchange="",
                routing_key=access.naming.queue(queue),
            )
        parked = wait_until(lambda: lot.list(lot_name), what="the forgery parked")
        assert [m.reason for m in parked] == ["unauthorised-producer"]
        assert lot.requeue(lot_name, Selection(everything=True), actor="ops", reason="try it anyway")
        parked = wait_until(
            lambda: [m for m in lot.list(lot_name) if m.headers.get("x-postpay-requeued-by")],
            what="the requeued forgery parked again",
        )
        assert [m.reason for m in parked] == ["unauthorised-producer"]
        assert parked[0].headers[PUBLISHED_BY_HEADER] == "guest", "the requeue vouched for nobody new"
    finally:
        publisher.close()
        runtime.stop()
    assert count(postgres_database, attempts, forged.key) == 0, "the forgery never reached the handler"


def test_the_relay_publishes_each_outbox_as_its_own_service(access: Access, sqlite_database: Database) -> None:
    system = System(kernel=KernelSettings(), db=sqlite_database, bus=access.bus("signup"))
    signup = system.service("signup")
    signup.metadata.create_all(sqlite_database.engine)
    access.bus("signup").declare(signup.subscriptions)
    with sqlite_database.transaction() as session:
        envelope = signup.outbox.add_event(
            session, UserRegistered(signup_id=uuid.uuid4(), email="r@example.com", name="Relayed")
        )
    without_password = access.bus(RELAY)
    with pytest.raises(PublishError):
        OutboxRelay(sqlite_database, [signup.outbox], without_password.publisher).relay_once()
    with sqlite_database.transaction() as session:
        assert signup.outbox.backlog(session) == 1, "an event the broker refused stays in the outbox"

    close_clients(system)
    relay = access.bus(RELAY, passwords={"signup": access.passwords["signup"]})
    assert OutboxRelay(sqlite_database, [signup.outbox], relay.publisher).relay_once() == 1
    admin = access.admin()
    with admin.connection() as connection:
        (queue,) = [s.queue for s in signup.subscriptions if UserRegistered in s.events]
        raw = admin.open_channel(connection).basic_get(access.naming.queue(queue), no_ack=True)
    assert raw is not None and raw.properties["message_id"] == str(envelope.event_id)
    assert raw.properties["user_id"] == access.user("signup")


def test_on_the_in_process_bus_an_event_from_the_wrong_service_is_parked_too(sqlite_database: Database) -> None:
    memory = InMemoryBus(retry_delays=[0.2], naming=Naming(f"test-{uuid.uuid4().hex[:10]}"))
    system = System(kernel=KernelSettings(), db=sqlite_database, bus=memory)
    try:
        system.create_tables()
        runtime = system.runtime(("usage_collector",))
        runtime.declare()
        publish(memory, provisioned(41), producer="provisioner")
        publish(memory, provisioned(42), producer="signup")
        runtime.drain(timeout=30)
        (parked,) = memory.parking_lot().list(memory.naming.parking_lot("usage_collector.record_customer"))
        assert parked.reason == "unauthorised-producer" and "postpay-signup" in parked.error
        assert customers(sqlite_database) == {41}
    finally:
        close_clients(system)
