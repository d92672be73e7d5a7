"""Bus throughput: events/s through postpay's bus against raw pika on the same queue type, same run.

postpay's path is the real one: events written to an outbox, relayed with batched publisher confirms,
consumed from a quorum queue, deduplicated through the inbox in a PostgreSQL transaction, acked after
commit. Two raw pika baselines run on the same broker and quorum queue type:

- ``pika``: publish with asynchronous confirms (SelectConnection), consume with manual acks: the
  broker's cost alone;
- ``pika+inbox``: the same, with the consumer inserting the same inbox row per message in PostgreSQL
  before acking: the same work postpay does for exactly-once handling.

    python -m bench.bus_throughput --events 20000
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
from sqlalchemy import Column, MetaData, String, Table, Uuid, text

from bench.common import machine_facts, results_path
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming, Subscription
from shared.db import Database, UtcTimestamp, normalise_url
from shared.events.base import Event, new_envelope
from shared.runtime import Runtime
from shared.service import ServiceDefinition, ServiceTables


class BenchTick(Event):
    n: int


def noop(event: BenchTick, ctx: Any) -> None:
    """The handler does nothing: what is measured is the bus and the inbox."""


def postpay_run(amqp_url: str, db: Database, events: int, prefetch: int, concurrency: int) -> dict[str, float]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    tables = ServiceTables("bench")
    service = ServiceDefinition("bench", tables, [Subscription("bench", "tick", (BenchTick,), noop)])
    bus = RabbitBus(amqp_url, naming=Naming(namespace), prefetch=prefetch, concurrency=concurrency)
    runtime = Runtime(bus, db, [service], relay_batch_size=1000, relay_poll_seconds=0.01)
    tables.metadata.drop_all(db.engine)
    runtime.create_tables()
    runtime.declare()
    try:
        started = time.perf_counter()
        with db.transaction() as session:
            tables.outbox.add_all(session, [new_envelope(BenchTick(n=n), producer="bench") for n in range(events)])
        written = time.perf_counter()
        runtime.start()
        while True:
            with db.transaction() as session:
                done = session.execute(text("SELECT count(*) FROM bench_inbox")).scalar_one()
            if done >= events:
                break
            time.sleep(0.02)
        finished = time.perf_counter()
    finally:
        runtime.stop()
        bus.delete_topology(service.subscriptions)
        tables.metadata.drop_all(db.engine)
    return {
        "seconds": finished - started,
        "events_per_second": events / (finished - started),
        "outbox_write_seconds": written - started,
        "events_per_second_after_outbox_write": events / (finished - written),
    }


class AsyncConfirmPublisher:
    """pika SelectConnection publishing N messages and counting asynchronous confirms."""

    def __init__(self, url: str, queue: str, events: int) -> None:
        self.url, self.queue, self.events = url, queue, events
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
            body = json.dumps({"n": self.sent}).encode()
            self.channel.basic_publish("", self.queue, body, pika.BasicProperties(delivery_mode=2,
                                                                                  content_type="application/json"))
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


def pika_run(amqp_url: str, db: Database | None, events: int, prefetch: int) -> dict[str, float]:
    queue = f"bench-pika-{uuid.uuid4().hex[:8]}"
    setup = pika.BlockingConnection(pika.URLParameters(amqp_url))
    setup.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    setup.close()
    inbox = None
    if db is not None:
        inbox = Table("pika_inbox", MetaData(), Column("handler", String(200), primary_key=True),
                      Column("event_id", Uuid, primary_key=True), Column("processed_at", UtcTimestamp))
        inbox.metadata.drop_all(db.engine)
        inbox.metadata.create_all(db.engine)
    consumed = 0
    done = threading.Event()

    def consume() -> None:
        nonlocal consumed
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        channel.basic_qos(prefetch_count=prefetch)
        for method, _properties, _body in channel.consume(queue, inactivity_timeout=30):
            if method is None:
                break
            if inbox is not None:
                with db.transaction() as session:  # type: ignore[union-attr]
                    session.execute(inbox.insert().values(handler="pika", event_id=uuid.uuid4(),
                                                          processed_at=datetime.now(UTC)))
            channel.basic_ack(method.delivery_tag)
            consumed += 1
            if consumed >= events:
                break
        connection.close()
        done.set()

    consumer = threading.Thread(target=consume, daemon=True)
    started = time.perf_counter()
    consumer.start()
    AsyncConfirmPublisher(amqp_url, queue, events).run()
    done.wait(600)
    finished = time.perf_counter()
    cleanup = pika.BlockingConnection(pika.URLParameters(amqp_url))
    cleanup.channel().queue_delete(queue)
    cleanup.close()
    if inbox is not None:
        inbox.metadata.drop_all(db.engine)  # type: ignore[union-attr]
    return {"seconds": finished - started, "events_per_second": consumed / (finished - started)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--prefetch", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--amqp", default=os.environ.get("POSTPAY_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--database", default=os.environ.get("POSTPAY_BENCH_DATABASE_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    db = Database(normalise_url(args.database), pool_size=args.concurrency + 4)
    figures = {
        "pika": pika_run(args.amqp, None, args.events, args.prefetch),
        "pika+inbox": pika_run(args.amqp, db, args.events, args.prefetch),
        "postpay": postpay_run(args.amqp, db, args.events, args.prefetch, args.concurrency),
    }
    postpay_rate = figures["postpay"]["events_per_second"]
    ratios = {
        "postpay/pika": postpay_rate / figures["pika"]["events_per_second"],
        "postpay/pika+inbox": postpay_rate / figures["pika+inbox"]["events_per_second"],
    }
    print(f"{'path':12} {'events/s':>10} {'seconds':>8}")
    for name, result in figures.items():
        print(f"{name:12} {result['events_per_second']:10.0f} {result['seconds']:8.2f}")
    for name, ratio in ratios.items():
        print(f"{name:20} {ratio:6.2f}")
    result = {"benchmark": "bus_throughput", "machine": machine_facts(), "parameters": vars(args) | {"amqp": "(local)",
              "database": "(local)"}, "figures": figures, "ratios": ratios}
    path = results_path("bus-throughput")
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"recorded {path}")


if __name__ == "__main__":
    main()
