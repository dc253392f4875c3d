"""RSI mean reversion (Cutler's RSI: simple sums, no recursive smoothing, so it is exact).

RSI over the last ``window`` close-to-close changes: G = Σ gains, L = Σ losses, RSI = 100·G/(G+L),
undefined when G + L = 0. BUY when RSI crosses below ``lower`` (oversold), SELL when it crosses above
``upper``. Compared without division (``100·G < lower·(G+L)``), the same rule as the vector kernel.
"""

from __future__ import annotations

import itertools
from collections import deque
from decimal import Decimal, localcontext
from typing import Annotated

from msgspec import Meta

from tradewire_common.schemas import Bar, Side
from tradewire_signals.strategy import EXACT, Intent, Strategy, StrategyParams, register


class RsiReversionParams(StrategyParams, frozen=True):
    window: Annotated[int, Meta(ge=2)] = 14
    lower: Annotated[float, Meta(gt=0, lt=100)] = 30.0
    upper: Annotated[float, Meta(gt=0, lt=100)] = 70.0

    def __post_init__(self) -> None:
        if self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower}) must be below upper ({self.upper})")


@register("rsi_reversion")
class RsiReversion(Strategy[RsiReversionParams]):
    params_type = RsiReversionParams

    def __init__(self, strategy_id: str, instruments: tuple[str, ...], params: RsiReversionParams) -> None:
        super().__init__(strategy_id, instruments, params)
        self._closes: dict[str, deque[Decimal]] = {}
        self._prev: dict[str, tuple[Decimal, Decimal] | None] = {}
        self._lower = Decimal(str(params.lower))
        self._upper = Decimal(str(params.upper))

    def _sums(self, closes: deque[Decimal]) -> tuple[Decimal, Decimal] | None:
        values = list(closes)
        gains = losses = Decimal(0)
        with localcontext(EXACT):
            for a, b in itertools.pairwise(values):
                if b > a:
                    gains += b - a
                else:
                    losses += a - b
        return None if gains + losses == 0 else (gains, losses)

    def on_bar(self, bar: Bar) -> Intent | None:
        closes = self._closes.setdefault(bar.instrument_id, deque(maxlen=self.params.window + 1))
        closes.append(bar.close)
        if len(closes) <= self.params.window:
            return None
        now = self._sums(closes)
        prev = self._prev.get(bar.instrument_id)
        self._prev[bar.instrument_id] = now
        if now is None or prev is None:
            return None
        g, l_ = now
        pg, pl = prev
        with localcontext(EXACT):
            below_now = 100 * g < self._lower * (g + l_)
            below_prev = 100 * pg < self._lower * (pg + pl)
            above_now = 100 * g > self._upper * (g + l_)
            above_prev = 100 * pg > self._upper * (pg + pl)
        rsi = float(100 * g / (g + l_))
        if below_now and not below_prev:
            return Intent(Side.BUY, min(1.0, (float(self._lower) - rsi) / float(self._lower) + 0.5),
                          f"RSI{self.params.window} {rsi:.2f} crossed below {self.params.lower}")
        if above_now and not above_prev:
            return Intent(Side.SELL, min(1.0, (rsi - float(self._upper)) / (100 - float(self._upper)) + 0.5),
                          f"RSI{self.params.window} {rsi:.2f} crossed above {self.params.upper}")
        return None
