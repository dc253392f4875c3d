"""Recent bars per instrument and interval, for the ATR of volatility-target sizing.

ATR here is the simple mean of the last ``window`` true ranges (not Wilder's smoothing)::

    TR_i = max(high_i - low_i, |high_i - close_(i-1)|, |low_i - close_(i-1)|)
    ATR  = (TR_1 + ... + TR_window) / window

so it needs ``window + 1`` bars. Only bars with an event time at or before the signal's count, so a
bar that arrives early cannot change a decision about an earlier one. ``Decimal`` throughout.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

from tradewire_common.schemas.market import Bar


@dataclass(frozen=True, slots=True)
class _Point:
    ts_event: int
    high: Decimal
    low: Decimal
    close: Decimal


class BarHistory:
    """The last bars of each (instrument, interval); a repeated bar (same open time) replaces the last."""

    #: Bars kept beyond ``window + 1``, for bars that arrive ahead of the signal being decided.
    SLACK = 16

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"ATR window must be at least 1, got {window}")
        self.window = window
        self._bars: dict[tuple[str, str], deque[_Point]] = {}

    def add(self, bar: Bar) -> None:
        series = self._bars.setdefault((bar.instrument_id, bar.interval), deque(maxlen=self.window + 1 + self.SLACK))
        point = _Point(bar.ts_event, bar.high, bar.low, bar.close)
        if series and series[-1].ts_event == bar.ts_event:
            series[-1] = point
        elif not series or series[-1].ts_event < bar.ts_event:
            series.append(point)

    def intervals(self, instrument_id: str) -> list[str]:
        return sorted(interval for (iid, interval) in self._bars if iid == instrument_id)

    def latest(self, instrument_id: str, interval: str) -> int | None:
        """Open time of the newest bar seen (None: none)."""
        series = self._bars.get((instrument_id, interval))
        return series[-1].ts_event if series else None

    def atr(self, instrument_id: str, interval: str, until: int) -> tuple[Decimal | None, int]:
        """``(ATR, bars available)`` over the bars with ``ts_event <= until``; None with too few bars."""
        series = [p for p in self._bars.get((instrument_id, interval), ()) if p.ts_event <= until]
        if len(series) < self.window + 1:
            return None, len(series)
        points = series[-(self.window + 1):]
        total = Decimal(0)
        for prev, cur in pairwise(points):
            total += max(cur.high - cur.low, abs(cur.high - prev.close), abs(cur.low - prev.close))
        return total / self.window, len(series)
