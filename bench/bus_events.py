"""The event both sides of the bus benchmark carry: postpay's path publishes it through the outbox and
relay, the raw paths send the very messages postpay's relay would send for it."""

from __future__ import annotations

from typing import Any

from shared.events.base import Event, new_envelope


class BenchTick(Event):
    producers = ("bench",)

    n: int


def bench_envelopes(events: int) -> list[Any]:
    return [new_envelope(BenchTick(n=n), producer="bench") for n in range(events)]
