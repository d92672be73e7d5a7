"""structlog set-up shared by every postpay process.

Logs are JSON lines on stderr. Context such as the event id and correlation id is bound with
``bind_contextvars`` by the bus while a message is handled, so every line a handler writes carries it.
A redaction processor runs last-but-one: whatever a caller passes, a value under a secret-looking key
never reaches the output.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

SECRET_KEY_PATTERN = re.compile(
    r"(pass(word)?|passwd|secret|token|authorization|api[_-]?key|credential|cookie|signature|"
    r"hmac|accesskey|password2)",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


# Values of these exact types hold nothing to redact: the common case of a log line, kept cheap
# because every handled event and upstream call writes one.
_PLAIN = frozenset({str, int, float, bool, type(None)})


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    return SECRET_KEY_PATTERN.search(key) is not None


def redact(value: Any) -> Any:
    """Return ``value`` with every secret-looking mapping key's value replaced."""
    if isinstance(value, dict):
        return {
            key: (
                REDACTED
                if isinstance(key, str) and _is_secret_key(key)
                else item
                if type(item) in _PLAIN
                else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact(item) for item in value)
    if hasattr(value, "get_secret_value"):
        return REDACTED
    return value


# Keys already found not secret-looking: the keys of log calls and bound context are a small fixed set
# in the code, and a set look-up per key is a fraction of a call through the pattern's cache. Bounded,
# so that a caller logging under generated keys cannot grow it without end.
_ordinary_keys: set[str] = set()
_MAX_ORDINARY_KEYS = 4096


def _redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    # The common line (plain values under ordinary keys) goes on as it is, without a copy.
    ordinary = _ordinary_keys
    for key, item in event_dict.items():
        if key not in ordinary:
            if type(key) is not str or _is_secret_key(key):
                break
            if len(ordinary) < _MAX_ORDINARY_KEYS:
                ordinary.add(key)
        if type(item) not in _PLAIN:
            break
    else:
        return event_dict
    redacted: Mapping[str, Any] = redact(event_dict)
    return redacted


_configured = False
# Bumped by every configure_logging: loggers handed out by get_logger bind again after it.
_generation = 0


class _Logger:
    """What ``get_logger`` returns: structlog's lazy proxy, bound once per configuration.

    The proxy structlog hands out builds a new bound logger (and a new ``PrintLogger``) on every call
    (``cache_logger_on_first_use`` would keep the first forever, across ``configure_logging`` calls);
    this keeps the bound one until the next ``configure_logging``. ``structlog.testing.capture_logs``
    swaps the processors inside the same list, which a bound logger shares, so it still sees them. A
    level that is filtered out costs a method lookup and a call that does nothing."""

    __slots__ = ("_bound", "_generation", "_proxy")

    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy
        self._bound: Any = None
        self._generation = -1

    def _logger(self) -> Any:
        if self._generation != _generation:
            self._bound, self._generation = self._proxy.bind(), _generation
        return self._bound

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger(), name)


def configure_logging(level: str = "INFO", *, stream: Any = None, json: bool = True) -> None:
    """Configure structlog (and the stdlib root logger) once per process."""
    global _configured, _generation
    log_level = getattr(logging, level.upper(), logging.INFO)
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(log_level),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(log_level, logging.WARNING), stream=stream or sys.stderr)
    _configured = True
    _generation += 1


def get_logger(name: str | None = None) -> Any:
    if not _configured:
        configure_logging()
    return _Logger(structlog.get_logger(name) if name else structlog.get_logger())
