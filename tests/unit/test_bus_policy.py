"""The retry/park policy and topic matching, shared by both buses."""

from __future__ import annotations

import pytest

from shared.bus.messages import ATTEMPT_HEADER, PARKED_REASON_HEADER, REQUEUED_BY_HEADER
from shared.bus.parking import Selection, describe_parked, requeued_headers
from shared.bus.policy import next_step, parked_headers, retry_headers
from shared.bus.processing import Outcome
from shared.bus.topology import Naming, format_delay, topic_matches

DELAYS = [1.0, 10.0, 60.0, 600.0]


@pytest.mark.parametrize("attempt, delay", [(0, 1.0), (1, 10.0), (2, 60.0), (3, 600.0)])
def test_failures_walk_the_retry_delays_in_order(attempt: int, delay: float) -> None:
    step = next_step(Outcome("retry", "handler-error", "boom"), attempt, DELAYS)
    assert (step.action, step.delay) == ("retry", delay)


def test_after_the_last_delay_the_message_is_parked() -> None:
    step = next_step(Outcome("retry", "handler-error", "boom"), len(DELAYS), DELAYS)
    assert (step.action, step.reason) == ("park", "retries-exhausted")


def test_success_and_duplicates_are_acknowledged_and_poison_is_parked_at_once() -> None:
    assert next_step(Outcome("done"), 0, DELAYS).action == "ack"
    assert next_step(Outcome("duplicate"), 3, DELAYS).action == "ack"
    step = next_step(Outcome("park", "undecodable", "not JSON"), 0, DELAYS)
    assert (step.action, step.reason) == ("park", "undecodable")


@pytest.mark.parametrize(("wait", "delay"), [(0.5, 1.0), (1.0, 1.0), (42.0, 60.0), (599.0, 600.0), (3600.0, 600.0)])
def test_a_handler_that_waits_is_retried_after_the_wait_without_using_up_an_attempt(wait: float, delay: float) -> None:
    # Even on its last attempt: waiting is not failing, so it never exhausts the retries.
    step = next_step(Outcome("retry", "waiting", "not yet", wait=wait), len(DELAYS), DELAYS)
    assert (step.action, step.delay, step.counted) == ("retry", delay, False)
    assert retry_headers({ATTEMPT_HEADER: 2}, 2, step.counted)[ATTEMPT_HEADER] == 2


def test_retry_headers_count_attempts_and_drop_broker_bookkeeping() -> None:
    headers = retry_headers({"x-death": [{}], "x-delivery-count": 3, "traceparent": "abc"}, attempt=1)
    assert headers == {"traceparent": "abc", ATTEMPT_HEADER: 2}


def test_parked_headers_keep_the_original_headers_and_add_reason_and_error() -> None:
    outcome = Outcome("retry", "handler-error", "ValueError: boom")
    headers = parked_headers({"traceparent": "abc"}, "invoicer.create_invoice", outcome, "retries-exhausted", 3)
    assert headers["traceparent"] == "abc"
    assert headers[PARKED_REASON_HEADER] == "retries-exhausted"
    assert headers["x-postpay-parked-error"] == "ValueError: boom"
    assert headers[ATTEMPT_HEADER] == 4


def test_requeued_message_starts_afresh_and_says_who_sent_it_back() -> None:
    headers = requeued_headers(
        {PARKED_REASON_HEADER: "x", ATTEMPT_HEADER: 4, "traceparent": "abc"}, "ops@host", "fixed"
    )
    assert headers[ATTEMPT_HEADER] == 0
    assert headers[REQUEUED_BY_HEADER] == "ops@host"
    assert PARKED_REASON_HEADER not in headers
    assert headers["traceparent"] == "abc"


def test_a_message_parked_by_the_broker_itself_explains_why() -> None:
    parked = describe_parked("q.parked", 0, None, {"x-death": [{"reason": "delivery_limit"}]}, b"{}")
    assert parked.reason == "broker:delivery_limit"


def test_selection_needs_a_choice_and_matches_by_position_or_id() -> None:
    with pytest.raises(ValueError):
        Selection()
    parked = describe_parked("q.parked", 2, "abc", {}, b"not json")
    assert Selection(positions=frozenset({2})).matches(parked)
    assert Selection(message_ids=frozenset({"abc"})).matches(parked)
    assert not Selection(message_ids=frozenset({"other"})).matches(parked)
    assert Selection(everything=True).matches(parked)


@pytest.mark.parametrize(
    "pattern, key, expected",
    [
        ("UsageCollected", "UsageCollected", True),
        ("Usage*", "UsageCollected", False),
        ("#", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.#", "a", True),
        ("*.b", "a.b", True),
    ],
)
def test_topic_matching_follows_amqp(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_names_are_namespaced_and_retry_queues_named_by_delay() -> None:
    naming = Naming("ci-1")
    assert naming.exchange == "ci-1.postpay.events"
    assert naming.queue("invoicer.create_invoice") == "ci-1.invoicer.create_invoice"
    assert naming.retry_queue("invoicer.create_invoice", 10) == "ci-1.invoicer.create_invoice.retry.10s"
    assert naming.parking_lot("invoicer.create_invoice") == "ci-1.invoicer.create_invoice.parked"
    assert format_delay(0.25) == "250ms"
    assert Naming().exchange == "postpay.events"
