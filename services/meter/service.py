"""The meter: no subscriptions; one background loop that sweeps SolusVM 2 every interval and publishes
what its VMs did (``POSTPAY_USAGE_SOURCE=meter`` bills from it)."""

from __future__ import annotations

import threading

from services.meter import store
from services.meter.handlers import Meter
from services.meter.settings import MeterSettings
from shared.dependencies import Dependencies
from shared.errors import ConfigurationError
from shared.service import ServiceDefinition

NAME = "meter"


def build(deps: Dependencies) -> ServiceDefinition:
    meter = Meter(deps, store.tables.outbox, deps.settings(MeterSettings))

    def run_meter(stop: threading.Event) -> None:
        if deps.db is None:
            raise ConfigurationError("the meter needs the database (Dependencies.db is unset)")
        meter.run(stop)

    return ServiceDefinition(
        name=NAME, tables=store.tables, subscriptions=[], background=[run_meter], extras={"meter": meter}
    )
