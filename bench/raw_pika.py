"""The bus benchmark's raw baselines: pika publishing with asynchronous confirms and consuming with manual
acks, with (given a database) raw psycopg committing an inbox row per message, one at a time or batched
by hand. What postpay's bus is measured against; ``bench.bus_throughput`` says how."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pika
import psycopg

from bench.bus_events import BenchTick, bench_envelopes
from shared.bus.messages import OutgoingMessage
from shared.bus.rabbit_publish import to_amqp_message


class AsyncConfirmPublisher:
    """pika SelectConnection publishing N messages and counting asynchronous confirms."""

    def __init__(self, url: str, exchange: str, messages: list[tuple[str, bytes, Any]]) -> None:
        self.url, self.exchange, self.messages, self.events = url, exchange, messages, len(messages)
        self.confirmed = 0
        self.sent = 0
        self.connection: Any = None

    def run(self) -> None:
        self.connection = pika.SelectConnection(pika.URLParameters(self.url), on_open_callback=self._opened)
        self.connection.ioloop.start()

    def _opened(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._channel_open)

    def _channel_open(self, channel: Any) -> None:
        self.channel = channel
        channel.confirm_delivery(self._on_confirm)
        self._publish_some()

    def _publish_some(self) -> None:
        # Keep a window of unconfirmed messages in flight, like postpay's batches.
        while self.sent < self.events and self.sent - self.confirmed < 1000:
            routing_key, body, properties = self.messages[self.sent]
            self.channel.basic_publish(self.exchange, routing_key, body, properties, mandatory=self.exchange != "")
            self.sent += 1
        if self.sent < self.events:
            self.connection.ioloop.call_later(0.001, self._publish_some)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            raise RuntimeError("broker nacked a message")
        tag = method.delivery_tag
        self.confirmed = tag if method.multiple else self.confirmed + 1
        if self.confirmed >= self.events:
            self.connection.close()
            self.connection.ioloop.stop()


def raw_messages(events: int, queue: str, user: str, *, minimal: bool) -> list[tuple[str, bytes, Any]]:
    """(routing key, body, properties) of each event: what postpay's relay sends (``to_amqp_message``),
    or (``minimal``) a ten-byte body for the queue by name."""
    if minimal:
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        return [(queue, json.dumps({"n": n}).encode(), properties) for n in range(events)]
    messages = []
    for envelope in bench_envelopes(events):
        message = OutgoingMessage.from_envelope(envelope)
        # The relay's own properties, so the raw side can never drift from what postpay sends.
        sent = dict(to_amqp_message(message, user).properties)
        properties = pika.BasicProperties(headers=sent.pop("application_headers", None), **sent)
        messages.append((message.event_type, message.body, properties))
    return messages


def pika_run(
    amqp_url: str,
    database_url: str | None,
    events: int,
    prefetch: int,
    consumers: int,
    batch: int = 1,
    *,
    minimal: bool = False,
) -> dict[str, float]:
    """Raw pika (and, with ``database_url``, raw psycopg): ``consumers`` threads, as many as postpay's
    handler threads, each with its own connection, sharing the prefetch; an inbox row per message
    committed before the ack. With ``batch`` > 1, each thread commits the rows of the messages it has
    waiting (up to ``batch``) at once and acks them with one ``multiple`` ack, as postpay's batches do."""
    queue = f"bench-pika-{uuid.uuid4().hex[:8]}"
    exchange = "" if minimal else f"{queue}-events"
    setup = pika.BlockingConnection(pika.URLParameters(amqp_url))
    setup_channel = setup.channel()
    setup_channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    if exchange:
        setup_channel.exchange_declare(exchange, "topic", durable=True)
        setup_channel.queue_bind(queue, exchange, BenchTick.__name__)
    setup.close()
    table = f"pika_inbox_{uuid.uuid4().hex[:8]}"
    insert = f"INSERT INTO {table} (handler, event_id, processed_at) VALUES (%s, %s, %s)"
    if not minimal:
        insert += " ON CONFLICT DO NOTHING"
    user = pika.URLParameters(amqp_url).credentials.username
    messages = raw_messages(events, queue, user, minimal=minimal)
    if database_url is not None:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(
                f"CREATE TABLE {table} (handler varchar(200), event_id uuid, "
                "processed_at timestamptz NOT NULL, PRIMARY KEY (handler, event_id))"
            )
    consumed = 0
    lock = threading.Lock()
    done = threading.Event()

    def consume() -> None:
        nonlocal consumed
        database = psycopg.connect(database_url) if database_url is not None else None
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        channel.basic_qos(prefetch_count=max(1, prefetch // consumers))
        waiting: list[int] = []
        ids: list[uuid.UUID] = []

        def settle() -> None:
            nonlocal consumed
            if database is not None:
                now = datetime.now(UTC)
                rows = [("pika", event_id, now) for event_id in ids]
                with database.cursor() as cursor:
                    cursor.executemany(insert, rows)
                database.commit()
            channel.basic_ack(waiting[-1], multiple=len(waiting) > 1)
            with lock:
                consumed += len(waiting)
                if consumed >= events:
                    done.set()
            waiting.clear()
            ids.clear()

        # A batch ends when it is full or when no further message is already waiting.
        for method, _properties, body in channel.consume(queue, inactivity_timeout=0.2 if batch == 1 else 0.001):
            if done.is_set():
                break
            if method is not None:
                decoded = json.loads(body)
                ids.append(uuid.uuid4() if minimal else uuid.UUID(decoded["event_id"]))
                waiting.append(method.delivery_tag)
            if waiting and (method is None or len(waiting) >= batch):
                settle()
        connection.close()
        if database is not None:
            database.close()

    threads = [threading.Thread(target=consume, daemon=True) for _ in range(consumers)]
    started, cpu_started = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    AsyncConfirmPublisher(amqp_url, exchange, messages).run()
    done.wait(600)
    finished, cpu = time.perf_counter(), time.process_time() - cpu_started
    for thread in threads:
        thread.join(10)
    cleanup = pika.BlockingConnection(pika.URLParameters(amqp_url))
    cleanup_channel = cleanup.channel()
    cleanup_channel.queue_delete(queue)
    if exchange:
        cleanup_channel.exchange_delete(exchange)
    cleanup.close()
    if database_url is not None:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(f"DROP TABLE {table}")
    return {
        "events": consumed,
        "seconds": finished - started,
        "events_per_second": consumed / (finished - started),
        "cpu_ms_per_event": 1000 * cpu / consumed,
    }
