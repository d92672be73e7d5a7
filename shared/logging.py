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


def _redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    redacted: Mapping[str, Any] = redact(event_dict)
    return redacted


_configured = False


def configure_logging(level: str = "INFO", *, stream: Any = None, json: bool = True) -> None:
    """Configure structlog (and the stdlib root logger) once per process."""
    global _configured
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


def get_logger(name: str | None = None) -> Any:
    if not _configured:
        configure_logging()
    return structlog.get_logger(name) if name else structlog.get_logger()
