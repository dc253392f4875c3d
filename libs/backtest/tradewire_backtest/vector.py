"""Vector mode: a whole backtest in numba kernels, with the event-mode strategies' exact rules.

::

    from tradewire_backtest.arrays import BarArrays
    from tradewire_backtest.vector import run_vector

    bars = BarArrays.from_file("data/demo/btcusdt-perp-1m-2022-01.csv")
    result = run_vector("sma_cross", {"fast": 10, "slow": 30}, bars, cash=10_000, fee_bps=10)
    result.final_equity, len(result.trades), result.equity

Strategies (parameters, defaults and validation are the event-mode ``tradewire_signals`` ones):
``sma_cross`` (fast, slow), ``rsi_reversion`` (window, lower, upper), ``breakout`` (window). The
signal rules and the simulation (all-in sizing, fills, fees, slippage, stops) are documented in
:mod:`tradewire_backtest.kernels`; moving averages and RSI are compared in exact int64 fixed point
(:func:`tradewire_backtest.arrays.to_fixed`).

``sma_cross`` long-only without stops runs the *fused* kernel (signals computed inline while
simulating, one pass over the closes, no per-bar allocation unless ``equity_curve``); everything
else computes the signal array, then simulates it. ``engine="generic"`` forces the two-step path
(the results are identical).

``elapsed_s`` is the kernels' wall time: choosing the fixed-point scale, converting, signals and
simulation. It excludes loading the data, numba compilation (every kernel is compiled and run once
on a tiny series first) and building the ``Trade`` objects, which :attr:`VectorResult.trades`
does lazily from the ``records`` array.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from tradewire_backtest import kernels
from tradewire_backtest.arrays import BarArrays, fixed_scale, rsi_factor, to_fixed

if TYPE_CHECKING:
    from tradewire_backtest.event import Trade

__all__ = ["VECTOR_STRATEGIES", "VectorResult", "run_vector", "warm_up"]

#: Strategy kinds with a vector kernel.
VECTOR_STRATEGIES = ("sma_cross", "rsi_reversion", "breakout")

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class VectorResult:
    strategy: str
    params: dict[str, Any]
    #: The kernel's trades as a ``kernels.TRADE_DTYPE`` record array.
    records: np.ndarray = field(repr=False)
    final_equity: float
    #: Equity per bar (cash + position * close), or None when not requested.
    equity: FloatArray | None = field(repr=False)
    bars: int
    elapsed_s: float
    #: The fixed-point scale the prices were converted with (0: compared as floats, e.g. breakout).
    scale: int
    #: True when the fused single-pass kernel ran.
    fused: bool

    @cached_property
    def trades(self) -> list[Trade]:
        """The trades as event mode's ``Trade`` dataclasses (built on first access): one per round
        trip, plus the position still open at the end (``exit_idx == -1``, ``exit_px == 0``, ``pnl ==
        -fees``). Indices are the bars of the fills; ``side`` is +1 long, -1 short."""
        from tradewire_backtest.event import Trade

        r = self.records
        return [
            Trade(int(a), int(b), int(c), float(d), float(e), float(f), float(g), float(h))
            for a, b, c, d, e, f, g, h in zip(
                r["entry_idx"].tolist(), r["exit_idx"].tolist(), r["side"].tolist(), r["qty"].tolist(),
                r["entry_px"].tolist(), r["exit_px"].tolist(), r["pnl"].tolist(), r["fees"].tolist(),
                strict=True,
            )
        ]


def strategy_params(strategy: str, params: Mapping[str, Any]) -> Any:
    """``params`` validated (and defaulted) by the event-mode strategy's own parameter struct."""
    from tradewire_signals.breakout import BreakoutParams
    from tradewire_signals.rsi_reversion import RsiReversionParams
    from tradewire_signals.sma_cross import SmaCrossParams

    types: dict[str, type[msgspec.Struct]] = {"sma_cross": SmaCrossParams, "rsi_reversion": RsiReversionParams,
                                              "breakout": BreakoutParams}
    params_type = types.get(strategy)
    if params_type is None:
        raise ValueError(f"no vector kernel for strategy {strategy!r}; vector mode has: {', '.join(VECTOR_STRATEGIES)}")
    try:
        return msgspec.convert(dict(params), type=params_type, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid {strategy} parameters {dict(params)}: {exc}") from None


_warmed = False


def warm_up() -> None:
    """Compile (or load from numba's cache) and run every kernel once on a tiny series."""
    global _warmed
    if _warmed:
        return
    n = 64
    close = 100.0 + np.sin(np.arange(n, dtype=np.float64) / 3.0)
    high = close + 0.5
    low = close - 0.5
    fixed, scale = to_fixed(close, (4,))
    sig = kernels.sma_cross_signals(fixed, 2, 4)
    kernels.rsi_signals(fixed, 3, 30, 1, 70, 1)
    kernels.breakout_signals(high, low, close, 3)
    for flag in (False, True):
        kernels.simulate(sig, close, high, low, close, 1000.0, 0.001, 0.0, 0.0, flag, flag, flag, 0.01, 0.01, flag)
        kernels.simulate_exits(sig, np.arange(n, dtype=np.int64), close, high, low, close, 1000.0, 0.001, 0.0, 0.0,
                               flag, flag, flag, 0.01, 0.01, 0.01, 3, flag)
        kernels.sma_cross_long_fused(close, close, float(scale), 2, 4, 1000.0, 0.001, 0.0, 0.0, flag, flag, flag)
    _warmed = True


def run_vector(
    strategy: str,
    params: Mapping[str, Any],
    bars: BarArrays,
    *,
    cash: float,
    fee_bps: float,
    fixed_fee: float = 0.0,
    slippage_bps: float = 0.0,
    fill: Literal["close", "next_open"] = "close",
    long_short: bool = False,
    whole_units: bool = False,
    stop_loss: float = 0.0,
    take_profit: float = 0.0,
    trailing_stop: float = 0.0,
    time_stop_s: int = 0,
    equity_curve: bool = True,
    engine: Literal["auto", "fused", "generic"] = "auto",
) -> VectorResult:
    """Backtest ``strategy`` on ``bars``: all-in sizing, ``fee_bps`` per fill (10 = 0.1 %), fills at
    the signal bar's close or the next bar's open. See :mod:`tradewire_backtest.kernels` for the rules."""
    p = strategy_params(strategy, params)
    if fill not in ("close", "next_open"):
        raise ValueError(f"fill must be 'close' or 'next_open', got {fill!r}")
    if engine not in ("auto", "fused", "generic"):
        raise ValueError(f"engine must be 'auto', 'fused' or 'generic', got {engine!r}")
    for name, value in (("cash", cash), ("fee_bps", fee_bps), ("fixed_fee", fixed_fee),
                        ("slippage_bps", slippage_bps), ("stop_loss", stop_loss), ("take_profit", take_profit),
                        ("trailing_stop", trailing_stop), ("time_stop_s", time_stop_s)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    for name, value in (("stop_loss", stop_loss), ("trailing_stop", trailing_stop)):
        if value >= 1:
            raise ValueError(f"{name} is a fraction below 1 (0.02 = 2 %), got {value}")
    if int(time_stop_s) != time_stop_s:
        raise ValueError(f"time_stop_s must be a whole number of seconds, got {time_stop_s}")
    fusable = (strategy == "sma_cross" and not long_short and stop_loss == 0 and take_profit == 0
               and trailing_stop == 0 and time_stop_s == 0)
    if engine == "fused" and not fusable:
        raise ValueError("the fused kernel runs sma_cross long-only without stops only")
    fused = fusable and engine != "generic"
    warm_up()

    cash_f, fixed_f = float(cash), float(fixed_fee)
    fee_rate, slip = float(fee_bps) / 10_000, float(slippage_bps) / 10_000
    next_open = fill == "next_open"
    close = bars.close
    start = time.perf_counter()
    scale = 0
    if fused:
        scale = fixed_scale(float(kernels.abs_max(close)), (p.slow,))
        records, final, equity = kernels.sma_cross_long_fused(
            close, bars.open if next_open else close, float(scale), int(p.fast), int(p.slow), cash_f, fee_rate,
            fixed_f, slip, next_open, bool(whole_units), bool(equity_curve),
        )
    else:
        if strategy == "sma_cross":
            fixed, scale = to_fixed(close, (p.slow,))
            signals = kernels.sma_cross_signals(fixed, int(p.fast), int(p.slow))
        elif strategy == "rsi_reversion":
            lower, upper = Fraction(str(p.lower)), Fraction(str(p.upper))
            fixed, scale = to_fixed(close, (p.window,), factor=rsi_factor(p.window, lower, upper))
            signals = kernels.rsi_signals(fixed, int(p.window), lower.numerator, lower.denominator,
                                          upper.numerator, upper.denominator)
        else:
            signals = kernels.breakout_signals(bars.high, bars.low, close, int(p.window))
        records, final, equity = kernels.simulate_exits(
            signals, np.ascontiguousarray(bars.ts, dtype=np.int64), bars.open, bars.high, bars.low, close, cash_f,
            fee_rate, fixed_f, slip, next_open, bool(long_short), bool(whole_units), float(stop_loss),
            float(take_profit), float(trailing_stop), int(time_stop_s) * 1_000_000_000, bool(equity_curve),
        )
    elapsed = time.perf_counter() - start
    return VectorResult(
        strategy=strategy,
        params=msgspec.structs.asdict(p),
        records=records,
        final_equity=float(final),
        equity=equity if equity_curve else None,
        bars=len(close),
        elapsed_s=elapsed,
        scale=scale,
        fused=fused,
    )
