"""Run the toy service as its own process (for tests that kill or stop consumers)."""

from __future__ import annotations

import argparse

from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming
from shared.db import Database
from shared.logging import configure_logging
from shared.runtime import Runtime
from tests.support.toy import toy_service


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--amqp", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--schema", default=None)
    parser.add_argument("--namespace", required=True)
    args = parser.parse_args()
    configure_logging("INFO")
    bus = RabbitBus(args.amqp, naming=Naming(args.namespace), retry_delays=[0.2, 0.5], prefetch=4, concurrency=2)
    db = Database(args.database, schema=args.schema)
    runtime = Runtime(bus, db, [toy_service()])
    runtime.install_signal_handlers()
    runtime.start()
    runtime.wait()


if __name__ == "__main__":
    main()
