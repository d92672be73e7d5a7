"""The parking lot on RabbitMQ.

Browsing takes messages with ``basic.get`` without acknowledging them and closes the channel, which
returns them all to the queue. Requeue and purge walk the queue the same way and acknowledge only the
selected messages (a requeued copy is confirmed in its queue first).

A quorum queue takes returned messages back asynchronously, after the channel has closed: a walk waits
until they are counted as ready again, so the next walk (an operator's purge right after a listing)
meets every message at the position the listing showed.
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import amqp

from shared.bus.amqp_wire import CONNECTION_ERRORS, body_bytes
from shared.bus.identity import published_by
from shared.bus.messages import PUBLISHED_BY_HEADER, REQUEUE_WALK_HEADER, ParkedMessage
from shared.bus.parking import (
    ParkingLot,
    ParkingLotMissing,
    Selection,
    describe_parked,
    requeued_headers,
)
from shared.events.base import OPERATOR

if TYPE_CHECKING:
    from shared.bus.rabbit import RabbitBus

RETURN_WAIT_SECONDS = 5.0


class RabbitParkingLot(ParkingLot):
    def __init__(self, bus: RabbitBus) -> None:
        self.bus = bus

    @contextmanager
    def _channel(self) -> Iterator[Any]:
        with self.bus.connection() as connection:
            channel = self.bus.open_channel(connection)
            try:
                yield channel
            finally:
                try:
                    channel.close()
                except CONNECTION_ERRORS:
                    pass

    def queues(self) -> dict[str, int | None]:
        """Counts per parking lot; ``None`` for one not declared on this broker yet."""
        counts: dict[str, int | None] = {}
        for subscription in self.bus.subscriptions:
            name = self.bus.naming.parking_lot(subscription.queue)
            try:
                counts[name] = self.count(name)
            except ParkingLotMissing:
                counts[name] = None
        return counts

    def count(self, parking_lot: str) -> int:
        # A passive declare of a missing queue closes the channel, hence one channel per question.
        with self._channel() as channel:
            return int(self._declared(channel, parking_lot).message_count)

    @staticmethod
    def _declared(channel: Any, parking_lot: str) -> Any:
        try:
            return channel.queue_declare(parking_lot, passive=True)
        except amqp.exceptions.NotFound as exc:
            raise ParkingLotMissing(
                f"no parking lot {parking_lot} on this broker: its service has not declared its queues yet "
                "(any `postpay run` declares them at start), or POSTPAY_BUS_NAMESPACE differs"
            ) from exc

    def _walk(
        self, parking_lot: str, limit: int, act: Callable[[Any, amqp.Message, ParkedMessage], bool], walk: str = ""
    ) -> list[ParkedMessage]:
        """Meet the parked messages in order; ``act`` says whether it took one (acknowledged it).

        The walk goes until the lot is empty, not for the count a passive declare gives: a quorum
        queue answers 0 when its leader is slow to reply, and a purge would then quietly remove
        nothing. Messages met and not taken stay unacknowledged on this channel, so none is met
        twice; a copy this requeue ``walk`` sent back and its consumer parked again ends the walk.
        """
        seen: list[ParkedMessage] = []
        returned = 0
        with self._channel() as channel:
            self._declared(channel, parking_lot)
            while len(seen) < limit:
                raw = channel.basic_get(parking_lot, no_ack=False)
                if raw is None:
                    break
                properties = raw.properties
                headers = dict(properties.get("application_headers") or {})
                if walk and headers.get(REQUEUE_WALK_HEADER) == walk:
                    returned += 1
                    break
                parked = describe_parked(
                    parking_lot,
                    len(seen),
                    properties.get("message_id"),
                    headers,
                    body_bytes(raw),
                    properties.get("content_type"),
                )
                returned += not act(channel, raw, parked)
                seen.append(parked)
        if returned:
            self._await_returned(parking_lot, returned)
        return seen

    def _await_returned(self, parking_lot: str, expected: int) -> None:
        """Wait until the messages this walk gave back are ready again (best effort, bounded)."""
        deadline = time.monotonic() + RETURN_WAIT_SECONDS
        while self.count(parking_lot) < expected and time.monotonic() < deadline:
            time.sleep(0.005)

    def list(self, parking_lot: str, limit: int = 1000) -> list[ParkedMessage]:
        return self._walk(parking_lot, limit, lambda channel, raw, parked: False)

    def _owner(self, parking_lot: str) -> str:
        for subscription in self.bus.subscriptions:
            if self.bus.naming.parking_lot(subscription.queue) == parking_lot:
                return subscription.service
        raise ParkingLotMissing(f"no handler of this build parks in {parking_lot}")

    def _requeue(
        self, parking_lot: str, selection: Selection, actor: str, reason: str, done: builtins.list[ParkedMessage]
    ) -> None:
        target = parking_lot.removesuffix(".parked")
        owner = self._owner(parking_lot)
        exchange = self.bus.naming.internal_exchange(owner)
        # Copies the owning service or an operator made vouch for a publisher; anything else speaks
        # for its own user_id. Either way the requeue keeps vouching for exactly that publisher, so a
        # forged message requeued is parked again, and a rightful one passes.
        trusted = {self.bus.users.user_of(owner), self.bus.users.user_of(OPERATOR)}
        walk = uuid.uuid4().hex

        def requeue(channel: Any, raw: amqp.Message, parked: ParkedMessage) -> bool:
            if not selection.matches(parked):
                return False
            publisher = published_by(raw.properties.get("user_id"), parked.headers, trusted)
            headers = {
                **requeued_headers(parked.headers, actor, reason),
                PUBLISHED_BY_HEADER: publisher or "",
                REQUEUE_WALK_HEADER: walk,
            }
            properties = {k: v for k, v in raw.properties.items() if k != "application_headers"}
            copy = amqp.Message(parked.body, application_headers=headers, **properties)
            copy.properties["delivery_mode"] = 2
            copy.properties["user_id"] = self.bus.login_user
            channel.basic_publish_confirm(
                copy, exchange=exchange, routing_key=target, mandatory=True, confirm_timeout=self.bus.confirm_timeout
            )
            channel.basic_ack(raw.delivery_info["delivery_tag"])
            done.append(parked)
            return True

        self._walk(parking_lot, 1_000_000, requeue, walk)

    def _purge(self, parking_lot: str, selection: Selection, done: builtins.list[ParkedMessage]) -> None:
        def purge(channel: Any, raw: amqp.Message, parked: ParkedMessage) -> bool:
            if not selection.matches(parked):
                return False
            channel.basic_ack(raw.delivery_info["delivery_tag"])
            done.append(parked)
            return True

        self._walk(parking_lot, 1_000_000, purge)
