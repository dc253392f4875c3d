"""Vector-mode simulation against a plain-Python reference simulator in exact Fraction arithmetic.

The reference takes the kernels' signals (their exactness is test_vector_exactness's business), the
prices as exact Fractions (the files' Decimals, or the GBM's float64 values) and the costs as the
Fractions of their decimal text, and follows the documented rules step by step. Trade indices and
sides must be equal; quantities, prices, pnl, fees and the equity curve agree to a relative 1e-9
(the engine computes in float64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.bench.gbm import gbm_bars
from tests.support.data_files import bar_files
from tradewire_backtest import kernels
from tradewire_backtest.arrays import BarArrays, rsi_factor, to_fixed
from tradewire_backtest.event import Trade
from tradewire_backtest.vector import VectorResult, run_vector
from tradewire_datafeed.readers import read_bar_file

DATA = Path(__file__).resolve().parents[2] / "data"
DEMO = DATA / "demo" / "btcusdt-perp-1m-2022-01.csv"
REL = 1e-9


@dataclass
class Position:
    side: int
    qty: Fraction
    entry_px: Fraction
    entry_fee: Fraction
    entry_idx: int
    signal_idx: int


@dataclass
class Costs:
    cash: Fraction
    fee_rate: Fraction
    fixed_fee: Fraction
    slippage: Fraction
    next_open: bool = False
    long_short: bool = False
    whole_units: bool = False
    stop_loss: Fraction = Fraction(0)
    take_profit: Fraction = Fraction(0)


def reference(signals: list[int], o: list[Fraction], h: list[Fraction], lo: list[Fraction], c: list[Fraction],
              k: Costs) -> tuple[list[tuple[Any, ...]], Fraction, list[Fraction]]:
    """Trades ``(entry_idx, exit_idx, side, qty, entry_px, exit_px, pnl, fees)``, final equity, curve."""
    cash = k.cash
    pos: Position | None = None
    pending: tuple[bool, int, Fraction, int] | None = None  # (close it, open side, open qty, signal bar)
    trades: list[tuple[Any, ...]] = []
    curve: list[Fraction] = []

    def buy_or_sell(px: Fraction, side: int) -> Fraction:
        return px * (1 + k.slippage) if side > 0 else px * (1 - k.slippage)

    def close_at(ref_px: Fraction, j: int) -> None:
        nonlocal cash, pos
        assert pos is not None
        fill = buy_or_sell(ref_px, -pos.side)
        fee = pos.qty * fill * k.fee_rate + k.fixed_fee
        cash += pos.side * pos.qty * fill - fee
        fees = pos.entry_fee + fee
        trades.append((pos.entry_idx, j, pos.side, pos.qty, pos.entry_px, fill,
                       pos.side * (fill - pos.entry_px) * pos.qty - fees, fees))
        pos = None

    def open_at(ref_px: Fraction, side: int, qty: Fraction, j: int, signal_idx: int, flip: bool) -> None:
        nonlocal cash, pos
        fill = buy_or_sell(ref_px, side)
        # a flip (close, then open the other way) is one order with one fixed fee, paid by its close
        fee = qty * fill * k.fee_rate + (0 if flip else k.fixed_fee)
        cash -= side * qty * fill + fee
        pos = Position(side, qty, fill, fee, j, signal_idx)

    def all_in(budget: Fraction, ref_px: Fraction, flip: bool) -> Fraction:
        fixed = 0 if flip else k.fixed_fee
        if budget - fixed <= 0:
            return Fraction(0)
        qty = (budget - fixed) / (ref_px * (1 + k.slippage) * (1 + k.fee_rate))
        return Fraction(math.floor(qty)) if k.whole_units else qty

    n = len(c)
    for j in range(n):
        if pending is not None:
            closing, side, qty, signal_idx = pending
            if closing:
                close_at(o[j], j)
            if side:
                open_at(o[j], side, qty, j, signal_idx, closing)
            pending = None
        if pos is not None and j > pos.signal_idx and (k.stop_loss or k.take_profit):
            level: Fraction | None = None
            if pos.side > 0:
                if k.stop_loss and lo[j] <= pos.entry_px * (1 - k.stop_loss):
                    level = min(o[j], pos.entry_px * (1 - k.stop_loss))
                elif k.take_profit and h[j] >= pos.entry_px * (1 + k.take_profit):
                    level = max(o[j], pos.entry_px * (1 + k.take_profit))
            else:
                if k.stop_loss and h[j] >= pos.entry_px * (1 + k.stop_loss):
                    level = max(o[j], pos.entry_px * (1 + k.stop_loss))
                elif k.take_profit and lo[j] <= pos.entry_px * (1 - k.take_profit):
                    level = min(o[j], pos.entry_px * (1 - k.take_profit))
            if level is not None:
                close_at(level, j)
        s = signals[j]
        held = 0 if pos is None else pos.side
        close_it = False
        open_side = 0
        if s > 0:
            if held == 0:
                open_side = 1
            elif held < 0:
                close_it, open_side = True, 1
        elif s < 0:
            if held > 0:
                close_it, open_side = True, (-1 if k.long_short else 0)
            elif held == 0 and k.long_short:
                open_side = -1
        if close_it or open_side:
            if not k.next_open:
                if close_it:
                    close_at(c[j], j)
                if open_side:
                    qty = all_in(cash, c[j], close_it)
                    if qty > 0:
                        open_at(c[j], open_side, qty, j, j, close_it)
            elif j + 1 < n:
                qty = Fraction(0)
                if open_side:
                    budget = cash
                    if close_it:
                        assert pos is not None
                        fill = buy_or_sell(c[j], -pos.side)
                        budget += pos.side * pos.qty * fill - (pos.qty * fill * k.fee_rate + k.fixed_fee)
                    qty = all_in(budget, c[j], close_it)
                pending = (close_it, open_side if qty > 0 else 0, qty, j)
        curve.append(cash + (pos.side * pos.qty * c[j] if pos is not None else 0))
    final = cash + (pos.side * pos.qty * c[-1] if pos is not None else 0)
    if pos is not None:
        trades.append((pos.entry_idx, -1, pos.side, pos.qty, pos.entry_px, Fraction(0), -pos.entry_fee,
                       pos.entry_fee))
    return trades, final, curve


def close_enough(a: float, b: Fraction, scale: float) -> bool:
    return abs(a - float(b)) <= REL * max(abs(float(b)), scale)


def assert_matches(result: VectorResult, expected: tuple[list[tuple[Any, ...]], Fraction, list[Fraction]],
                   *, curve_every: int = 1) -> None:
    trades, final, curve = expected
    got = result.trades
    assert [(t.entry_idx, t.exit_idx, t.side) for t in got] == [t[:3] for t in trades]
    for t, e in zip(got, trades, strict=True):
        notional = float(e[3] * e[4])
        for name, value, want in (("qty", t.qty, e[3]), ("entry_px", t.entry_px, e[4]), ("exit_px", t.exit_px, e[5]),
                                  ("pnl", t.pnl, e[6]), ("fees", t.fees, e[7])):
            assert close_enough(value, want, notional * 1e-6 if name in ("pnl", "fees") else 0.0), (name, t, e)
    assert result.final_equity == pytest.approx(float(final), rel=REL)
    assert result.equity is not None
    for j in range(0, len(curve), curve_every):
        assert result.equity[j] == pytest.approx(float(curve[j]), rel=REL), j


def fractions_of(path: Path) -> tuple[list[Fraction], ...]:
    records = read_bar_file(path).records
    return tuple([Fraction(getattr(r, name)) for r in records] for name in ("open", "high", "low", "close"))


def signals_for(strategy: str, params: dict[str, Any], bars: BarArrays) -> np.ndarray:
    if strategy == "sma_cross":
        fixed, _ = to_fixed(bars.close, (params["slow"],))
        return kernels.sma_cross_signals(fixed, params["fast"], params["slow"])
    if strategy == "rsi_reversion":
        lower, upper = Fraction(str(params["lower"])), Fraction(str(params["upper"]))
        fixed, _ = to_fixed(bars.close, (params["window"],), factor=rsi_factor(params["window"], lower, upper))
        return kernels.rsi_signals(fixed, params["window"], lower.numerator, lower.denominator, upper.numerator,
                                   upper.denominator)
    return kernels.breakout_signals(bars.high, bars.low, bars.close, params["window"])


def costs(cash: float, fee_bps: float, fixed_fee: float = 0.0, slippage_bps: float = 0.0, **flags: Any) -> Costs:
    return Costs(Fraction(str(cash)), Fraction(str(fee_bps)) / 10_000, Fraction(str(fixed_fee)),
                 Fraction(str(slippage_bps)) / 10_000, **flags)


CONFIGS: list[dict[str, Any]] = [
    {},
    {"fill": "next_open", "slippage_bps": 1.0},
    {"fixed_fee": 1.5, "slippage_bps": 2.5},
    {"long_short": True},
    {"long_short": True, "fill": "next_open", "slippage_bps": 3.0, "fixed_fee": 0.25},
    {"whole_units": True, "fixed_fee": 2.0, "cash": 1_000_000.0},
    {"stop_loss": 0.0031, "take_profit": 0.0047},
    {"stop_loss": 0.0029, "take_profit": 0.0053, "long_short": True, "fill": "next_open", "slippage_bps": 1.0},
]
STRATEGIES: list[tuple[str, dict[str, Any]]] = [
    ("sma_cross", {"fast": 10, "slow": 30}),
    ("rsi_reversion", {"window": 14, "lower": 30.0, "upper": 70.0}),
    ("breakout", {"window": 20}),
]


def _engine_args(config: dict[str, Any]) -> dict[str, Any]:
    return {"cash": 10_000.0, **config}


def _costs(config: dict[str, Any]) -> Costs:
    """The reference's costs for ``config`` (fee 10 bps, cash 10 000 unless the config says otherwise)."""
    return costs(
        config.get("cash", 10_000.0), 10.0, config.get("fixed_fee", 0.0), config.get("slippage_bps", 0.0),
        next_open=config.get("fill") == "next_open",
        long_short=config.get("long_short", False),
        whole_units=config.get("whole_units", False),
        stop_loss=Fraction(str(config.get("stop_loss", 0))),
        take_profit=Fraction(str(config.get("take_profit", 0))),
    )


@pytest.fixture(scope="module")
def demo() -> tuple[BarArrays, tuple[list[Fraction], ...]]:
    n = 6000  # the reference's Fractions grow with every trade; 6000 bars keep it quick
    full = BarArrays.from_file(DEMO)
    o, h, lo, c = fractions_of(DEMO)
    return full.slice(0, n), (o[:n], h[:n], lo[:n], c[:n])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize(("strategy", "params"), STRATEGIES, ids=[s for s, _ in STRATEGIES])
def test_simulation_equals_fraction_reference_on_demo_data(
    demo: tuple[BarArrays, tuple[list[Fraction], ...]], strategy: str, params: dict[str, Any], config: dict[str, Any]
) -> None:
    bars, (o, h, lo, c) = demo
    result = run_vector(strategy, params, bars, fee_bps=10.0, **_engine_args(config))
    signals = signals_for(strategy, params, bars).tolist()
    expected = reference(signals, o, h, lo, c, _costs(config))
    assert len(expected[0]) > 20
    assert_matches(result, expected)


@pytest.mark.parametrize("path", bar_files(),
                         ids=lambda p: p.name)
def test_sma_cross_equals_fraction_reference_on_every_file(path: Path) -> None:
    """Every bar file, SMA(10, 30) long-only at the close and long-short at the next open."""
    bars = BarArrays.from_file(path)
    o, h, lo, c = fractions_of(path)
    if len(c) > 8000:
        bars, o, h, lo, c = bars.slice(0, 8000), o[:8000], h[:8000], lo[:8000], c[:8000]
    signals = signals_for("sma_cross", {"fast": 10, "slow": 30}, bars).tolist()
    for config in ({}, {"long_short": True, "fill": "next_open", "slippage_bps": 2.0}):
        result = run_vector("sma_cross", {"fast": 10, "slow": 30}, bars, cash=10_000.0, fee_bps=10.0, **config)
        expected = reference(signals, o, h, lo, c, _costs(config))
        assert_matches(result, expected)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_simulation_equals_fraction_reference_on_gbm(config: dict[str, Any]) -> None:
    bars = gbm_bars(5_000, seed=11, decimals=None)  # raw float64 prices, taken exactly by the reference
    o, h, lo, c = ([Fraction(x) for x in column.tolist()] for column in (bars.open, bars.high, bars.low, bars.close))
    for strategy, params in STRATEGIES:
        result = run_vector(strategy, params, bars, fee_bps=10.0, **_engine_args(config))
        signals = signals_for(strategy, params, bars).tolist()
        expected = reference(signals, o, h, lo, c, _costs(config))
        assert_matches(result, expected)


def test_fused_and_generic_kernels_agree_bit_for_bit() -> None:
    bars = gbm_bars(200_000, seed=3)
    for config in ({}, {"fill": "next_open", "slippage_bps": 1.0, "fixed_fee": 0.5}, {"whole_units": True},
                   {"fill": "next_open", "whole_units": True}):
        fused = run_vector("sma_cross", {"fast": 7, "slow": 25}, bars, cash=10_000.0, fee_bps=10.0, **config)
        generic = run_vector("sma_cross", {"fast": 7, "slow": 25}, bars, cash=10_000.0, fee_bps=10.0,
                             engine="generic", **config)
        assert fused.fused and not generic.fused
        assert len(fused.records) > 1000
        assert np.array_equal(fused.records, generic.records)
        assert fused.final_equity == generic.final_equity
        assert fused.equity is not None and generic.equity is not None
        assert np.array_equal(fused.equity, generic.equity)


def test_a_losing_strategy_keeps_trading_however_small_equity_gets() -> None:
    """A sawtooth whose every round trip buys high and sells lower, with 10 % fees: equity falls below
    1e-100 and every BUY while flat still enters, to the last cycle (no minimum size, no cut-off)."""
    cycle = [100.0] * 30 + [101.0] * 10 + [99.0] * 10
    cycles = 1500
    close = np.array(cycle * cycles, dtype=np.float64)
    n = len(close)
    bars = BarArrays.from_columns(np.arange(n), close, close, close, close)
    result = run_vector("sma_cross", {"fast": 10, "slow": 30}, bars, cash=10_000.0, fee_bps=1_000.0)
    signals = signals_for("sma_cross", {"fast": 10, "slow": 30}, bars)
    entries, held = [], False
    for i in np.flatnonzero(signals).tolist():
        if signals[i] > 0 and not held:
            entries.append(i)
            held = True
        elif signals[i] < 0 and held:
            held = False
    assert len(entries) == cycles
    assert [t.entry_idx for t in result.trades] == entries
    assert result.trades[-1].entry_idx > n - len(cycle)
    assert all(t.pnl < 0 for t in result.trades)
    assert 0 < result.final_equity < 1e-100
    c = [Fraction(x) for x in close.tolist()]
    assert_matches(result, reference(signals.tolist(), c, c, c, c, costs(10_000.0, 1_000.0)), curve_every=97)


def test_fixed_fee_larger_than_cash_means_no_entry_not_an_error() -> None:
    bars = gbm_bars(5_000, seed=5)
    result = run_vector("sma_cross", {}, bars, cash=10.0, fee_bps=10.0, fixed_fee=20.0)
    assert result.trades == [] and result.final_equity == 10.0


def test_next_open_signal_on_the_last_bar_does_not_fill() -> None:
    close = np.array([10.0] * 30 + [9.0] * 5 + [12.0], dtype=np.float64)  # the cross up is the last bar
    bars = BarArrays.from_columns(np.arange(len(close)), close, close, close, close)
    signals = signals_for("sma_cross", {"fast": 2, "slow": 4}, bars)
    assert signals[-1] == 1
    at_close = run_vector("sma_cross", {"fast": 2, "slow": 4}, bars, cash=100.0, fee_bps=0.0)
    at_open = run_vector("sma_cross", {"fast": 2, "slow": 4}, bars, cash=100.0, fee_bps=0.0, fill="next_open")
    assert at_close.trades[-1].entry_idx == len(close) - 1 and at_close.trades[-1].exit_idx == -1
    assert all(t.entry_idx != len(close) for t in at_open.trades)
    assert all(t.exit_idx != -1 for t in at_open.trades)


def test_stop_gap_fills_at_the_open_and_trades_are_dataclasses() -> None:
    # enter long at the close of bar 4 (100), bar 5 gaps down to open 90 through the 5 % stop (95)
    close = np.array([100, 100, 100, 100, 100, 91, 91, 91], dtype=np.float64)
    open_ = np.array([100, 100, 100, 100, 100, 90, 91, 91], dtype=np.float64)
    high = np.maximum(open_, close) + 0.5
    low = np.minimum(open_, close) - 0.5
    signals = np.zeros(8, dtype=np.int8)
    signals[4] = 1
    records, final, equity = kernels.simulate(signals, open_, high, low, close, 1000.0, 0.0, 0.0, 0.0, False, False,
                                              False, 0.05, 0.0, True)
    assert records["exit_idx"].tolist() == [5] and records["exit_px"].tolist() == [90.0]
    assert final == pytest.approx(900.0)
    assert equity.tolist()[:5] == [1000.0] * 5
    trade = Trade(*records[0].tolist())
    assert trade.exit_px == 90.0 and trade.side == 1


def test_run_vector_validates_its_arguments() -> None:
    bars = gbm_bars(100, seed=1)
    with pytest.raises(ValueError, match="fast"):
        run_vector("sma_cross", {"fast": 30, "slow": 10}, bars, cash=1.0, fee_bps=0.0)
    with pytest.raises(ValueError, match="no vector kernel"):
        run_vector("nope", {}, bars, cash=1.0, fee_bps=0.0)
    with pytest.raises(ValueError, match="fused"):
        run_vector("rsi_reversion", {}, bars, cash=1.0, fee_bps=0.0, engine="fused")
    with pytest.raises(ValueError, match="fill"):
        run_vector("breakout", {}, bars, cash=1.0, fee_bps=0.0, fill="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cash"):
        run_vector("breakout", {}, bars, cash=-1.0, fee_bps=0.0)
