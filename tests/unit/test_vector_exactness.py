"""Vector-mode signals are exact: each kernel equals an independent computation.

* Every OHLCV file under ``data/``: the reference reads the file's Decimal prices, turns them into
  ``Fraction`` and applies the rules as written (means, RSI, max/min of the window), with no fixed
  point and no rolling sums.
* A 10-million-bar seeded GBM series: the kernels (and the fused SMA-cross simulation) against a
  chunked check that is still exact: window sums from int64 prefix sums taken modulo 2**64 (exact,
  since every true window sum fits in int64), then the comparisons in Python ints (numpy object
  arrays), so nothing can overflow.
"""

from __future__ import annotations

import itertools
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.bench.gbm import gbm_bars
from tests.support.data_files import bar_files, non_bar_files
from tradewire_backtest import kernels
from tradewire_backtest.arrays import BarArrays, rsi_factor, to_fixed
from tradewire_backtest.vector import run_vector
from tradewire_datafeed.readers import read_bar_file

DATA = Path(__file__).resolve().parents[2] / "data"
FILES = bar_files()
SMA_PARAMS = [(10, 30), (5, 20), (1, 2)]
RSI_PARAMS = [(14, 30.0, 70.0), (5, 33.3, 66.7)]
BREAKOUT_WINDOWS = [20, 3]


def test_every_data_file_is_covered() -> None:
    others = non_bar_files()
    assert FILES and not others, f"bar files the exactness tests do not read: {others}"


# ------------------------------------------------------------------------- Fraction references


def ref_sma_cross(closes: list[Fraction], fast: int, slow: int) -> list[int]:
    prefix = [Fraction(0), *itertools.accumulate(closes)]
    out = [0] * len(closes)
    prev: int | None = None
    for i in range(slow - 1, len(closes)):
        diff = (prefix[i + 1] - prefix[i + 1 - fast]) / fast - (prefix[i + 1] - prefix[i + 1 - slow]) / slow
        sign = (diff > 0) - (diff < 0)
        if prev is not None:
            if prev <= 0 < sign:
                out[i] = 1
            elif prev >= 0 > sign:
                out[i] = -1
        prev = sign
    return out


def ref_rsi(closes: list[Fraction], window: int, lower: Fraction, upper: Fraction) -> list[int]:
    deltas = [b - a for a, b in itertools.pairwise(closes)]
    gains = [Fraction(0), *itertools.accumulate(max(d, 0) for d in deltas)]
    losses = [Fraction(0), *itertools.accumulate(max(-d, 0) for d in deltas)]
    out = [0] * len(closes)
    prev: Fraction | None = None
    for i in range(window, len(closes)):
        g = gains[i] - gains[i - window]  # changes i-window+1 .. i
        loss = losses[i] - losses[i - window]
        rsi = None if g + loss == 0 else 100 * g / (g + loss)
        if prev is not None and rsi is not None:
            if prev >= lower > rsi:
                out[i] = 1
            elif prev <= upper < rsi:
                out[i] = -1
        prev = rsi
    return out


def ref_breakout(highs: list[Fraction], lows: list[Fraction], closes: list[Fraction], window: int) -> list[int]:
    out = [0] * len(closes)
    for i in range(window, len(closes)):
        if closes[i] > max(highs[i - window : i]):
            out[i] = 1
        elif closes[i] < min(lows[i - window : i]):
            out[i] = -1
    return out


# ------------------------------------------------------------------------- data/ files


@pytest.fixture(scope="module", params=FILES, ids=lambda p: str(p.relative_to(DATA)))
def data_file(request: pytest.FixtureRequest) -> tuple[BarArrays, dict[str, list[Fraction]]]:
    records = read_bar_file(request.param).records
    exact = {name: [Fraction(getattr(r, name)) for r in records] for name in ("high", "low", "close")}
    return BarArrays.from_file(request.param), exact


@pytest.mark.parametrize(("fast", "slow"), SMA_PARAMS)
def test_sma_cross_signals_equal_fractions_on_data(data_file: tuple[BarArrays, dict[str, list[Fraction]]],
                                                   fast: int, slow: int) -> None:
    bars, exact = data_file
    fixed, _ = to_fixed(bars.close, (slow,))
    got = kernels.sma_cross_signals(fixed, fast, slow)
    assert got.tolist() == ref_sma_cross(exact["close"], fast, slow)


@pytest.mark.parametrize(("window", "lower", "upper"), RSI_PARAMS)
def test_rsi_signals_equal_fractions_on_data(data_file: tuple[BarArrays, dict[str, list[Fraction]]],
                                             window: int, lower: float, upper: float) -> None:
    bars, exact = data_file
    lo, up = Fraction(str(lower)), Fraction(str(upper))
    fixed, _ = to_fixed(bars.close, (window,), factor=rsi_factor(window, lo, up))
    got = kernels.rsi_signals(fixed, window, lo.numerator, lo.denominator, up.numerator, up.denominator)
    assert got.tolist() == ref_rsi(exact["close"], window, lo, up)


@pytest.mark.parametrize("window", BREAKOUT_WINDOWS)
def test_breakout_signals_equal_fractions_on_data(data_file: tuple[BarArrays, dict[str, list[Fraction]]],
                                                  window: int) -> None:
    bars, exact = data_file
    got = kernels.breakout_signals(bars.high, bars.low, bars.close, window)
    assert got.tolist() == ref_breakout(exact["high"], exact["low"], exact["close"], window)


def test_signals_fire_on_the_real_data() -> None:
    """Guard against vacuous equality: the demo file produces many signals of every kind."""
    bars = BarArrays.from_file(DATA / "demo" / "btcusdt-perp-1m-2022-01.csv")
    fixed, _ = to_fixed(bars.close, (30,))
    for signals in (kernels.sma_cross_signals(fixed, 10, 30), kernels.rsi_signals(fixed, 14, 30, 1, 70, 1),
                    kernels.breakout_signals(bars.high, bars.low, bars.close, 20)):
        assert (signals == 1).sum() > 100 and (signals == -1).sum() > 100


# ------------------------------------------------------------------------- 10M bars

N_LARGE = 10_000_000
CHUNK = 1_000_000


@pytest.fixture(scope="module")
def large() -> BarArrays:
    return gbm_bars(N_LARGE, seed=20260101)


def window_sums(values: np.ndarray, window: int) -> np.ndarray:
    """``out[i] = values[i-window+1] + ... + values[i]`` for ``i >= window - 1`` (int64, exact).

    Prefix sums modulo 2**64 (uint64 wraps by definition): a difference of two prefix sums is the
    window sum modulo 2**64, and is that sum exactly whenever the sum fits in int64."""
    prefix = np.zeros(len(values) + 1, dtype=np.uint64)
    np.cumsum(values.view(np.uint64), out=prefix[1:])
    return (prefix[window:] - prefix[:-window]).view(np.int64)


def sample_window_sums_are_exact(values: np.ndarray, sums: np.ndarray, window: int) -> None:
    rng = np.random.default_rng(1)
    for i in rng.integers(window - 1, len(values), 200).tolist():
        assert int(sums[i - window + 1]) == sum(int(v) for v in values[i - window + 1 : i + 1].tolist())


def crossings(sign: np.ndarray) -> np.ndarray:
    """BUY (+1) where ``sign`` goes from <= 0 to > 0, SELL (-1) from >= 0 to < 0 (at the later index)."""
    prev, cur = sign[:-1], sign[1:]
    out = np.zeros(len(sign), dtype=np.int8)
    out[1:][(prev <= 0) & (cur > 0)] = 1
    out[1:][(prev >= 0) & (cur < 0)] = -1
    return out


def ref_sma_large(fixed: np.ndarray, fast: int, slow: int) -> np.ndarray:
    fast_sums = window_sums(fixed, fast)[slow - fast :]  # aligned: index 0 is bar slow - 1
    slow_sums = window_sums(fixed, slow)
    sample_window_sums_are_exact(fixed, window_sums(fixed, slow), slow)
    sign = np.empty(len(slow_sums), dtype=np.int8)
    for start in range(0, len(sign), CHUNK):
        f = fast_sums[start : start + CHUNK].astype(object) * slow
        s = slow_sums[start : start + CHUNK].astype(object) * fast
        sign[start : start + CHUNK] = (f > s).astype(np.int8) - (f < s).astype(np.int8)
    out = np.zeros(len(fixed), dtype=np.int8)
    out[slow - 1 :] = crossings(sign)
    return out


def ref_rsi_large(fixed: np.ndarray, window: int, lower: Fraction, upper: Fraction) -> np.ndarray:
    delta = np.diff(fixed)
    gains = window_sums(np.maximum(delta, 0), window)  # index 0: changes 1..window, i.e. bar `window`
    losses = window_sums(np.maximum(-delta, 0), window)
    m = len(gains)
    defined = np.empty(m, dtype=bool)
    below = np.empty(m, dtype=bool)
    above = np.empty(m, dtype=bool)
    for start in range(0, m, CHUNK):
        g = gains[start : start + CHUNK].astype(object)
        total = g + losses[start : start + CHUNK].astype(object)
        defined[start : start + CHUNK] = total != 0
        below[start : start + CHUNK] = g * (100 * lower.denominator) < total * lower.numerator
        above[start : start + CHUNK] = g * (100 * upper.denominator) > total * upper.numerator
    both = defined[1:] & defined[:-1]
    out = np.zeros(len(fixed), dtype=np.int8)
    buy = both & below[1:] & ~below[:-1]
    sell = both & above[1:] & ~above[:-1] & ~buy
    out[window + 1 :][buy] = 1
    out[window + 1 :][sell] = -1
    return out


def ref_breakout_large(bars: BarArrays, window: int) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    top = sliding_window_view(bars.high, window)[:-1].max(axis=1)  # highs i-window .. i-1 for i >= window
    bottom = sliding_window_view(bars.low, window)[:-1].min(axis=1)
    close = bars.close[window:]
    out = np.zeros(len(bars.close), dtype=np.int8)
    out[window:][close > top] = 1
    out[window:][(close < bottom) & ~(close > top)] = -1
    return out


def long_only_trades(signals: np.ndarray) -> list[tuple[int, int]]:
    """(entry, exit) bar indices of the long-only, fill-at-close state machine (exit -1 if open)."""
    trades: list[tuple[int, int]] = []
    entry = -1
    for i in np.flatnonzero(signals).tolist():
        if signals[i] > 0 and entry < 0:
            entry = i
        elif signals[i] < 0 and entry >= 0:
            trades.append((entry, i))
            entry = -1
    if entry >= 0:
        trades.append((entry, -1))
    return trades


def float_equity(trades: list[tuple[int, int]], close: np.ndarray, cash: float, fee_rate: float) -> float:
    """The all-in, fill-at-close arithmetic replayed in plain Python floats over the trades."""
    qty = 0.0
    for entry, exit_ in trades:
        c = float(close[entry])
        qty = cash / (c * (1.0 + 0.0) * (1.0 + fee_rate))
        cash -= qty * c + qty * c * fee_rate
        if exit_ >= 0:
            c = float(close[exit_])
            cash += qty * c - qty * c * fee_rate
            qty = 0.0
    return cash + qty * float(close[-1])


def test_ten_million_bars_sma_cross_signals_and_fused_simulation_are_exact(large: BarArrays) -> None:
    started = time.perf_counter()
    fixed, scale = to_fixed(large.close, (30,))
    assert scale >= 10**2  # the GBM has 2 decimals: fixed point is exact
    assert np.array_equal(fixed, np.round(large.close * 100).astype(np.int64) * (scale // 100))
    expected = ref_sma_large(fixed, 10, 30)
    got = kernels.sma_cross_signals(fixed, 10, 30)
    assert np.array_equal(got, expected)
    assert (expected != 0).sum() > 100_000
    assert (large.close[1:] == large.close[:-1]).any()  # ties happen (2-decimal prices)

    result = run_vector("sma_cross", {"fast": 10, "slow": 30}, large, cash=10_000.0, fee_bps=10.0,
                        equity_curve=False)
    assert result.fused and result.equity is None and result.bars == N_LARGE
    trades = long_only_trades(expected)
    records = result.records
    assert len(records) == len(trades)
    assert records["entry_idx"].tolist() == [t[0] for t in trades]
    assert records["exit_idx"].tolist() == [t[1] for t in trades]
    assert (records["side"] == 1).all()
    reference = float_equity(trades, large.close, 10_000.0, 0.001)
    assert result.final_equity == pytest.approx(reference, rel=1e-9)
    assert result.final_equity > 0  # ~190k losing round trips: tiny, but still trading
    generic = run_vector("sma_cross", {"fast": 10, "slow": 30}, large, cash=10_000.0, fee_bps=10.0,
                         equity_curve=False, engine="generic")
    assert np.array_equal(generic.records, records) and generic.final_equity == result.final_equity
    assert time.perf_counter() - started < 60


def test_ten_million_bars_rsi_and_breakout_signals_are_exact(large: BarArrays) -> None:
    lower, upper = Fraction(30), Fraction(70)
    fixed, _ = to_fixed(large.close, (14,), factor=rsi_factor(14, lower, upper))
    got = kernels.rsi_signals(fixed, 14, 30, 1, 70, 1)
    expected = ref_rsi_large(fixed, 14, lower, upper)
    assert np.array_equal(got, expected)
    assert (expected == 1).sum() > 10_000 and (expected == -1).sum() > 10_000

    got = kernels.breakout_signals(large.high, large.low, large.close, 20)
    expected = ref_breakout_large(large, 20)
    assert np.array_equal(got, expected)
    assert (expected == 1).sum() > 10_000 and (expected == -1).sum() > 10_000
