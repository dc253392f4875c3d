"""Simple moving-average crossover: BUY when the fast SMA crosses above the slow one, SELL below.

Exact: the averages are compared as Decimal window sums (``fast_sum * slow == slow_sum * fast``
scaled), recomputed from the window each bar, so no running-sum rounding can ever flip a cross.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal, localcontext
from typing import Annotated

from msgspec import Meta

from tradewire_common.schemas import Bar, Side
from tradewire_signals.strategy import EXACT, Intent, Strategy, StrategyParams, register


class SmaCrossParams(StrategyParams, frozen=True):
    fast: Annotated[int, Meta(ge=1)] = 10
    slow: Annotated[int, Meta(ge=2)] = 30

    def __post_init__(self) -> None:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")


@register("sma_cross")
class SmaCross(Strategy[SmaCrossParams]):
    params_type = SmaCrossParams

    def __init__(self, strategy_id: str, instruments: tuple[str, ...], params: SmaCrossParams) -> None:
        super().__init__(strategy_id, instruments, params)
        self._closes: dict[str, deque[Decimal]] = {}
        self._prev_sign: dict[str, int] = {}

    def on_bar(self, bar: Bar) -> Intent | None:
        p = self.params
        closes = self._closes.setdefault(bar.instrument_id, deque(maxlen=p.slow))
        closes.append(bar.close)
        if len(closes) < p.slow:
            return None
        window = list(closes)
        with localcontext(EXACT):
            fast_sum = sum(window[-p.fast :], Decimal(0))
            slow_sum = sum(window, Decimal(0))
            # sign(fast_sma - slow_sma) without division: fast_sum/fast vs slow_sum/slow
            diff = fast_sum * p.slow - slow_sum * p.fast
        sign = (diff > 0) - (diff < 0)
        prev = self._prev_sign.get(bar.instrument_id)
        self._prev_sign[bar.instrument_id] = sign
        if prev is None:
            return None
        slow_sma = slow_sum / p.slow
        fast_sma = fast_sum / p.fast
        spread = abs(fast_sma - slow_sma) / slow_sma
        # 1% apart counts as full confidence; the value is informative, risk sizes on its own rules
        confidence = float(min(Decimal(1), spread * 100))
        if prev <= 0 < sign:
            return Intent(Side.BUY, confidence, f"SMA{p.fast} {fast_sma:.8g} crossed above SMA{p.slow} {slow_sma:.8g}")
        if prev >= 0 > sign:
            return Intent(Side.SELL, confidence, f"SMA{p.fast} {fast_sma:.8g} crossed below SMA{p.slow} {slow_sma:.8g}")
        return None
