"""Consuming from RabbitMQ: handlers run on a thread pool, the connection stays on one thread.

py-amqp connections are not thread-safe, so the consumer thread owns the connection: it receives
deliveries, hands each to a worker thread, and settles finished work (ack, retry, park) itself. A
message is acknowledged only after its handler's transaction committed, and a retry or parking copy
is confirmed by the broker before the original is acknowledged.

After a lost connection the consumer reconnects with backoff; work that finishes for a dead channel is
not settled (the broker redelivers it, and the inbox makes the second run a no-op). On stop, it
cancels its consumers, lets in-flight handlers finish, settles them, and closes cleanly.

Each delivery is taken to speak for the broker user that published it (``identity.published_by``);
retry and parking copies go through the service's own exchange under this consumer's user, naming
that publisher in a header.
"""

from __future__ import annotations

import queue
import select
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import amqp

from shared.bus.amqp_wire import (
    CONNECTION_ERRORS,
    ack_frames,
    body_bytes,
    coalesced_acks,
    handle_frames,
    is_timeout,
    read_ahead,
    read_available,
    take_buffered_frames,
    write_frames,
)
from shared.bus.handler_pool import HandlerPool
from shared.bus.identity import published_by
from shared.bus.messages import PUBLISHED_BY_HEADER, ReceivedMessage
from shared.bus.policy import Step, next_step, parked_headers, retry_headers
from shared.bus.processing import MessageProcessor, Outcome
from shared.bus.settle_confirms import SettleConfirms, SettleFailed
from shared.bus.topology import Subscription
from shared.logging import get_logger
from shared.metrics import MESSAGES_PARKED, MESSAGES_RETRIED

if TYPE_CHECKING:
    from shared.bus.rabbit import RabbitBus

log = get_logger("postpay.bus.rabbit")

Binding = tuple[Subscription, MessageProcessor]


@dataclass
class _Delivery:
    generation: int
    delivery_tag: int
    message: ReceivedMessage
    raw: amqp.Message


@dataclass
class _Finished:
    generation: int
    delivery_tag: int
    subscription: Subscription
    message: ReceivedMessage
    raw: amqp.Message
    outcome: Outcome


class RabbitConsumer:
    def __init__(self, bus: RabbitBus, bindings: list[Binding]) -> None:
        self.bus = bus
        self.bindings = {bus.naming.queue(s.queue): (s, p) for s, p in bindings}
        self._finished: queue.SimpleQueue[_Finished] = queue.SimpleQueue()
        self._waiting: dict[str, deque[_Delivery]] = {name: deque() for name in self.bindings}
        # Per batched queue: tasks submitted that have not yet started taking deliveries (see receive).
        self._scheduled: dict[str, int] = {name: 0 for name in self.bindings}
        self._scheduling = threading.Lock()
        self._transport: Any = None
        self._amqp: Any = None  # py-amqp's connection under kombu's, when reading ahead
        self._generation = 0
        # Delivery tags handed to handlers and not yet acknowledged, with the queue each came from.
        self._unsettled: dict[int, str] = {}
        self._confirms: SettleConfirms | None = None
        self._pool = HandlerPool(bus.concurrency, "handler")
        self._poller: Any = None  # select.poll on the socket, when reading ahead
        self._heartbeat_due = 0.0
        self._trusted = bus.trusted_copiers()
        self.connected = threading.Event()
        self._consumed = False  # whether the current connection attempt reached consuming

    def run(self, stop: threading.Event) -> None:
        failures = 0
        try:
            while not stop.is_set():
                self._consumed = False
                try:
                    self._consume(stop)
                    failures = 0
                except Exception as exc:
                    self.connected.clear()
                    # A connection that got as far as consuming was a recovery: losing it (its node died)
                    # starts the backoff over, so failing over takes a second, not the outage's ten.
                    failures = 1 if self._consumed else failures + 1
                    delay = min(10.0, 0.5 * 2 ** min(failures, 5))
                    if isinstance(exc, CONNECTION_ERRORS):
                        log.warning("broker connection lost; reconnecting", error=str(exc), retry_in_seconds=delay)
                    else:
                        log.exception("consumer failed; reconnecting", retry_in_seconds=delay)
                    stop.wait(delay)
        finally:
            self._pool.shutdown(wait=True)
            self.connected.clear()

    def _consume(self, stop: threading.Event) -> None:
        self._generation += 1
        self._unsettled = {}
        for waiting in self._waiting.values():
            waiting.clear()  # deliveries of a lost channel: the broker redelivers them
        generation = self._generation
        connection = self.bus.connection()
        try:
            channel = self.bus.open_channel(connection)
            self._transport = read_ahead(connection)
            self._amqp = connection.connection if self._transport is not None else None
            self._poller = None
            if self._transport is not None:
                self._poller = select.poll()
                self._poller.register(self._transport.sock, select.POLLIN)
            self.bus.declare_on(channel, [s for s, _ in self.bindings.values()])
            channel.basic_qos(0, self.bus.prefetch, False)
            settle_channel = connection.channel()
            settle_channel.confirm_select()
            self._confirms = SettleConfirms(settle_channel)
            tags = [
                channel.basic_consume(name, callback=self._receiver(name, generation), no_ack=False)
                for name in self.bindings
            ]
            self.connected.set()
            self._consumed = True
            log.info("consuming", queues=sorted(self.bindings), prefetch=self.bus.prefetch)
            while not stop.is_set():
                self._pump(connection, channel, settle_channel, generation)
            for tag in tags:
                channel.basic_cancel(tag)
            self._finish_in_flight(connection, channel, settle_channel, generation)
        finally:
            self.connected.clear()
            try:
                connection.close()
            except CONNECTION_ERRORS:
                pass

    def in_hand(self) -> dict[str, dict[str, int]]:
        """Per queue, the deliveries this consumer holds: received and not yet acknowledged, and of
        those, how many wait for a batched handler to take them. A diagnostic (read from any thread,
        so a snapshot that may be a moment old), for when a queue seems to stall."""
        held: dict[str, dict[str, int]] = {}
        for queue_name in self._unsettled.copy().values():
            counts = held.setdefault(queue_name, {"unsettled": 0, "waiting": 0})
            counts["unsettled"] += 1
        for queue_name, waiting in self._waiting.items():
            if waiting:
                held.setdefault(queue_name, {"unsettled": 0, "waiting": 0})["waiting"] = len(waiting)
        return held

    def _receiver(self, queue_name: str, generation: int) -> Any:
        subscription, processor = self.bindings[queue_name]
        waiting = self._waiting[queue_name]

        def receive(raw: amqp.Message) -> None:
            properties = raw.properties
            headers = dict(properties.get("application_headers") or {})
            message = ReceivedMessage(
                body=body_bytes(raw),
                content_type=properties.get("content_type"),
                headers=headers,
                redelivered=bool(raw.delivery_info.get("redelivered")),
                producer_user=published_by(properties.get("user_id"), headers, self._trusted),
            )
            delivery = _Delivery(generation, raw.delivery_info["delivery_tag"], message, raw)
            self._unsettled[delivery.delivery_tag] = queue_name
            if subscription.batch > 1:
                # A task takes whatever is waiting by the time a worker is free, so batches grow only
                # while the workers are busy. A delivery needs no task of its own while as many tasks
                # as there are workers are queued and not yet started: one of them will take it.
                waiting.append(delivery)
                self._schedule(subscription, processor, waiting, queue_name)
            else:
                self._pool.submit(self._apply, subscription, processor, [delivery])

        return receive

    def _schedule(
        self,
        subscription: Subscription,
        processor: MessageProcessor,
        waiting: deque[_Delivery],
        queue_name: str,
        *,
        only_if_none: bool = False,
    ) -> None:
        with self._scheduling:
            scheduled = self._scheduled[queue_name]
            if scheduled >= (1 if only_if_none else self.bus.concurrency):
                return
            self._scheduled[queue_name] = scheduled + 1
        self._pool.submit(self._apply_waiting, subscription, processor, waiting, queue_name)

    def _apply_waiting(
        self, subscription: Subscription, processor: MessageProcessor, waiting: deque[_Delivery], queue_name: str
    ) -> None:
        with self._scheduling:
            self._scheduled[queue_name] -= 1  # from here on, a delivery that arrives schedules a task
        try:
            self._take_waiting(subscription, processor, waiting)
        finally:
            if waiting:
                # More arrived than the queued tasks could take (each takes at most a batch): unless
                # a task not yet started will, another one takes the rest.
                self._schedule(subscription, processor, waiting, queue_name, only_if_none=True)

    def _take_waiting(self, subscription: Subscription, processor: MessageProcessor, waiting: deque[_Delivery]) -> None:
        deliveries: list[_Delivery] = []
        while len(deliveries) < subscription.batch:
            try:
                deliveries.append(waiting.popleft())
            except IndexError:
                break
        if deliveries:
            self._apply(subscription, processor, deliveries)

    def _apply(self, subscription: Subscription, processor: MessageProcessor, deliveries: list[_Delivery]) -> None:
        messages = [delivery.message for delivery in deliveries]
        try:
            outcomes = processor.process_batch(subscription, messages)
            if len(outcomes) != len(messages):
                # Settling some and not others would leave a delivery unacknowledged until reconnect.
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(messages)} deliveries")
        except Exception as exc:
            outcomes = [Outcome("retry", "processor-error", f"{type(exc).__name__}: {exc}")] * len(messages)
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            finished = _Finished(
                delivery.generation, delivery.delivery_tag, subscription, delivery.message, delivery.raw, outcome
            )
            self._finished.put(finished)

    def _pump(self, connection: Any, channel: Any, settle_channel: Any, generation: int) -> None:
        timeout = 0.005 if self._unsettled else 0.5
        if self._transport is not None:
            # What the socket has, in one read; its whole frames handled at once (handle_frames).
            read_available(self._transport, self._poller, timeout)
            handle_frames(self._amqp, take_buffered_frames(self._transport, 1024))
        else:
            try:
                connection.drain_events(timeout=timeout)
            except Exception as exc:
                if not is_timeout(exc):
                    raise
        now = time.monotonic()
        if now >= self._heartbeat_due:
            # py-amqp asks for a tick about once a second; every pass (hundreds a second) cost a tenth
            # of this thread's CPU.
            connection.heartbeat_check()
            self._heartbeat_due = now + 1.0
        self._settle_finished(connection, channel, settle_channel, generation)

    def _settle_finished(self, connection: Any, channel: Any, settle_channel: Any, generation: int) -> None:
        batch: list[_Finished] = []
        # Asked before taking: most passes find nothing, and a get_nowait that raises Empty costs more.
        # This thread is the queue's only reader, so what it was told is there stays there.
        while not self._finished.empty():
            finished = self._finished.get_nowait()
            if finished.generation != generation:
                continue  # its channel is gone; the broker will redeliver it
            self._unsettled.pop(finished.delivery_tag, None)
            batch.append(finished)
        if not batch:
            return
        forwarded = False
        for finished in batch:
            attempt = finished.message.attempt
            step = next_step(finished.outcome, attempt, self.bus.retry_delays)
            if step.action != "ack":
                self._forward(settle_channel, finished, step, attempt)
                forwarded = True
        if forwarded:
            # Every copy confirmed before any original is acknowledged: a crash in between duplicates
            # a retry or a parked message, never loses one.
            self._await_confirms(connection)
        acks = coalesced_acks([finished.delivery_tag for finished in batch], self._unsettled.keys())
        if self._amqp is not None:
            # One write for the round's acks, the frames py-amqp's basic_ack would send one by one.
            if channel.connection is None:
                raise amqp.exceptions.RecoverableConnectionError("connection already closed")
            write_frames(self._amqp, ack_frames(channel.channel_id, acks))
        else:
            for tag, multiple in acks:
                channel.basic_ack(tag, multiple=multiple)

    def _await_confirms(self, connection: Any) -> None:
        confirms = self._confirms
        assert confirms is not None, "settling outside a consuming connection"
        deadline = time.monotonic() + self.bus.confirm_timeout
        while confirms.pending and not confirms.refused:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SettleFailed(f"no confirm within {self.bus.confirm_timeout}s for {len(confirms.pending)} copies")
            try:
                connection.drain_events(timeout=min(remaining, 1.0))
            except Exception as exc:
                if not is_timeout(exc):
                    raise
        if confirms.refused:
            raise SettleFailed("; ".join(confirms.refused[:3]))

    def _forward(self, settle_channel: Any, finished: _Finished, step: Step, attempt: int) -> None:
        subscription = finished.subscription
        if step.action == "retry":
            target = self.bus.naming.retry_queue(subscription.queue, step.delay)
            headers = retry_headers(finished.message.headers, attempt, step.counted)
            MESSAGES_RETRIED.labels(subscription.queue).inc()
        else:
            target = self.bus.naming.parking_lot(subscription.queue)
            queue_name = self.bus.naming.queue(subscription.queue)
            headers = parked_headers(finished.message.headers, queue_name, finished.outcome, step.reason, attempt)
            MESSAGES_PARKED.labels(subscription.queue, step.reason).inc()
            log.warning(
                "message parked",
                queue=queue_name,
                reason=step.reason,
                event_id=finished.outcome.event_id,
                error=finished.outcome.error[:500],
            )
        # RabbitMQ lets this connection publish under its own name only: the copy is this consumer's,
        # vouching for the original's publisher ("" when there was none) in a header.
        headers[PUBLISHED_BY_HEADER] = finished.message.producer_user or ""
        properties = {k: v for k, v in finished.raw.properties.items() if k != "application_headers"}
        copy = amqp.Message(finished.message.body, application_headers=headers, **properties)
        copy.properties["delivery_mode"] = 2
        copy.properties["user_id"] = self.bus.login_user
        settle_channel.basic_publish(
            copy, exchange=self.bus.naming.internal_exchange(subscription.service), routing_key=target, mandatory=True
        )
        assert self._confirms is not None, "settling outside a consuming connection"
        self._confirms.sent()

    def _finish_in_flight(self, connection: Any, channel: Any, settle_channel: Any, generation: int) -> None:
        deadline = time.monotonic() + 60
        while self._unsettled and time.monotonic() < deadline:
            self._pump(connection, channel, settle_channel, generation)
        log.info("consumer stopped", unfinished=len(self._unsettled))
