"""The meter: no subscriptions; one background loop that sweeps SolusVM 2 every interval and publishes
what its VMs did (``POSTPAY_USAGE_SOURCE=meter`` bills from it)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from services.meter import store
from services.meter.handlers import Meter
from services.meter.settings import MeterSettings
from shared.dependencies import Dependencies
from shared.errors import ConfigurationError
from shared.service import ServiceDefinition

NAME = "meter"


@dataclass
class MeterService(ServiceDefinition):
    """The meter's definition, with the meter itself: tests and the demo sweep it by hand."""

    meter: Meter | None = None


def meter_of(service: ServiceDefinition) -> Meter:
    if not isinstance(service, MeterService) or service.meter is None:
        raise TypeError(f"{service.name} is not the meter service")
    return service.meter


def build(deps: Dependencies) -> MeterService:
    meter = Meter(deps, store.tables.outbox, deps.settings(MeterSettings))

    def run_meter(stop: threading.Event) -> None:
        if deps.db is None:
            raise ConfigurationError("the meter needs the database (Dependencies.db is unset)")
        meter.run(stop)

    return MeterService(name=NAME, tables=store.tables, subscriptions=[], background=[run_meter], meter=meter)
