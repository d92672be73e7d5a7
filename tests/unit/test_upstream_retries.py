"""``with_retries``: tenacity's policy, with a plain first attempt (a Retrying is built only after a retryable failure)."""

from __future__ import annotations

import pytest

from shared.upstream.errors import UpstreamOutcomeUnknown, UpstreamRateLimited, UpstreamUnavailable
from shared.upstream.retries import RetryPolicy, with_retries


class Failing:
    def __init__(self, *errors: BaseException, result: str = "ok") -> None:
        self.errors = list(errors)
        self.calls = 0
        self.result = result

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def transient() -> UpstreamUnavailable:
    return UpstreamUnavailable("down", upstream="test")


def test_a_success_is_returned_at_once() -> None:
    call, slept = Failing(), []
    assert with_retries(RetryPolicy(), call, sleep=slept.append) == "ok"
    assert call.calls == 1 and slept == []


def test_transient_failures_are_retried_with_capped_jittered_backoff() -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.1, max_backoff=0.25)
    call, slept = Failing(transient(), transient(), transient()), []
    assert with_retries(policy, call, sleep=slept.append) == "ok"
    assert call.calls == 4
    for ceiling, wait in zip((0.1, 0.2, 0.25), slept, strict=True):
        assert 0 <= wait <= ceiling


def test_the_last_failure_is_raised_as_it_was_after_max_attempts() -> None:
    errors = [transient() for _ in range(3)]
    call, slept = Failing(*errors), []
    with pytest.raises(UpstreamUnavailable) as caught:
        with_retries(RetryPolicy(max_attempts=3, initial_backoff=0), call, sleep=slept.append)
    assert caught.value is errors[-1] and call.calls == 3 and len(slept) == 2


@pytest.mark.parametrize(
    "error",
    [UpstreamOutcomeUnknown("lost", upstream="test"), ValueError("a bug"), KeyboardInterrupt()],
)
def test_what_is_not_transient_is_raised_at_once(error: BaseException) -> None:
    call, slept = Failing(error), []
    with pytest.raises(type(error)):
        with_retries(RetryPolicy(), call, sleep=slept.append)
    assert call.calls == 1 and slept == []


def test_retry_after_is_honoured_up_to_its_cap() -> None:
    limited = [UpstreamRateLimited("slow down", upstream="test", retry_after=s) for s in (2.0, 60.0)]
    call, slept = Failing(*limited), []
    policy = RetryPolicy(max_attempts=5, deadline_seconds=100.0, max_retry_after=15.0)
    assert with_retries(policy, call, sleep=slept.append) == "ok"
    assert slept == [2.0, 15.0]


def test_no_wait_that_would_end_past_the_deadline() -> None:
    call, slept = Failing(UpstreamRateLimited("slow down", upstream="test", retry_after=5.0)), []
    with pytest.raises(UpstreamRateLimited):
        with_retries(RetryPolicy(deadline_seconds=5.0), call, sleep=slept.append)
    assert call.calls == 1 and slept == []
