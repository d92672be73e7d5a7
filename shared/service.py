"""What a service is, to the kernel: a name, its tables, its inbox and outbox, its subscriptions.

Each ``services/<name>/service.py`` builds one of these from the adapters it needs; the kernel runs it
on whichever bus and database the process was given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import MetaData
from starlette.types import ASGIApp

from shared.bus.topology import Subscription
from shared.inbox import Inbox, inbox_table
from shared.outbox import Outbox, outbox_table


@dataclass
class ServiceTables:
    """A service's own metadata with its inbox and outbox tables already on it."""

    name: str
    metadata: MetaData = field(default_factory=MetaData)

    def __post_init__(self) -> None:
        self.inbox = Inbox(inbox_table(self.metadata, self.name))
        self.outbox = Outbox(outbox_table(self.metadata, self.name), self.name)


BackgroundTask = Callable[[threading.Event], None]


class CommitSignal:
    """Whom to tell that a service committed outbox rows outside its handlers (the signup web): the
    runtime connects its relay's ``wake`` here, so those events leave at once, not at the next poll."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    def connect(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def __call__(self) -> None:
        for listener in list(self._listeners):
            listener()


@dataclass
class ServiceDefinition:
    """``background`` tasks run beside the consumers (a scheduler loop, a web server) until the
    stop event is set; ``preflight`` checks run before a process runs this service (not when it is only
    built, as every process builds every service to know the topology), raising ``ConfigurationError``;
    ``outbox_committed`` is called by whatever commits outbox rows outside a handler (the runtime that
    relays this service's outbox listens); ``web_app`` builds the service's web face on a database
    (the process's own when none is given), for tests and previews that serve it without a port;
    ``migrations`` is where a definition kept outside ``services/`` keeps its migrations."""

    name: str
    tables: ServiceTables
    subscriptions: list[Subscription]
    background: list[BackgroundTask] = field(default_factory=list)
    preflight: list[Callable[[], None]] = field(default_factory=list)
    outbox_committed: CommitSignal | None = None
    web_app: Callable[..., ASGIApp] | None = None
    migrations: Path | None = None

    @property
    def metadata(self) -> MetaData:
        return self.tables.metadata

    @property
    def inbox(self) -> Inbox:
        return self.tables.inbox

    @property
    def outbox(self) -> Outbox:
        return self.tables.outbox
