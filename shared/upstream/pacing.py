"""How many calls one process has in flight to one upstream: found by watching the upstream, not set.

A WHMCS is PHP on MySQL: past some concurrency its latency climbs, then it answers 503 or times out.
How much it takes is not known in advance and changes with whatever else it serves, so each upstream
client paces itself by AIMD (the rule TCP uses to share a link, which lets several replicas that share
one upstream converge on fair shares without talking to each other):

* a call that comes back at the upstream's usual latency, while the limit was all in use, raises the
  limit (by a quarter per round trip in a first *slow start* from 2, by about one per round trip after);
  in slow start only an answer itself under 1.05× its usual latency does (the round that ends slow
  start is heard of a round trip late, while several replicas' growth runs on together);
* a 503/502/504 or 429, or a timeout, halves it; latency risen well above the usual (1.3×) cuts it to
  0.7 (the upstream is at its knee, still serving every call: from about 1.3 C the cut lands near C,
  where a halving would leave it part idle); once per round trip (calls sent before the last decrease
  cannot trigger another: their answers describe the old load);
* it never goes below 1 nor above the hard cap (``POSTPAY_WHMCS_MAX_IN_FLIGHT`` /
  ``POSTPAY_SOLUSVM_MAX_IN_FLIGHT``), when one is set.

"Usual latency" is the lowest seen recently per call label (a usage read and an invoice write differ).
"Well above" is judged once per round of answers (half as many as the limit), on the *fastest* answer
of the round over its label's usual latency: an upstream that queues slows every answer, while a pause
of this process (the GIL, a busy machine, a collection) slows only some, so the round's fastest answer
tells the two apart where an average would not. Slow start ends, without a decrease, at a smaller rise
(1.1×) seen in two rounds running (after one, growth holds): an upstream's knee is better approached
linearly, since past 2C a modelled WHMCS sheds requests, and a shed CreateInvoice is an outcome the
invoicer must wait to learn. A rise that small is also what a busy machine does to this process for a
moment, so until the knee is confirmed a later round back at the usual latency (under 1.05×) resumes
slow start; so does one after a cut for a rise in the first slow start, when the process's own
start-up is the likelier cause. Ended early at a third of C, linear growth took about C round trips to
get there: seconds of a part-idle upstream at every close (measured, docs/benchmarks.md).

Threads over the limit wait (nothing has been sent, so nothing is uncertain); a thread that waits
longer than ``queue_timeout`` gets ``UpstreamUnavailable``, which every caller already retries.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from shared.logging import get_logger
from shared.upstream.errors import UpstreamUnavailable

# Statuses that mean "too much for me now": shed by a proxy, throttled, or timed out upstream.
CONGESTION_STATUSES = frozenset({429, 502, 503, 504})
log = get_logger("postpay.upstream.pacing")


@dataclass(frozen=True)
class PacingPolicy:
    adaptive: bool = True  # False: a fixed limit, the hard cap (or none at all): the old behaviour
    initial: float = 2.0
    max_in_flight: int | None = None  # the hard cap; None: whatever the upstream takes
    # A round's fastest answer over its usual latency beyond which the limit is cut: 1.3, not higher, so
    # that three replicas each adding one per round trip, seen a round trip late, stay clear of 2C at C = 8.
    tolerance: float = 1.3
    slow_start_exit: float = 1.1  # ... and beyond which slow start ends (no decrease)
    slow_start_step: float = 0.25  # per call answered in time: the limit grows ×1.25 per round trip
    # In slow start an answer over this ratio does not grow the limit: it already shows a queue, and the
    # round that will say so comes a round trip late, while ×1.25 growth (three replicas' together) runs on.
    slow_start_growth_ceiling: float = 1.05
    slow_start_resume: float = 1.05  # a round back under this after slow start ended on a rise: resume it
    backoff: float = 0.5  # after a 503/429 or a timeout: the upstream is past its knee, refusing work
    latency_backoff: float = 0.7  # after a latency rise: at the knee, still serving everything
    # The usual latency is the lowest of the last one to two windows: long, or a standing queue would
    # become "usual"; a real change of the upstream's speed is learnt within two windows.
    floor_window_seconds: float = 60.0
    queue_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if not (0 < self.backoff < 1 and 0 < self.latency_backoff < 1):
            raise ValueError("backoff and latency_backoff must be in (0, 1)")
        if self.slow_start_growth_ceiling < 1:
            raise ValueError("slow_start_growth_ceiling must not be below 1")
        if self.tolerance <= 1 or self.slow_start_exit <= 1 or self.slow_start_resume > self.slow_start_exit:
            raise ValueError("tolerance and slow_start_exit must be above 1, slow_start_resume not above the exit")


@dataclass
class Slot:
    """One call's place in flight: when it went out and under which decrease it was sent."""

    label: str
    epoch: int
    busy: bool  # the limit was all used when it went out or came back: only then may it rise
    started: float
    outcome: str = "none"  # "answered" (latency counts), "congested", or "none" (says nothing about load)
    latency: float = 0.0

    def answered(self, latency: float) -> None:
        self.outcome, self.latency = "answered", latency

    def congested(self) -> None:
        self.outcome = "congested"


@dataclass
class _Floor:
    """The lowest latency of the current and of the previous window."""

    started: float
    current: float = math.inf
    previous: float = math.inf

    def update(self, latency: float, now: float, window: float) -> float:
        if now - self.started >= window:
            self.previous, self.current, self.started = self.current, math.inf, now
        self.current = min(self.current, latency)
        return min(self.current, self.previous)


@dataclass
class AdaptiveLimit:
    """The in-flight limit of one upstream in one process (thread-safe)."""

    upstream: str
    policy: PacingPolicy = field(default_factory=PacingPolicy)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        fixed = math.inf if self.policy.max_in_flight is None else float(self.policy.max_in_flight)
        self._limit = self._capped(self.policy.initial) if self.policy.adaptive else fixed
        self._ssthresh = math.inf
        self._in_flight = 0
        self._epoch = 0
        self._round_min = math.inf  # the fastest answer (over its usual latency) of the current round
        self._round_count = 0
        self._ratio: float | None = None  # the last finished round's
        self._previous_ratio = 1.0  # the one before it (1: no rise seen)
        self._tentative = False  # slow start ended on a latency rise, and no decrease has confirmed it since
        self._floors: dict[str, _Floor] = {}
        self.decreases = 0

    @property
    def limit(self) -> float:
        with self._cond:
            return self._limit

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    @property
    def slow_start(self) -> bool:
        with self._cond:
            return self._limit < self._ssthresh

    def acquire(self, label: str, timeout: float | None = None) -> Slot:
        """Wait for room under the limit, then count one call in flight."""
        wait = self.policy.queue_timeout if timeout is None else timeout
        with self._cond:
            if not self._cond.wait_for(lambda: self._in_flight + 1 <= self._limit, wait):
                raise UpstreamUnavailable(
                    f"{self.upstream}: no room for another call within {wait:.0f}s "
                    f"({self._in_flight} in flight, limit {self._limit:.1f})",
                    upstream=self.upstream,
                )
            self._in_flight += 1
            return Slot(label, self._epoch, busy=self._using_all(), started=self.clock())

    def release(self, slot: Slot) -> None:
        """Count the call out, and adapt the limit to what its answer says about the upstream's load."""
        with self._cond:
            slot.busy = slot.busy or self._using_all()
            self._in_flight -= 1
            if not self.policy.adaptive:
                pass
            elif slot.outcome == "congested":
                self._decrease(slot)
            elif slot.outcome == "answered":
                self._learn(slot)
            # Wake as many waiting threads as there is room for now, not all of them to find none.
            room = math.floor(min(self._limit, 1e6)) - self._in_flight
            if room > 0:
                self._cond.notify(room)

    @contextmanager
    def slot(self, label: str) -> Iterator[Slot]:
        held = self.acquire(label)
        try:
            yield held
        finally:
            self.release(held)

    def _learn(self, slot: Slot) -> None:
        now = self.clock()
        floor = self._floors.setdefault(slot.label, _Floor(now)).update(
            slot.latency, now, self.policy.floor_window_seconds
        )
        if slot.epoch != self._epoch:
            return  # sent before the last decrease: neither a new congestion signal nor a reason to grow
        ratio = slot.latency / floor if floor > 0 else 1.0
        self._round_min = min(self._round_min, ratio)
        self._round_count += 1
        if self._round_count >= max(2, math.floor(self._limit / 2)):
            self._end_round()
        if self._ratio is None:
            return  # the first round of this load is not over
        if self._ratio > self.policy.tolerance:
            self._decrease(slot)
        elif self._limit < self._ssthresh and self._ratio > self.policy.slow_start_exit:
            if self._previous_ratio <= self.policy.slow_start_exit:
                return  # one round over the knee: hold, and let the next round say whether it was noise
            self._ssthresh = self._limit  # the knee is near: from here on, grow linearly
            self._tentative = True
            log.info(
                "upstream pacing: slow start over",
                upstream=self.upstream,
                limit=round(self._limit, 1),
                latency_ratio=round(self._ratio, 2),
            )
        elif slot.busy:
            if self._limit < self._ssthresh:
                if ratio <= self.policy.slow_start_growth_ceiling:
                    self._limit = self._capped(self._limit + self.policy.slow_start_step)
            else:
                self._limit = self._capped(self._limit + 1 / self._limit)

    def _end_round(self) -> None:
        self._previous_ratio = 1.0 if self._ratio is None else self._ratio
        self._ratio, self._round_min, self._round_count = self._round_min, math.inf, 0
        if self._tentative and self._ratio < self.policy.slow_start_resume:
            # The rise that ended slow start is gone while more calls are out: it was this process
            # paused (a busy machine), not the upstream queueing, which would still show.
            self._ssthresh, self._tentative = math.inf, False

    def _decrease(self, slot: Slot) -> None:
        if slot.epoch != self._epoch:
            return  # this load was already answered by a decrease
        # At most one line per round trip, and only while the upstream is struggling.
        log.info(
            "upstream pacing: fewer calls in flight",
            upstream=self.upstream,
            call=slot.label,
            limit=round(self._limit, 1),
            in_flight=self._in_flight,
            reason="latency" if slot.outcome == "answered" else "overload",
            latency_ratio=None if self._ratio is None else round(self._ratio, 2),
        )
        by_latency = slot.outcome == "answered"
        # A rise in slow start, the limit never cut before, may be this process starting up: if a later
        # round shows no queue, slow start resumes (a 503, a timeout or a rise after slow start are real).
        tentative = by_latency and self._limit < self._ssthresh and self.decreases == 0
        self._limit = self._capped(self._limit * (self.policy.latency_backoff if by_latency else self.policy.backoff))
        self._ssthresh, self._tentative = self._limit, tentative
        self._epoch += 1
        self._ratio, self._round_min, self._round_count = None, math.inf, 0  # the new load's answers decide next
        self._previous_ratio = 1.0
        self.decreases += 1

    def _using_all(self) -> bool:
        """Whether the calls in flight fill the limit. A limit that grew while fewer calls were out would
        be a promise never tested: the moment the threads all call at once it would overshoot."""
        return self._in_flight + 1 > self._limit

    def _capped(self, value: float) -> float:
        cap = self.policy.max_in_flight
        return max(1.0, value if cap is None else min(float(cap), value))
