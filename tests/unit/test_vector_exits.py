"""Vector mode's trailing and time stops (``kernels.simulate_exits``): the paper venue's rules, bar by bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tradewire_backtest import kernels
from tradewire_backtest.arrays import BarArrays
from tradewire_backtest.config import BacktestSpec, build_config
from tradewire_backtest.vector import run_vector

MINUTE = 60_000_000_000


def run(bars: list[tuple[float, float, float, float]], signals: dict[int, int], *, trailing: float = 0.0,
        time_stop_s: int = 0, stop_loss: float = 0.0, take_profit: float = 0.0, next_open: bool = False,
        long_short: bool = False) -> list[tuple[int, int, int, float]]:
    """``(entry_idx, exit_idx, side, exit_px to 9 decimals)`` of each trade; bars are ``(open, high, low,
    close)``, a minute apart."""
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*bars, strict=True))
    sig = np.zeros(len(bars), dtype=np.int8)
    for i, s in signals.items():
        sig[i] = s
    ts = np.arange(len(bars), dtype=np.int64) * MINUTE
    records, _, _ = kernels.simulate_exits(sig, ts, o, h, lo, c, 1000.0, 0.0, 0.0, 0.0, next_open, long_short, False,
                                           stop_loss, take_profit, trailing, time_stop_s * 1_000_000_000, False)
    return [(int(r["entry_idx"]), int(r["exit_idx"]), int(r["side"]), round(float(r["exit_px"]), 9)) for r in records]


FLAT = (100.0, 100.0, 100.0, 100.0)


def test_a_long_trail_follows_the_previous_bars_highs_and_fires_at_the_trail() -> None:
    bars = [FLAT, (100, 110, 95, 108), (108, 112, 99.01, 110), (110, 111, 100.8, 101), FLAT]
    # entry 100 at bar 0's close; bar 1: trail 90; bar 2: 99 (110 * 0.9); bar 3: 100.8 (112 * 0.9) is hit
    assert run(bars, {0: 1}, trailing=0.1) == [(0, 3, 1, 100.8)]


def test_a_bars_own_high_does_not_move_the_trail_its_low_is_tested_against() -> None:
    bars = [FLAT, (120, 130, 110, 120), (120, 121, 117, 118), FLAT]
    assert run(bars, {0: 1}, trailing=0.1) == [(0, 2, 1, 117.0)]


def test_a_trail_gapped_through_exits_at_the_open_and_a_lower_high_never_lowers_it() -> None:
    bars = [FLAT, (100, 120, 100, 115), (115, 116, 108.5, 110), (101, 102, 100, 101)]
    assert run(bars, {0: 1}, trailing=0.1) == [(0, 3, 1, 101.0)]


def test_a_short_trail_follows_the_lowest_low() -> None:
    bars = [FLAT, (100, 105, 80, 85), (85, 87.99, 82, 86), (86, 88, 85, 87), FLAT]
    assert run(bars, {0: -1}, trailing=0.1, long_short=True) == [(0, 3, -1, 88.0)]


def test_the_tighter_of_stop_loss_and_trail_is_the_stop() -> None:
    bars = [FLAT, (100, 100, 95.5, 100), (100, 100, 95, 100)]
    assert run(bars, {0: 1}, trailing=0.05, stop_loss=0.1) == [(0, 2, 1, 95.0)]
    assert run(bars, {0: 1}, trailing=0.1, stop_loss=0.05) == [(0, 2, 1, 95.0)]
    assert run(bars, {0: 1}, trailing=0.1) == [(0, -1, 1, 0.0)]  # 90 is never reached


def test_after_a_next_open_entry_the_fill_bar_is_checked_against_the_entry() -> None:
    bars = [FLAT, (100, 150, 98, 120), FLAT]
    assert run(bars, {0: 1}, trailing=0.02, next_open=True) == [(1, 1, 1, 98.0)]


def test_a_time_stop_exits_at_the_open_of_the_first_bar_at_the_deadline() -> None:
    bars = [FLAT, (101, 101, 101, 101), (102, 110, 90, 103), FLAT]
    assert run(bars, {0: 1}, time_stop_s=120) == [(0, 2, 1, 102.0)]  # entry bar 0 (t = 0): deadline t = 2 min
    assert run(bars, {0: 1}, time_stop_s=61) == [(0, 2, 1, 102.0)]
    assert run(bars, {0: 1}, time_stop_s=60) == [(0, 1, 1, 101.0)]


def test_a_time_stop_counts_from_the_next_open_fill() -> None:
    bars = [FLAT, FLAT, (102, 102, 102, 102), FLAT]
    assert run(bars, {0: 1}, time_stop_s=60, next_open=True) == [(1, 2, 1, 102.0)]


def test_the_time_stop_fires_at_the_open_before_a_stop_in_the_same_bar() -> None:
    bars = [FLAT, (99, 99, 90, 95), FLAT]
    assert run(bars, {0: 1}, time_stop_s=60, stop_loss=0.02) == [(0, 1, 1, 99.0)]


def test_simulate_without_the_new_exits_equals_simulate_exits_with_them_off() -> None:
    rng = np.random.default_rng(3)
    close = 100 + np.cumsum(rng.normal(0, 1, 300))
    open_ = np.concatenate(([100.0], close[:-1]))
    high, low = np.maximum(open_, close) + 0.5, np.minimum(open_, close) - 0.5
    sig = np.zeros(300, dtype=np.int8)
    sig[::17], sig[8::17] = 1, -1
    plain = kernels.simulate(sig, open_, high, low, close, 1000.0, 0.001, 0.5, 0.0002, True, True, False, 0.02, 0.03,
                             True)
    again = kernels.simulate_exits(sig, np.empty(0, dtype=np.int64), open_, high, low, close, 1000.0, 0.001, 0.5,
                                   0.0002, True, True, False, 0.02, 0.03, 0.0, 0, True)
    assert plain[0].tolist() == again[0].tolist() and plain[1] == again[1]


def test_run_vector_refuses_bad_trailing_and_time_stops() -> None:
    bars = BarArrays(np.arange(40, dtype=np.int64) * MINUTE, *(np.full(40, 100.0) for _ in range(5)))
    with pytest.raises(ValueError, match="trailing_stop is a fraction below 1"):
        run_vector("sma_cross", {}, bars, cash=1.0, fee_bps=0.0, trailing_stop=1.0)
    with pytest.raises(ValueError, match="time_stop_s must be a finite number >= 0"):
        run_vector("sma_cross", {}, bars, cash=1.0, fee_bps=0.0, time_stop_s=-1)
    assert not run_vector("sma_cross", {}, bars, cash=1.0, fee_bps=0.0, trailing_stop=0.1).fused


def test_the_backtest_spec_validates_the_new_exits_and_gives_them_to_risk() -> None:
    data = Path(__file__)
    with pytest.raises(ValueError, match="trailing_stop"):
        BacktestSpec(data=data, strategy="sma_cross", params={}, trailing_stop=1.0)
    with pytest.raises(ValueError, match="time_stop_s"):
        BacktestSpec(data=data, strategy="sma_cross", params={}, time_stop_s=-1)
    spec = BacktestSpec(data=data, strategy="sma_cross", params={}, sizing="all-in", trailing_stop=0.03,
                        time_stop_s=3600)
    assert spec.vector_unsupported() == []  # vector mode simulates them
    risk = build_config(spec).risk
    assert (risk.trailing_stop_pct, risk.time_stop_s) == (0.03, 3600)
