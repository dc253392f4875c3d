"""Clocks in nanoseconds: the live wall clock and a simulated one for replays and backtests."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...


class LiveClock:
    """Wall-clock time (UTC ns since the epoch)."""

    def now_ns(self) -> int:
        return time.time_ns()


class SimulatedClock:
    """Time that moves only when told to; never backwards."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance_to(self, ts_ns: int) -> None:
        if ts_ns < self._now:
            raise ValueError(f"simulated clock cannot go back from {self._now} to {ts_ns}")
        self._now = ts_ns
