"""Donchian breakout: BUY when the close exceeds the highest high of the previous ``window`` bars,
SELL when it falls below the lowest low. Pure comparisons of prices, so trivially exact."""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Annotated

from msgspec import Meta

from tradewire_common.schemas import Bar, Side
from tradewire_signals.strategy import Intent, Strategy, StrategyParams, register


class BreakoutParams(StrategyParams, frozen=True):
    window: Annotated[int, Meta(ge=1)] = 20


@register("breakout")
class Breakout(Strategy[BreakoutParams]):
    params_type = BreakoutParams

    def __init__(self, strategy_id: str, instruments: tuple[str, ...], params: BreakoutParams) -> None:
        super().__init__(strategy_id, instruments, params)
        self._highs: dict[str, deque[Decimal]] = {}
        self._lows: dict[str, deque[Decimal]] = {}

    def on_bar(self, bar: Bar) -> Intent | None:
        n = self.params.window
        highs = self._highs.setdefault(bar.instrument_id, deque(maxlen=n))
        lows = self._lows.setdefault(bar.instrument_id, deque(maxlen=n))
        intent = None
        if len(highs) == n:
            top, bottom = max(highs), min(lows)
            if bar.close > top:
                intent = Intent(Side.BUY, 0.6, f"close {bar.close} broke above the {n}-bar high {top}")
            elif bar.close < bottom:
                intent = Intent(Side.SELL, 0.6, f"close {bar.close} broke below the {n}-bar low {bottom}")
        highs.append(bar.high)
        lows.append(bar.low)
        return intent
