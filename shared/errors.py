"""Errors the bus understands.

A handler raising ``PermanentError`` says: trying this message again cannot succeed until a person
changes something (configuration, upstream data). The bus parks it at once with the reason instead of
walking it through the retry queues. Any other exception is treated as transient and retried.
"""

from __future__ import annotations


class PermanentError(Exception):
    """Retrying cannot help; park the message with this reason."""


class ConfigurationError(PermanentError):
    """A setting is missing or wrong (e.g. no token price for a currency)."""
