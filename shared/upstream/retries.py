"""How hard an upstream client tries: only transient failures are retried, with jittered exponential
backoff inside a total deadline, and a server's ``Retry-After`` is honoured. A write whose outcome is
unknown is never retried here: the client looks the object up first (see each client's create methods).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from shared.upstream.errors import UpstreamError, UpstreamOutcomeUnknown, UpstreamRateLimited

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a client tries before it gives the failure to its caller (and so to the bus)."""

    max_attempts: int = 5
    deadline_seconds: float = 20.0
    initial_backoff: float = 0.1
    max_backoff: float = 3.0
    max_retry_after: float = 15.0

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        return cls(max_attempts=1)


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and exc.transient and not isinstance(exc, UpstreamOutcomeUnknown)


def with_retries(policy: RetryPolicy, call: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``call`` until it succeeds, fails for good, or the policy's attempts or deadline run out.

    The first attempt is a plain call: it usually succeeds, and a tenacity ``Retrying`` with its call
    state built for every upstream call cost more CPU than that attempt (~11 % of the invoicer's CPU
    in a month close's profile). Only a retryable failure builds one, which then takes that failure as
    its own first attempt: the policy, attempt count and deadline are tenacity's, as before."""
    started = time.monotonic()
    try:
        return call()
    except BaseException as exc:
        if not is_retryable(exc):
            raise
        first_failure = exc
    return _retrying(policy, started, sleep)(_after(first_failure, call))


def _after(failure: BaseException, call: Callable[[], T]) -> Callable[[], T]:
    """``call``, except that its first attempt is the ``failure`` already met."""
    pending = [failure]

    def attempt() -> T:
        if pending:
            raise pending.pop()
        return call()

    return attempt


def _retrying(policy: RetryPolicy, started: float, sleep: Callable[[float], None]) -> Retrying:
    backoff = wait_random_exponential(multiplier=policy.initial_backoff, max=policy.max_backoff)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, UpstreamRateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, policy.max_retry_after)
        return backoff(state)

    # The deadline counts from the first attempt, made before this Retrying began.
    remaining = policy.deadline_seconds - (time.monotonic() - started)
    return Retrying(
        retry=retry_if_exception(is_retryable),
        stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(remaining),
        wait=wait,
        sleep=sleep,
        reraise=True,
    )
