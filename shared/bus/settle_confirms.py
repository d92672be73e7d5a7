"""Settling a delivery that is not acknowledged outright: its retry or parking copy must be confirmed by
the broker before the original is acknowledged, or nothing is."""

from __future__ import annotations

from typing import Any

import amqp


class SettleConfirms:
    """Publisher confirms of the settle channel, by publish sequence number, so a batch of retry and
    parking copies is published at once and confirmed in one wait instead of one round trip each."""

    def __init__(self, channel: Any) -> None:
        self.next_sequence = 1
        self.pending: set[int] = set()
        self.refused: list[str] = []
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)

    def sent(self) -> None:
        self.pending.add(self.next_sequence)
        self.next_sequence += 1

    def _settle(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self.pending = {tag for tag in self.pending if tag > delivery_tag}
        else:
            self.pending.discard(delivery_tag)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)
        self.refused.append("the broker refused a retry or parking copy")

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: amqp.Message) -> None:
        self.refused.append(f"no queue {routing_key} for a retry or parking copy")


class SettleFailed(RuntimeError):
    """A retry or parking copy was not confirmed: nothing is acknowledged, the broker redelivers."""
