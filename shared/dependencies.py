"""What services are built from: the adapters and each service's settings.

``services/<name>/service.py`` exposes ``build(deps: Dependencies) -> ServiceDefinition``. Settings are
read from the environment by default; tests and the demo hand in their own instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, cast

from pydantic_settings import BaseSettings

from shared.clock import utcnow
from shared.db import Database
from shared.ports import Clock, Mailer, SolusVM, Whmcs

S = TypeVar("S", bound=BaseSettings)


@dataclass
class Dependencies:
    """The ports (``shared.ports``) a service's handlers are given, and its settings.

    A process that does not run a service still builds it (to know the topology), so the ports a
    command never calls may be stand-ins that fail when called."""

    whmcs: Whmcs
    solusvm: SolusVM
    mailer: Mailer
    clock: Clock = utcnow
    # The process's database, for background tasks (the scheduler loop); the composition root sets it.
    db: Database | None = None
    overrides: dict[type, BaseSettings] = field(default_factory=dict)
    _loaded: dict[type, BaseSettings] = field(default_factory=dict, repr=False)

    def settings(self, settings_class: type[S]) -> S:
        """The given settings class, as overridden, or else as read from the environment once."""
        if settings_class in self.overrides:
            return cast(S, self.overrides[settings_class])  # keyed by its own class
        if settings_class not in self._loaded:
            self._loaded[settings_class] = settings_class()
        return cast(S, self._loaded[settings_class])
