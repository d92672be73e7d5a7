"""Scripted failures for the fakes: ``fake.fail("create_invoice", UpstreamOutcomeUnknown(...))`` makes
the next call of that method raise, once per ``fail`` (a queue per method)."""

from __future__ import annotations

from collections import defaultdict, deque


class Failures:
    def __init__(self) -> None:
        self._queued: dict[str, deque[BaseException]] = defaultdict(deque)

    def fail(self, method: str, error: BaseException, *, times: int = 1) -> None:
        self._queued[method].extend([error] * times)

    def check(self, method: str) -> None:
        """Raise the next failure queued for ``method``, if any."""
        queued = self._queued.get(method)
        if queued:
            raise queued.popleft()
