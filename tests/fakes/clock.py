"""The fake clock is the kernel's own ``ManualClock``: it moves only when a test says so."""

from __future__ import annotations

from shared.clock import ManualClock as FakeClock

__all__ = ["FakeClock"]
