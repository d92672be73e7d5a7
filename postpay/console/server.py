"""Serving the console: from a running system (``postpay run console``, ``all``, the demo) with uvicorn."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import uvicorn

from postpay.console.app import create_app
from postpay.console.settings import ConsoleSettings
from postpay.console.web import Console
from services.invoicer.public import InvoicerSettings
from services.scheduler.public import SchedulerSettings
from shared.forwarded import trusted_networks
from shared.logging import get_logger

log = get_logger("postpay.console")


def console_for(system: Any, settings: ConsoleSettings | None = None) -> Console:
    """The console over a system's database, bus and upstream clients."""
    deps = system.deps
    every = [s for service in system.services for s in service.subscriptions]
    declared = getattr(system.bus, "subscriptions", None)
    if declared is not None:  # RabbitMQ's parking lots are found through the subscriptions it knows
        known = {s.queue for s in declared}
        declared.extend(s for s in every if s.queue not in known)
    return Console(
        db=system.db,
        bus=system.bus,
        whmcs=deps.whmcs,
        solusvm=deps.solusvm,
        settings=settings or ConsoleSettings(),
        clock=deps.clock,
        timezone=deps.settings(SchedulerSettings).billing_timezone,
        invoicer_settings=deps.settings(InvoicerSettings),
        queues=frozenset(s.queue for s in every),
    )


def uvicorn_config(console: Console) -> uvicorn.Config:
    """The console's server: X-Forwarded-For is read only when proxies are named, and only theirs."""
    settings = console.settings
    proxies = [str(network) for network in trusted_networks(settings.console_forwarded_allow_ips)]
    return uvicorn.Config(
        create_app(console),
        host=settings.console_host,
        port=settings.console_port,
        log_config=None,
        access_log=False,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        server_header=False,
    )


def serve(console: Console) -> Callable[[threading.Event], None]:
    """A background task: serve the console until the stop event is set."""
    settings = console.settings

    def run(stop: threading.Event) -> None:
        server = uvicorn.Server(uvicorn_config(console))
        threading.Thread(target=lambda: (stop.wait(), setattr(server, "should_exit", True)), daemon=True).start()
        log.info("console serving", host=settings.console_host, port=settings.console_port)
        server.run()
        log.info("console stopped")

    return run
