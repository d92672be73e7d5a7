"""Bus throughput: events/s through postpay's bus against raw pika on the same queue type, same run.

postpay's path is the real one: events written to an outbox, relayed with batched publisher confirms,
consumed from a quorum queue, deduplicated through the inbox in a PostgreSQL transaction (one per
event: the handler is marked ``database_first``, as the invoicer's are), acked after commit; once
applying one event per transaction, once with ``Subscription.batch`` (the waiting deliveries of a busy
consumer claimed and committed together). Raw baselines run on the same broker
and quorum queue type, with as many consumer threads (each its own connection) as postpay has handler
threads (their code is ``bench.raw_pika``):

- ``pika``: publish with asynchronous confirms (SelectConnection), consume with manual acks: the
  broker's cost alone;
- ``pika+inbox``: the same, each consumer decoding the JSON body and committing an inbox row in
  PostgreSQL with raw psycopg before acking: the work postpay does for exactly-once handling, with no
  framework around it. This is the "raw pika doing the same" the target is measured against;
- ``pika+inbox batched``: the same with the rows of the messages a consumer has waiting committed
  together and acked with one ``multiple`` ack: what postpay's batching does, done by hand.

The raw paths send the same messages postpay's relay sends (the same envelope bodies, properties and
headers, through a topic exchange, mandatory) and claim the same inbox rows (the body's event id,
``ON CONFLICT DO NOTHING``); on both sides the events exist in memory before the clock starts. With
``--minimal-raw``, as before 2026-12-06: a ten-byte body with two properties straight to the queue, a
random id per inbox row, and postpay's clock also covering the building of its envelopes.

    python -m bench.bus_throughput --events 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.bus_events import BenchTick, bench_envelopes
from bench.common import RESULTS, add_server_options, machine_facts, results_path, spread
from bench.raw_pika import pika_run
from shared.bus.handler_context import database_first
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming, Subscription
from shared.db import Database, normalise_url
from shared.logging import configure_logging
from shared.runtime import Runtime
from shared.service import ServiceDefinition, ServiceTables
from shared.settings import KernelSettings

STALL_SECONDS = 60.0


class Applied:
    """The handler only counts: what is measured is the bus and the inbox. Counting in memory lets the
    run see its end without polling the database from the measured process (the raw paths count in
    memory too); the inbox is checked once at the end."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, event: BenchTick, ctx: Any) -> None:
        with self._lock:
            self.count += 1


def postpay_run(
    amqp_url: str,
    db: Database,
    events: int,
    prefetch: int,
    concurrency: int,
    linger: float,
    batch: int = 1,
    *,
    envelopes_in_clock: bool = False,
    producer_chunk: int = 0,
    separate_check: bool = False,
) -> dict[str, float]:
    """``envelopes_in_clock``: build the events after the clock starts (the earlier records did).

    ``producer_chunk``: 0 writes every event to the outbox in one transaction and then starts the bus
    (the issue's measurement); N commits them N at a time while the bus runs, as producers commit
    events in transactions of their own (the month close's fan-out, a chunk of customers at a time)
    and as the raw publisher publishes while its consumers run."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    tables = ServiceTables("bench")
    applied = Applied()
    if not separate_check:
        # The handler calls no upstream, so it meets database_first's contract: the inbox check is the
        # first statement of its one transaction per event (the invoicer's and the collector's path;
        # the raw path commits one per message too). Unmarked, a handler that may call an upstream
        # first pays a look-up transaction of its own before it runs (``--separate-check``).
        database_first(applied)
    service = ServiceDefinition("bench", tables, [Subscription("bench", "tick", (BenchTick,), applied, batch=batch)])
    bus = RabbitBus(amqp_url, naming=Naming(namespace), prefetch=prefetch, concurrency=concurrency)
    runtime = Runtime(bus, db, [service], relay_batch_size=1000, relay_poll_seconds=0.01, relay_linger_seconds=linger)
    tables.metadata.drop_all(db.engine)
    runtime.create_tables()
    runtime.declare()
    try:
        envelopes = None if envelopes_in_clock else bench_envelopes(events)
        started, cpu_started = time.perf_counter(), time.process_time()
        envelopes = envelopes if envelopes is not None else bench_envelopes(events)
        if producer_chunk > 0:
            runtime.start()
        for first in range(0, events, producer_chunk or events):
            with db.transaction() as session:
                tables.outbox.add_all(session, envelopes[first : first + (producer_chunk or events)])
        written = time.perf_counter()
        if producer_chunk <= 0:
            runtime.start()
        done = _wait_for(lambda: applied.count, events)
        # Each handler's transaction commits just after it counted: the last ones are milliseconds away.
        done = _wait_for(lambda: _inbox_rows(db), events)
        finished, cpu = time.perf_counter(), time.process_time() - cpu_started
    finally:
        runtime.stop()
        bus.delete_topology(service.subscriptions)
        tables.metadata.drop_all(db.engine)
    return {
        "events": done,
        "seconds": finished - started,
        "events_per_second": events / (finished - started),
        "outbox_write_seconds": written - started,
        "events_per_second_after_outbox_write": events / (finished - written),
        "cpu_ms_per_event": 1000 * cpu / events,
    }


def _wait_for(count: Callable[[], int], events: int) -> int:
    done, progress_at = 0, time.monotonic()
    while done < events:
        time.sleep(0.005)
        latest = count()
        if latest > done:
            done, progress_at = latest, time.monotonic()
        elif time.monotonic() - progress_at > STALL_SECONDS:
            raise RuntimeError(f"postpay's path stalled at {done} of {events} events")
    return done


def _inbox_rows(db: Database) -> int:
    with db.transaction() as session:
        return int(session.execute(text("SELECT count(*) FROM bench_inbox")).scalar_one())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--prefetch", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--linger",
        type=float,
        default=KernelSettings().relay_linger_seconds,
        help="The relay's linger after a wake (postpay's default).",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=64,
        help="Largest batch of the batched paths, postpay's (Subscription.batch) and raw pika's.",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="Rounds of all three paths, interleaved (the machine is shared: report the spread).",
    )
    add_server_options(parser)
    parser.add_argument(
        "--producer-chunk",
        type=int,
        default=0,
        help="postpay's events committed this many at a time while the bus runs (0: all at once, before).",
    )
    parser.add_argument(
        "--minimal-raw",
        action="store_true",
        help="The raw paths' earlier messages and inbox rows, and postpay's clock covering its envelopes' making.",
    )
    parser.add_argument(
        "--separate-check",
        action="store_true",
        help="postpay's one-at-a-time handler unmarked: the inbox look-up in a transaction of its own first.",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    minimal = args.minimal_raw
    # postpay logs a line per handled event, as in production; here to a file, not the terminal.
    log_path = Path(tempfile.gettempdir()) / "postpay-bus-throughput.log"
    with log_path.open("w") as log:
        configure_logging("INFO", stream=log)
        db = Database(normalise_url(args.database), pool_size=args.concurrency + 4)
        raw_url = make_url(normalise_url(args.database)).set(drivername="postgresql").render_as_string(False)
        rounds: list[dict[str, dict[str, float]]] = []
        raw = functools.partial(pika_run, args.amqp, minimal=minimal)
        common = (args.events, args.prefetch, args.concurrency)
        ours = functools.partial(
            postpay_run,
            args.amqp,
            db,
            *common,
            args.linger,
            envelopes_in_clock=minimal,
            producer_chunk=args.producer_chunk,
            separate_check=args.separate_check,
        )
        for _ in range(args.repeat):
            rounds.append(
                {
                    "pika": raw(None, *common),
                    "pika+inbox": raw(raw_url, *common),
                    "pika+inbox batched": raw(raw_url, *common, args.batch),
                    "postpay": ours(),
                    "postpay batched": ours(args.batch),
                }
            )
            print(
                "round",
                len(rounds),
                {
                    path: f"{r['events_per_second']:.0f}/s {r['cpu_ms_per_event']:.2f} CPU-ms"
                    for path, r in rounds[-1].items()
                },
                flush=True,
            )
    figures = {path: spread([r[path]["events_per_second"] for r in rounds]) for path in rounds[0]}
    cpu = {path: spread([r[path]["cpu_ms_per_event"] for r in rounds]) for path in rounds[0]}

    # Each round's own ratio, so a slow minute for one path does not pair with a fast one for another.
    def ratio(path: str, baseline: str) -> dict[str, Any]:
        return spread([r[path]["events_per_second"] / r[baseline]["events_per_second"] for r in rounds])

    ratios = {
        "postpay/pika": ratio("postpay", "pika"),
        "postpay/pika+inbox": ratio("postpay", "pika+inbox"),
        "batched/pika+inbox": ratio("postpay batched", "pika+inbox"),
        "batched/pika+inbox batched": ratio("postpay batched", "pika+inbox batched"),
    }
    print(f"{'path':20} {'events/s median (min-max)':>28} {'CPU-ms/event (this process)':>28}")
    for name, rate in figures.items():
        print(
            f"{name:20} {rate['median']:>10.0f} ({rate['min']:.0f}-{rate['max']:.0f}) "
            f"{cpu[name]['median']:>16.3f} ({cpu[name]['min']:.3f}-{cpu[name]['max']:.3f})"
        )
    for name, share in ratios.items():
        print(f"{name:20} {share['median']:>10.2f} ({share['min']:.2f}-{share['max']:.2f})")
    parameters = vars(args) | {"amqp": "(local)", "database": "(local)", "results_dir": str(args.results_dir)}
    result = {
        "benchmark": "bus_throughput",
        "machine": machine_facts(),
        "parameters": parameters,
        "events_per_second": figures,
        "cpu_ms_per_event": cpu,
        "ratios": ratios,
        "rounds": rounds,
    }
    path = results_path("bus-throughput", args.results_dir)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"recorded {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
