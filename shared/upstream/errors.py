"""Typed failures of the upstream products (SolusVM 2, WHMCS).

Handlers branch on these classes, never on HTTP status codes or message wording. ``transient`` tells
the retry policy (and the bus) whether trying again can help.
"""

from __future__ import annotations

from shared.errors import PermanentError


class UpstreamError(Exception):
    """Base class: something went wrong talking to an upstream product."""

    transient = False

    def __init__(self, message: str, *, upstream: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.upstream = upstream
        self.status = status


class UpstreamValidationError(UpstreamError, PermanentError):
    """The upstream refused the request as invalid (SolusVM 422, WHMCS ``result: error``)."""

    def __init__(
        self,
        message: str,
        *,
        upstream: str = "",
        status: int | None = None,
        errors: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message, upstream=upstream, status=status)
        self.errors = errors or {}


class UpstreamNotFound(UpstreamError):
    """The object asked for does not exist."""


class UpstreamAuthError(UpstreamError):
    """Credentials, permission or IP allow-list refused (401/403).

    Not transient for a single call, but an operator can fix it: the bus retries it with its long
    delays and parks it in the end, so requeueing after the fix completes the work.
    """


class UpstreamRateLimited(UpstreamError):
    """429: slow down. ``retry_after`` is the server's hint in seconds, when it gave one."""

    transient = True

    def __init__(
        self, message: str, *, upstream: str = "", status: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, upstream=upstream, status=status)
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamError):
    """Connect error, timeout, 5xx or a page that is not the API's answer: try again later."""

    transient = True


class UpstreamOutcomeUnknown(UpstreamUnavailable):
    """A write was sent but its outcome is unknown (timeout, dropped connection, 5xx after sending).

    The object may exist now. Callers must look it up before creating it again.
    """
