"""The per-upstream in-flight limit (shared/upstream/pacing.py): deterministic, on a fake clock.

Latencies are handed to the limiter as numbers, so nothing here depends on this machine's speed; the
last tests run the limiter against a modelled upstream (capacity C, latency base × n / C past C, 503
past 2C) in simulated time, alone and as three replicas sharing it.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from datetime import date
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from shared.upstream.errors import UpstreamOutcomeUnknown, UpstreamUnavailable
from shared.upstream.pacing import AdaptiveLimit, PacingPolicy
from shared.upstream.retries import RetryPolicy
from shared.upstream.whmcs import WhmcsClient
from shared.upstream.whmcs_models import InvoiceLine


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(**policy: object) -> AdaptiveLimit:
    return AdaptiveLimit("whmcs", PacingPolicy(**policy), clock=FakeClock())  # type: ignore[arg-type]


def full_round(limit: AdaptiveLimit, latency: float, label: str = "CreateInvoice") -> int:
    """As many answers as the limit allows calls, with callers always waiting for a place (each answer
    is followed by the next call at once); returns how many answers that was."""
    out = []
    while limit.in_flight + 1 <= limit.limit:
        out.append(limit.acquire(label, timeout=0))
    answers = len(out)
    for _ in range(answers):
        slot = out.pop(0)
        slot.answered(latency)
        limit.release(slot)
        while limit.in_flight + 1 <= limit.limit:
            out.append(limit.acquire(label, timeout=0))
    for slot in out:  # the calls of the next round trip, not answered here: nothing learnt from them
        limit.release(slot)
    return answers


def congest(limit: AdaptiveLimit, slot_count: int = 1) -> None:
    slots = [limit.acquire("CreateInvoice", timeout=0) for _ in range(slot_count)]
    for slot in slots:
        slot.congested()
        limit.release(slot)


def test_the_limit_grows_while_latency_stays_at_its_usual_level() -> None:
    limit = limiter(initial=4)
    sent = [full_round(limit, 0.25) for _ in range(10)]
    assert sent[0] == 4
    assert sent == sorted(sent) and sent[-1] > 16  # slow start: ×1.25 per round trip
    assert limit.decreases == 0


def test_after_slow_start_it_grows_about_one_per_round_trip() -> None:
    limit = limiter(initial=16)
    full_round(limit, 0.25)
    congest(limit)  # 16+ → half, and slow start is over
    start = limit.limit
    for _ in range(5):
        full_round(limit, 0.25)
    assert start + 3 <= limit.limit <= start + 5.5  # the first round after a decrease only observes


def test_a_503_or_a_timeout_halves_it_once_per_round_trip() -> None:
    limit = limiter(initial=16)
    slots = [limit.acquire("CreateInvoice", timeout=0) for _ in range(16)]
    for slot in slots:  # sixteen 503s from one overloaded moment: one decrease, not sixteen
        slot.congested()
        limit.release(slot)
    assert limit.limit == 8
    congest(limit)  # a call sent after that decrease: the load is still too much
    assert limit.limit == 4
    assert limit.decreases == 2


def test_a_latency_rise_cuts_it_by_less_than_an_overload() -> None:
    """A latency rise means the upstream is at its knee, still serving every call: back off to 0.7, so
    that from about 1.3 C the limit lands near C, not at 0.65 C with the upstream part idle."""
    limit = limiter(initial=8)
    full_round(limit, 0.25)
    grown = limit.limit
    for _ in range(3):
        full_round(limit, 0.75)  # three times the usual latency: the upstream is queueing
        if limit.decreases:
            break
    assert limit.decreases == 1
    assert limit.limit == pytest.approx(grown * 0.7, abs=1)


def answer(limit: AdaptiveLimit, latency: float, count: int) -> None:
    """``count`` answers, each followed by the next call at once."""
    for _ in range(count):
        slot = limit.acquire("CreateInvoice", timeout=0)
        slot.answered(latency)
        limit.release(slot)


def answer_busy(limit: AdaptiveLimit, latency: float, count: int) -> None:
    """``count`` answers with the limit all in use, each followed by the next call at once."""
    out = [limit.acquire("CreateInvoice", timeout=0) for _ in range(math.floor(limit.limit))]
    for _ in range(count):
        slot = out.pop(0)
        slot.answered(latency)
        limit.release(slot)
        while limit.in_flight + 1 <= limit.limit:
            out.append(limit.acquire("CreateInvoice", timeout=0))
    for slot in out:
        limit.release(slot)


def test_one_round_over_the_knee_does_not_end_slow_start() -> None:
    limit = limiter(initial=8)
    full_round(limit, 0.25)
    answer(limit, 0.30, int(limit.limit // 2))  # 1.2× for one round: a pause of this process as often as the knee
    assert limit.slow_start
    full_round(limit, 0.30)
    full_round(limit, 0.30)  # still 1.2× a round later: the upstream is queueing
    assert not limit.slow_start
    assert limit.decreases == 0


def test_slow_start_resumes_when_the_rise_that_ended_it_is_gone() -> None:
    limit = limiter(initial=8)
    full_round(limit, 0.25)
    for _ in range(3):
        full_round(limit, 0.30)
    assert not limit.slow_start
    full_round(limit, 0.25)  # more calls out than when it ended, and no rise: it was no queue
    assert limit.slow_start


def test_a_rise_in_the_first_slow_start_cuts_it_but_slow_start_resumes_without_a_queue() -> None:
    """A process starting up answers its own first calls late: that cut is not believed for good."""
    limit = limiter(initial=4)
    full_round(limit, 0.25)
    while not limit.decreases:
        full_round(limit, 0.45)
    assert limit.decreases == 1 and not limit.slow_start
    full_round(limit, 0.25)  # the first round of the new load only observes
    full_round(limit, 0.25)
    assert limit.slow_start


def test_slow_start_does_not_grow_on_answers_that_already_show_a_queue() -> None:
    """The round that ends slow start is heard of a round trip late; meanwhile an answer that is itself
    over 1.05× its usual latency adds nothing (three replicas' ×1.25 growth ran past 2C without this)."""
    limit = limiter(initial=8)
    full_round(limit, 0.25)
    grown = limit.limit
    answer_busy(limit, 0.28, int(grown // 2) - 1)  # 1.12×: not yet a finished round over the knee
    assert limit.slow_start and limit.limit == grown
    answer_busy(limit, 0.255, 2)  # 1.02×: in time
    assert limit.limit == grown + 2 * 0.25


def test_after_a_decrease_slow_start_does_not_resume() -> None:
    limit = limiter(initial=16)
    full_round(limit, 0.25)
    congest(limit)
    for _ in range(3):
        full_round(limit, 0.25)
    assert not limit.slow_start  # AIMD from here: additive growth is what makes replicas converge


def test_one_slow_answer_alone_decides_nothing() -> None:
    limit = limiter(initial=8)
    full_round(limit, 0.25)
    slots = [limit.acquire("CreateInvoice", timeout=0) for _ in range(8)]
    slots[0].answered(0.5)  # twice the usual: a pause, a retransmit
    for slot in slots[1:]:
        slot.answered(0.25)
    for slot in slots:
        limit.release(slot)
    assert limit.decreases == 0


def test_latency_is_judged_against_each_calls_own_usual_level() -> None:
    limit = limiter(initial=8)
    full_round(limit, 0.05, label="GetClientsDetails")
    for _ in range(4):
        full_round(limit, 0.05, label="GetClientsDetails")
        full_round(limit, 0.40, label="CreateInvoice")  # slower by nature, not because of load
    assert limit.decreases == 0


def test_it_respects_the_hard_cap() -> None:
    limit = limiter(initial=4, max_in_flight=6)
    for _ in range(10):
        full_round(limit, 0.25)
    assert limit.limit == 6
    held = [limit.acquire("GetClientsDetails", timeout=0) for _ in range(6)]
    with pytest.raises(UpstreamUnavailable):
        limit.acquire("GetClientsDetails", timeout=0)
    for slot in held:
        limit.release(slot)


def test_it_never_goes_below_one() -> None:
    limit = limiter(initial=4)
    for _ in range(10):
        congest(limit)
    assert limit.limit == 1
    slot = limit.acquire("CreateInvoice", timeout=0)  # one call at a time still goes out
    limit.release(slot)


def test_it_does_not_grow_while_the_limit_is_not_used() -> None:
    limit = limiter(initial=8)
    for _ in range(50):  # one call at a time against a limit of 8: nothing learnt about more
        slot = limit.acquire("CreateInvoice", timeout=0)
        slot.answered(0.25)
        limit.release(slot)
    assert limit.limit == 8


def test_a_fixed_limit_does_not_adapt() -> None:
    limit = limiter(adaptive=False, max_in_flight=5)
    congest(limit)
    full_round(limit, 10.0)
    assert limit.limit == 5
    assert limiter(adaptive=False).limit == float("inf")


def test_a_thread_over_the_limit_waits_for_a_place() -> None:
    limit = limiter(initial=1)
    first = limit.acquire("CreateInvoice", timeout=0)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(limit.acquire("CreateInvoice", timeout=10)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and not got
    limit.release(first)
    waiter.join(10)
    assert len(got) == 1 and limit.in_flight == 1


# -- against a modelled upstream ----------------------------------------------------------------------


def simulate(
    replicas: int,
    capacity: int,
    *,
    seconds: float = 120.0,
    base: float = 0.25,
    threads: int = 64,
    policy: PacingPolicy | None = None,
    stagger: float = 0.0,
) -> dict[str, object]:
    """Replicas with ``threads`` callers each against one upstream of capacity C, in simulated time;
    replica i starts calling ``i × stagger`` seconds after the first."""
    clock = FakeClock()
    limits = [AdaptiveLimit("whmcs", policy or PacingPolicy(), clock=clock) for _ in range(replicas)]
    busy = [0] * replicas  # callers of each replica with a call out
    in_flight, answered, shed, peak = 0, 0, 0, 0
    pending: list[tuple[float, int, int, object, bool]] = []
    order = itertools.count()
    totals: list[tuple[float, int]] = []
    shares: list[list[float]] = [[] for _ in range(replicas)]
    while clock.now < seconds:
        for index, limit in enumerate(limits):
            while clock.now >= index * stagger and busy[index] < threads and limit.in_flight + 1 <= limit.limit:
                slot = limit.acquire("CreateInvoice", timeout=0)
                busy[index] += 1
                if in_flight + 1 > 2 * capacity:
                    shed += 1
                    heapq.heappush(pending, (clock.now + 0.02, next(order), index, slot, True))
                    continue
                in_flight += 1
                peak = max(peak, in_flight)
                latency = base * max(1.0, in_flight / capacity)
                heapq.heappush(pending, (clock.now + latency, next(order), index, slot, False))
        done_at, _, index, slot, was_shed = heapq.heappop(pending)
        clock.now = done_at
        busy[index] -= 1
        if was_shed:
            slot.congested()  # type: ignore[attr-defined]
        else:
            in_flight -= 1
            answered += 1
            slot.answered(done_at - slot.started)  # type: ignore[attr-defined]
        limits[index].release(slot)  # type: ignore[arg-type]
        if clock.now > seconds / 2:
            totals.append((clock.now, in_flight))
            for share, limit in zip(shares, limits):
                share.append(limit.in_flight)
    late = [n for _, n in totals]
    return {
        "answered": answered,
        "shed": shed,
        "mean_in_flight": sum(late) / len(late),
        "mean_shares": [sum(s) / len(s) for s in shares],
        "rate": answered / seconds,
        "peak": peak,
    }


@pytest.mark.parametrize("capacity", [8, 32])
def test_one_process_settles_near_the_upstreams_capacity(capacity: int) -> None:
    figures = simulate(1, capacity)
    allowed = capacity / 0.25  # calls per second the upstream can answer
    assert figures["rate"] >= 0.85 * allowed, figures
    assert figures["shed"] <= 0.001 * figures["answered"], figures  # type: ignore[operator]


@pytest.mark.parametrize("capacity", [8, 32])
def test_three_replicas_sharing_one_upstream_converge_on_fair_shares(capacity: int) -> None:
    figures = simulate(3, capacity)
    allowed = capacity / 0.25
    assert figures["rate"] >= 0.85 * allowed, figures
    assert figures["shed"] <= 0.001 * figures["answered"], figures  # type: ignore[operator]
    shares = figures["mean_shares"]
    assert max(shares) <= 2 * min(shares), figures  # type: ignore[type-var, operator]


@pytest.mark.parametrize("capacity", [8, 32])
@pytest.mark.parametrize("stagger", [0.0, 1.0])
def test_three_replicas_with_threads_to_spare_stay_clear_of_2c(capacity: int, stagger: float) -> None:
    """Three processes with more threads than 2C each (nothing but pacing holds them), starting together
    or a second apart: their slow starts and their growth at the knee together must not reach 2C, where
    a shed CreateInvoice waits out the invoicer's quiet time, and WHMCS must still be kept full."""
    figures = simulate(3, capacity, threads=4 * capacity, stagger=stagger)
    assert figures["shed"] == 0, figures
    assert figures["peak"] <= 1.5 * capacity + 3, figures  # type: ignore[operator]
    assert figures["rate"] >= 0.95 * capacity / 0.25, figures  # type: ignore[operator]


def test_without_pacing_the_same_callers_overload_it() -> None:
    """The contrast: three replicas of 16 callers each, a fixed limit, against C = 8: past 2C, shed."""
    figures = simulate(3, 8, seconds=20.0, threads=16, policy=PacingPolicy(adaptive=False))
    assert figures["shed"] > figures["answered"], figures  # type: ignore[operator]


# -- through the WHMCS client --------------------------------------------------------------------------


def _client(reply: httpx.MockTransport, limit: AdaptiveLimit) -> WhmcsClient:
    return WhmcsClient(
        "http://whmcs.test",
        SecretStr("id"),
        SecretStr("secret"),
        retry=RetryPolicy.no_retries(),
        http=httpx.Client(transport=reply),
        pacing=limit,
    )


def test_a_503_from_whmcs_halves_the_clients_limit_and_a_write_stays_uncertain() -> None:
    limit = limiter(initial=8)
    client = _client(httpx.MockTransport(lambda request: httpx.Response(503, text="<html>busy</html>")), limit)
    with pytest.raises(UpstreamOutcomeUnknown):
        client.create_invoice(
            1,
            [InvoiceLine(description="x", amount=Decimal("1.00"))],
            date=date(2026, 12, 1),
            due_date=date(2026, 12, 15),
            notes="run key",
            send_invoice=False,
            payment_method=None,
        )
    assert limit.limit == 4 and limit.in_flight == 0


def test_a_read_timeout_halves_it_too() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    limit = limiter(initial=8)
    with pytest.raises(UpstreamUnavailable):
        _client(httpx.MockTransport(hang), limit).get_client(1)
    assert limit.limit == 4 and limit.in_flight == 0


def test_a_call_that_finds_no_place_is_not_sent() -> None:
    sent: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"result": "success"})

    limit = AdaptiveLimit("whmcs", PacingPolicy(initial=1, queue_timeout=0.05), clock=FakeClock())
    held = limit.acquire("GetClientsDetails", timeout=0)
    with pytest.raises(UpstreamUnavailable):
        _client(httpx.MockTransport(reply), limit).get_client(1)
    assert sent == []
    limit.release(held)
