"""What services are built from: the adapters and each service's settings.

``services/<name>/service.py`` exposes ``build(deps: Dependencies) -> ServiceDefinition``. Settings are
read from the environment by default; tests and the demo hand in their own instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic_settings import BaseSettings

from shared.clock import Clock, utcnow

S = TypeVar("S", bound=BaseSettings)


@dataclass
class Dependencies:
    whmcs: Any
    solusvm: Any
    mailer: Any
    clock: Clock = utcnow
    # The process's database, for background tasks (the scheduler loop); the composition root sets it.
    db: Any = None
    overrides: dict[type, BaseSettings] = field(default_factory=dict)
    _loaded: dict[type, BaseSettings] = field(default_factory=dict, repr=False)

    def settings(self, settings_class: type[S]) -> S:
        """The given settings class, as overridden, or else as read from the environment once."""
        if settings_class in self.overrides:
            return self.overrides[settings_class]  # type: ignore[return-value]
        if settings_class not in self._loaded:
            self._loaded[settings_class] = settings_class()
        return self._loaded[settings_class]  # type: ignore[return-value]
