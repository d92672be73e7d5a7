"""1,000 malformed messages in every queue of every service, on real RabbitMQ and PostgreSQL, while
real work flows through the same queues: people enroll through the web (register, ask for a new link,
verify, accept the terms) and a month is closed and invoiced.

Each malformed message (bad JSON, deep nesting, not UTF-8, numbers out of range, wrong content type or
types, unknown type, missing fields, oversized, the wrong event) is parked unread with the reason of its
kind, byte for byte as it was sent; the consumers keep running; the valid work interleaved with the
flood comes out exactly right, and none of it is retried because of a bad message beside it.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import amqp
import pytest
from fastapi.testclient import TestClient

from postpay.bootstrap import SERVICES
from services.invoicer.settings import InvoicerSettings
from services.provisioner.settings import ProvisionerSettings
from services.scheduler.settings import SchedulerSettings
from services.signup import schema as signup_schema
from services.usage_collector.settings import UsageCollectorSettings
from shared.bus.amqp_wire import body_bytes
from shared.bus.messages import PARKED_ERROR_HEADER, PARKED_REASON_HEADER
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Subscription
from shared.db import Database
from shared.events.base import new_envelope
from shared.events.enrollment import UserProvisioned
from shared.periods import BillingPeriod
from shared.settings import KernelSettings
from tests.support.billing import PRICES, BillingHarness, Customer, VmHistory, assert_invoice_matches, expected_lines
from tests.support.bus_helpers import metric, wait_until
from tests.support.enrollment import Enrollment, csrf_from, signup_settings, unique_email
from tests.support.malformed import KINDS, REASONS, builders, check_is_malformed
from tests.support.system import Upstreams

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(400)]

PER_QUEUE = 1000
ROUNDS = 10
MAX_BYTES = 8192  # small, so "oversized" floods do not cost hundreds of megabytes
PERIOD = "2026-11"
TIMEZONE = "Europe/Berlin"
JOURNEYS = 4
BILLED = 12


class Flood:
    """Publishes the malformed messages straight into the queues, and remembers what went where."""

    def __init__(self, bus: RabbitBus, subscriptions: list[Subscription]) -> None:
        self.bus = bus
        self.subscriptions = subscriptions
        self.build = builders(MAX_BYTES)
        self.sent: dict[str, Counter[tuple[str, str]]] = {s.queue: Counter() for s in subscriptions}
        self.count = 0

    def round(self, per_queue: int) -> None:
        with self.bus.connection() as connection:
            channel = self.bus.open_channel(connection)
            for offset in range(per_queue):
                n = self.count + offset
                kind = KINDS[n % len(KINDS)]
                for subscription in self.subscriptions:
                    body, content_type = self.build[kind](subscription, n)
                    check_is_malformed(kind, body, content_type, subscription)
                    properties: dict[str, Any] = {"delivery_mode": 2}
                    if content_type is not None:
                        properties["content_type"] = content_type
                    channel.basic_publish(
                        amqp.Message(body, **properties),
                        exchange="",
                        routing_key=self.bus.naming.queue(subscription.queue),
                    )
                    self.sent[subscription.queue][(REASONS[kind], digest(body))] += 1
            # A synchronous call on the same channel: the broker has taken every publish before it.
            channel.queue_declare(self.bus.naming.queue(self.subscriptions[0].queue), passive=True)
        self.count += per_queue


def broker_queue_stats(prefix: str) -> str:
    """The broker's own view of the test's queues (ready, unacknowledged, consumers), when
    ``rabbitmqctl`` can tell it: what a stalled queue holds and where."""
    try:
        listing = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "name", "messages_ready", "messages_unacknowledged", "consumers"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"
    return "; ".join(
        line for line in listing.splitlines() if line.startswith(prefix) and line.split()[1:3] != ["0", "0"]
    )


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def publish_to_queue(bus: RabbitBus, queue: str, envelopes: list[Any]) -> None:
    """Valid events straight into one queue (not the exchange), the way they sit between the flood."""
    with bus.connection() as connection:
        channel = bus.open_channel(connection)
        channel.confirm_select()
        for envelope in envelopes:
            message = amqp.Message(
                envelope.to_json().encode(), content_type="application/json", delivery_mode=2, user_id=bus.login_user
            )
            channel.basic_publish_confirm(message, exchange="", routing_key=bus.naming.queue(queue))


def read_parking_lot(bus: RabbitBus, queue: str, expected: int) -> list[tuple[dict[str, Any], bytes]]:
    """Every message of a parking lot, read without acknowledging (closing the channel returns them).
    One consumer with a large prefetch: a thousand basic.get round trips per queue would be slow."""
    received: list[amqp.Message] = []
    with bus.connection() as connection:
        channel = bus.open_channel(connection)
        channel.basic_qos(0, expected + 100, False)
        channel.basic_consume(bus.naming.parking_lot(queue), callback=received.append, no_ack=False)
        deadline = time.monotonic() + 60
        while len(received) < expected and time.monotonic() < deadline:
            try:
                connection.drain_events(timeout=1)
            except TimeoutError:
                pass
        try:
            connection.drain_events(timeout=0.3)  # anything beyond the expected count shows up too
        except TimeoutError:
            pass
    return [(dict(m.properties.get("application_headers") or {}), body_bytes(m)) for m in received]


def parked_counts(bus: RabbitBus, subscriptions: list[Subscription]) -> dict[str, int]:
    with bus.connection() as connection:
        channel = bus.open_channel(connection)
        return {
            s.queue: channel.queue_declare(bus.naming.parking_lot(s.queue), passive=True).message_count
            for s in subscriptions
        }


def test_a_thousand_malformed_messages_in_every_queue_are_parked_while_valid_work_goes_through(
    rabbit_bus: RabbitBus, postgres_database: Database
) -> None:
    period = BillingPeriod.parse(PERIOD, TIMEZONE)
    now = period.ends_at + timedelta(minutes=20)
    settings = signup_settings(registrations_per_ip=1000)
    scheduler = SchedulerSettings(billing_timezone=TIMEZONE)
    with Upstreams(now=now) as upstreams:
        system = upstreams.system(
            rabbit_bus,
            postgres_database,
            kernel=KernelSettings(max_message_bytes=MAX_BYTES, relay_poll_seconds=0.05),
            overrides=[
                settings,
                ProvisionerSettings(),
                InvoicerSettings(token_prices=PRICES),
                scheduler,
                UsageCollectorSettings(usage_fanout_chunk_size=5),
            ],
        )
        runtime = system.runtime(SERVICES)
        web = Enrollment(upstreams, rabbit_bus, postgres_database, settings=settings)  # drives the web only
        harness = BillingHarness(upstreams, rabbit_bus, postgres_database, scheduler=scheduler)
        subscriptions = [s for service in system.services for s in service.subscriptions]
        assert len(subscriptions) >= 10, [s.queue for s in subscriptions]  # every queue of every service
        flood = Flood(rabbit_bus, subscriptions)

        plan = harness.add_plan("S", 7, 5000)
        billed = [
            harness.add_customer(
                "EUR" if n % 2 else "USD",
                [
                    VmHistory(f"web-{n}", plan, [(period.starts_at - timedelta(days=3), None)]),
                    VmHistory(
                        f"job-{n}",
                        plan,
                        [
                            (
                                period.starts_at + timedelta(days=n + 1),
                                period.starts_at + timedelta(days=n + 2, minutes=n),
                            )
                        ],
                    ),
                ],
                enrolled_at=period.starts_at - timedelta(days=10),
            )
            for n in range(BILLED)
        ]
        emails = [unique_email("flood") for _ in range(JOURNEYS)]
        browsers = [TestClient(web.app, base_url=settings.public_url, follow_redirects=False) for _ in emails]

        retried_before = {s.queue: metric("postpay_messages_retried_total", handler=s.queue) for s in subscriptions}
        runtime.start(background=False)
        consumer_thread = next(t for t in runtime._threads if t.name == "consumer")
        try:
            assert runtime.consumer.connected.wait(15)
            steps = [
                lambda: [web.register(email, client=browser) for email, browser in zip(emails, browsers, strict=True)],
                lambda: [
                    ask_for_a_new_link(web, email, browser) for email, browser in zip(emails, browsers, strict=True)
                ],
                lambda: [
                    web.open_link(web.verification_links(email, count=2, timeout=60)[-1], browser)
                    for email, browser in zip(emails, browsers, strict=True)
                ],
                lambda: [web.accept_terms(browser) for browser in browsers],
                lambda: publish_to_queue(rabbit_bus, "usage_collector.record_customer", enrolments(billed)),
                lambda: (
                    wait_until(
                        lambda: {c.client_id for c in billed} <= harness.enrolled_client_ids(),
                        timeout=60,
                        what="billed customers recorded",
                    )
                    and harness.close(PERIOD)
                ),
            ]
            started = time.monotonic()
            for round_number in range(ROUNDS):
                flood.round(PER_QUEUE // ROUNDS)
                if round_number < len(steps):
                    steps[round_number]()
                print(f"[flood] round {round_number} done at {time.monotonic() - started:.1f}s", flush=True)

            counts: dict[str, int] = {}

            def all_parked() -> bool:
                counts.update(parked_counts(rabbit_bus, subscriptions))
                return counts == {s.queue: PER_QUEUE for s in subscriptions}

            try:
                wait_until(all_parked, timeout=180, interval=0.5, what="every malformed message parked")
            except AssertionError as timed_out:
                # Which lots fell short, and by how much (CI once saw 992 of 1,000 in one queue).
                short = {queue: count for queue, count in counts.items() if count != PER_QUEUE}
                raise AssertionError(
                    f"{timed_out}; parking lots short of {PER_QUEUE}: {short}; "
                    f"held by the consumer: {runtime.consumer.in_hand()}; "
                    f"on the broker: {broker_queue_stats(rabbit_bus.naming.queue(''))}"
                ) from timed_out
            print(f"[flood] all parked at {time.monotonic() - started:.1f}s", flush=True)
            for email in emails:
                wait_until(lambda: web.stage(email) == "enrolled", timeout=60, what=f"{email} enrolled")  # noqa: B023
            status = harness.wait_settled(PERIOD, BILLED, timeout=90)
            assert consumer_thread.is_alive() and runtime.consumer.connected.is_set(), "the consumer kept running"
        finally:
            runtime.stop()
            for browser in browsers:
                browser.close()

        # A malformed message fails alone: none of the valid work beside it was sent to a retry queue.
        retried = {
            s.queue: metric("postpay_messages_retried_total", handler=s.queue) - retried_before[s.queue]
            for s in subscriptions
        }
        assert retried == dict.fromkeys(retried, 0.0), f"valid messages were retried: {retried}"
        for subscription in subscriptions:
            parked = read_parking_lot(rabbit_bus, subscription.queue, PER_QUEUE)
            got = Counter((headers.get(PARKED_REASON_HEADER), digest(body)) for headers, body in parked)
            assert got == flood.sent[subscription.queue], (
                f"{subscription.queue}: parked {sorted(Counter(h.get(PARKED_REASON_HEADER) for h, _ in parked).items())}, "
                f"sent {sorted(Counter(r for r, _ in flood.sent[subscription.queue].elements()).items())}"
            )
            assert all(headers.get(PARKED_ERROR_HEADER) for headers, _ in parked), f"{subscription.queue}: no why"

        for email in emails:
            assert len(web.whmcs_clients(email)) == 1 and len(web.solusvm_users(email)) == 1, email
            assert len(upstreams.smtp.to(email)) == 3, "verification, the new link, and the welcome"
        assert web.count(signup_schema.consents) == 2 * JOURNEYS
        assert status.invoiced == BILLED
        for customer in billed:
            (invoice,) = harness.invoices_of(customer.client_id)
            assert_invoice_matches(
                invoice, expected_lines(customer, period, PRICES[customer.currency], now=now), period
            )


def ask_for_a_new_link(web: Enrollment, email: str, browser: Any) -> None:
    web.verification_links(email, timeout=60)  # the first one arrived: the client exists
    token = csrf_from(browser.get("/signup/check-email").text)
    assert browser.post("/signup/resend", data={"csrf_token": token, "email": email}).status_code == 200


def enrolments(customers: list[Customer]) -> list[Any]:
    return [
        new_envelope(
            UserProvisioned(
                signup_id=uuid.uuid4(),
                email=c.email,
                whmcs_client_id=c.client_id,
                solusvm_user_id=c.solusvm_user_id,
                enrolled_at=c.enrolled_at,
            ),
            producer="provisioner",
        )
        for c in customers
    ]
