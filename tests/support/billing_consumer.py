"""Run the invoicer as its own process, for tests that kill it.

With ``--pause-after-create MARKER`` the WHMCS client, once CreateInvoice has answered, writes the new
invoice id to MARKER and blocks: the invoice exists in WHMCS, the invoicer has not committed, and the
test kills the process right there. The pause lives in this test adapter, not in postpay's code.
"""

from __future__ import annotations

import argparse
import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from services.invoicer.service import build
from services.invoicer.settings import InvoicerSettings
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming
from shared.db import Database
from shared.dependencies import Dependencies
from shared.logging import configure_logging
from shared.runtime import Runtime
from shared.upstream.retries import RetryPolicy
from shared.upstream.whmcs import WhmcsClient


class WhmcsClientPausingAfterCreate(WhmcsClient):
    def __init__(self, *args: Any, marker: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marker = marker

    def create_invoice(self, *args: Any, **kwargs: Any) -> int:
        invoice_id = super().create_invoice(*args, **kwargs)
        self.marker.write_text(str(invoice_id))
        threading.Event().wait()  # until killed
        return invoice_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--amqp", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--schema", default=None)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--whmcs-url", required=True)
    parser.add_argument("--whmcs-identifier", required=True)
    parser.add_argument("--whmcs-secret", required=True)
    parser.add_argument("--token-prices", required=True, help="JSON object of currency code to price.")
    parser.add_argument("--pause-after-create", type=Path, default=None)
    parser.add_argument(
        "--uncertain-quiet-seconds",
        type=float,
        default=1.0,
        help="POSTPAY_WHMCS_UNCERTAIN_QUIET_SECONDS: how long an attempt that died is waited for.",
    )
    args = parser.parse_args()
    configure_logging("INFO")

    client_args = (args.whmcs_url, SecretStr(args.whmcs_identifier), SecretStr(args.whmcs_secret))
    retry = RetryPolicy(max_attempts=3, deadline_seconds=5.0, initial_backoff=0.01, max_backoff=0.1)
    if args.pause_after_create is not None:
        whmcs: WhmcsClient = WhmcsClientPausingAfterCreate(*client_args, retry=retry, marker=args.pause_after_create)
    else:
        whmcs = WhmcsClient(*client_args, retry=retry)
    prices = {code: Decimal(price) for code, price in json.loads(args.token_prices).items()}
    deps = Dependencies(
        whmcs=whmcs,
        solusvm=None,
        mailer=None,
        overrides={
            InvoicerSettings: InvoicerSettings(
                token_prices=prices, whmcs_uncertain_quiet_seconds=args.uncertain_quiet_seconds
            ),
        },
    )
    db = Database(args.database, schema=args.schema)
    deps.db = db
    bus = RabbitBus(args.amqp, naming=Naming(args.namespace), retry_delays=[0.2, 0.5], prefetch=4, concurrency=2)
    runtime = Runtime(bus, db, [build(deps)], relay_poll_seconds=0.05)
    runtime.install_signal_handlers()
    runtime.start()
    runtime.wait()


if __name__ == "__main__":
    main()
