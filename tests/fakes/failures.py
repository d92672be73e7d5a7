"""Scripted failures for the fakes: ``fake.fail("create_invoice", UpstreamOutcomeUnknown(...))`` makes
the next call of that method raise, once per ``fail`` (a queue per method). With ``after=True`` the call
does its work first and then raises: the upstream committed, and the answer was lost on the way back."""

from __future__ import annotations

from collections import defaultdict, deque


class Failures:
    def __init__(self) -> None:
        self._queued: dict[tuple[str, bool], deque[BaseException]] = defaultdict(deque)

    def fail(self, method: str, error: BaseException, *, times: int = 1, after: bool = False) -> None:
        self._queued[method, after].extend([error] * times)

    def check(self, method: str, *, after: bool = False) -> None:
        """Raise the next failure queued for ``method`` (before or after its work), if any."""
        queued = self._queued.get((method, after))
        if queued:
            raise queued.popleft()
