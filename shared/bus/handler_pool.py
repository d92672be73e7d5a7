"""The consumer's handler threads: a plain worker pool, since a delivery's outcome comes back through
the consumer's own queue, not a future."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from shared.logging import get_logger

log = get_logger("postpay.bus.rabbit")  # under the consumer's name: one logger to follow for the bus's consuming


class HandlerPool:
    """Worker threads taking tasks off one queue, started as tasks come (up to ``workers``).

    Instead of a ``ThreadPoolExecutor``: its ``submit`` built a ``Future`` (and its ``Condition``) per
    delivery that nobody reads (outcomes come back through the consumer's own queue), a sixth of the
    consumer thread's CPU when deliveries are applied one at a time."""

    def __init__(self, workers: int, name: str) -> None:
        self._tasks: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._workers, self._name = workers, name
        self._threads: list[threading.Thread] = []
        self._starting = threading.Lock()
        self._shut = False

    def submit(self, task: Callable[..., None], *args: Any) -> None:
        if self._shut:
            raise RuntimeError("cannot schedule new tasks after shutdown")
        self._tasks.put((task, args))
        if len(self._threads) < self._workers:
            self._start_one()

    def _start_one(self) -> None:
        with self._starting:
            if len(self._threads) >= self._workers:
                return
            thread = threading.Thread(target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while (item := self._tasks.get()) is not None:
            task, args = item
            try:
                task(*args)
            except Exception:
                log.exception("handler task failed")  # _apply turns a processor's failure into outcomes

    def shutdown(self, wait: bool = True) -> None:
        """Tasks already queued still run; then the workers end."""
        with self._starting:
            self._shut = True
            threads = list(self._threads)
        for _ in threads:
            self._tasks.put(None)
        if wait:
            for thread in threads:
                thread.join()
