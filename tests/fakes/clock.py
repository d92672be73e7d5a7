"""The fake clock is the kernel's own ``ManualClock``: it moves only when a test says so."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.clock import ManualClock as FakeClock

__all__ = ["FakeClock"]

if TYPE_CHECKING:
    from shared.ports import Clock

    def _is_a_clock(clock: FakeClock) -> Clock:  # mypy: calling it tells the time
        return clock
