"""The scheduler: no subscriptions, one background loop that closes billing periods and asks, once a
day, for every customer's standing to be checked."""

from __future__ import annotations

import threading

from services.scheduler import store
from services.scheduler.closing import Scheduler
from services.scheduler.settings import SchedulerSettings
from shared.dependencies import Dependencies
from shared.errors import ConfigurationError
from shared.service import ServiceDefinition

NAME = "scheduler"


def build(deps: Dependencies) -> ServiceDefinition:
    settings = deps.settings(SchedulerSettings)

    def run_scheduler(stop: threading.Event) -> None:
        # The database is looked up when the loop starts: the composition root sets it after building.
        if deps.db is None:
            raise ConfigurationError("the scheduler needs the database (Dependencies.db is unset)")
        Scheduler(deps.db, store.tables.outbox, settings, deps.clock).run(stop)

    return ServiceDefinition(name=NAME, tables=store.tables, subscriptions=[], background=[run_scheduler])
