"""Errors the bus understands.

A handler raising ``PermanentError`` says: trying this message again cannot succeed until a person
changes something (configuration, upstream data). The bus parks it at once with the reason instead of
walking it through the retry queues. A handler raising ``RetryLater`` says: this is not a failure, the
work must wait; the bus brings the message back after at least that long without counting an attempt.
Any other exception is treated as transient and retried.
"""

from __future__ import annotations


class PermanentError(Exception):
    """Retrying cannot help; park the message with this reason."""


class ConfigurationError(PermanentError):
    """A setting is missing or wrong (e.g. no token price for a currency)."""


class RetryLater(Exception):
    """Not yet: deliver this message again after at least ``seconds`` (not counted as a failed attempt)."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = max(float(seconds), 0.0)
