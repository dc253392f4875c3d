"""Backtest metrics: every expected value is computed independently (by hand or with pandas)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from tradewire_backtest.metrics import (
    YEAR_NS,
    Metrics,
    TradeLike,
    compute_metrics,
    drawdown,
    drawdown_durations,
    infer_bars_per_year,
    side_sign,
)

DAY = 86_400 * 10**9
MINUTE = 60 * 10**9
T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z


@dataclass(frozen=True)
class Tr:
    entry_idx: int
    exit_idx: int
    side: int | str
    qty: float
    entry_px: float
    exit_px: float
    pnl: float
    fees: float


def closed(pnl: float, entry: int = 0, exit_: int = 1, *, qty: float = 1.0, px: float = 100.0) -> Tr:
    return Tr(entry, exit_, 1, qty, px, px + pnl / qty, pnl, 0.0)


def daily(n: int) -> np.ndarray:
    return T0 + np.arange(n, dtype=np.int64) * DAY


def metrics_of(equity: list[float] | np.ndarray, trades: Sequence[TradeLike] = (), **kw: float) -> Metrics:
    eq = np.asarray(equity, dtype=np.float64)
    return compute_metrics(eq, daily(len(eq)), trades, **kw)


# -- returns and annualisation ----------------------------------------------------------------


def test_bars_per_year_is_inferred_from_the_median_step_with_365_25_day_years() -> None:
    ts = T0 + np.arange(100, dtype=np.int64) * 3_600 * 10**9
    ts[50:] += 7 * DAY  # one weekend-like gap does not move the median
    assert infer_bars_per_year(ts) == pytest.approx(365.25 * 24)
    assert YEAR_NS == 365.25 * DAY
    assert math.isnan(infer_bars_per_year(ts[:1]))


def test_duplicate_timestamps_cannot_be_annualised_without_an_explicit_bars_per_year() -> None:
    with pytest.raises(ValueError, match="bars_per_year"):
        compute_metrics(np.ones(5), np.full(5, T0, dtype=np.int64), [])
    assert compute_metrics(np.ones(5), np.full(5, T0, dtype=np.int64), [], bars_per_year=252).sharpe == 0.0


def test_total_return_and_cagr_of_a_curve_that_doubles_in_one_year() -> None:
    eq = np.linspace(100.0, 200.0, 366)  # 365 daily steps
    m = metrics_of(eq, bars_per_year=365)
    assert m.total_return == pytest.approx(1.0)
    assert m.years == pytest.approx(1.0)
    assert m.cagr == pytest.approx(1.0)
    inferred = metrics_of(eq)  # 365 steps of a 365.25-day year: slightly less than a year
    assert inferred.cagr == pytest.approx(2.0 ** (365.25 / 365) - 1)


def test_sharpe_sortino_and_volatility_match_an_independent_pandas_computation() -> None:
    rng = np.random.default_rng(7)
    eq = 1000 * np.cumprod(1 + rng.normal(0.001, 0.02, 500))
    m = metrics_of(eq)
    r = pd.Series(eq).pct_change().dropna()
    ann = math.sqrt(365.25)
    assert m.volatility == pytest.approx(r.std() * ann)
    assert m.sharpe == pytest.approx(r.mean() / r.std() * ann)
    downside = math.sqrt((r.clip(upper=0) ** 2).mean())
    assert m.sortino == pytest.approx(r.mean() / downside * ann)
    years = (len(eq) - 1) / 365.25
    cagr = (eq[-1] / eq[0]) ** (1 / years) - 1
    assert m.cagr == pytest.approx(cagr)
    peak = pd.Series(eq).cummax()
    assert m.max_drawdown == pytest.approx((1 - pd.Series(eq) / peak).max())
    assert m.calmar == pytest.approx(cagr / m.max_drawdown)


def test_the_risk_free_rate_is_compounded_per_bar_and_lowers_the_sharpe() -> None:
    rng = np.random.default_rng(3)
    eq = 1000 * np.cumprod(1 + rng.normal(0.001, 0.01, 300))
    m0, m5 = metrics_of(eq), metrics_of(eq, risk_free=0.05)
    r = np.diff(eq) / eq[:-1]
    rf = 1.05 ** (1 / 365.25) - 1
    assert m5.sharpe == pytest.approx((r - rf).mean() / r.std(ddof=1) * math.sqrt(365.25))
    assert m5.sharpe < m0.sharpe
    assert m5.volatility == pytest.approx(m0.volatility)


def test_flat_equity_has_zero_sharpe_sortino_and_volatility_not_nan() -> None:
    m = metrics_of([100.0] * 50)
    assert (m.sharpe, m.sortino, m.volatility, m.calmar) == (0.0, 0.0, 0.0, 0.0)
    assert (m.total_return, m.cagr, m.max_drawdown, m.max_drawdown_bars) == (0.0, 0.0, 0.0, 0)
    assert m.to_dict()["sharpe"] == 0.0


def test_a_curve_without_losing_bars_has_an_infinite_sortino_reported_as_none() -> None:
    m = metrics_of([100.0, 101.0, 103.0, 103.0, 107.0])
    assert m.sortino == math.inf
    assert m.to_dict()["sortino"] is None
    assert m.calmar == math.inf  # no drawdown at all


def test_a_one_bar_series_gives_neutral_metrics_instead_of_failing() -> None:
    m = compute_metrics(np.array([1000.0]), np.array([T0], dtype=np.int64), [])
    assert (m.total_return, m.cagr, m.sharpe, m.sortino, m.volatility, m.max_drawdown) == (0, 0, 0, 0, 0, 0)
    assert m.bars == 1
    assert m.to_dict()["bars_per_year"] is None  # nothing to infer it from
    json.dumps(m.to_dict(), allow_nan=False)


def test_no_bars_or_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least one bar"):
        compute_metrics(np.zeros(0), np.zeros(0, dtype=np.int64), [])
    with pytest.raises(ValueError, match="ts has"):
        compute_metrics(np.ones(3), daily(2), [])


def test_a_wiped_out_account_has_a_cagr_of_minus_one() -> None:
    m = metrics_of([100.0, 50.0, 0.0, 0.0])
    assert m.total_return == -1.0
    assert m.cagr == -1.0
    assert m.max_drawdown == 1.0


# -- drawdown ---------------------------------------------------------------------------------


def test_max_drawdown_is_the_largest_fall_from_a_running_peak_as_a_positive_fraction() -> None:
    eq = [100.0, 120.0, 90.0, 110.0, 60.0, 130.0]
    assert metrics_of(eq).max_drawdown == pytest.approx(1 - 60 / 120)
    np.testing.assert_allclose(drawdown(eq), [0, 0, 0.25, 1 - 110 / 120, 0.5, 0])


def test_max_drawdown_duration_counts_bars_until_recovery() -> None:
    eq = [100.0, 90.0, 95.0, 100.0, 110.0]  # peak at bar 0, back at 100 on bar 3
    m = compute_metrics(np.array(eq), T0 + np.arange(5, dtype=np.int64) * MINUTE, [])
    assert m.max_drawdown_bars == 3
    assert m.max_drawdown_seconds == 180.0


def test_an_unrecovered_drawdown_lasts_until_the_last_bar() -> None:
    eq = [100.0, 110.0, 105.0, 100.0, 108.0]  # peak at bar 1, never regained
    assert drawdown_durations(eq) == (3, 0.0)


def test_the_longest_drawdown_is_reported_even_when_another_is_deeper() -> None:
    eq = [100.0, 50.0, 100.0, 99.0, 99.0, 99.0, 99.0, 100.0]  # deep: bars 0→2; long: bars 2→7
    m = metrics_of(eq)
    assert m.max_drawdown == 0.5
    assert m.max_drawdown_bars == 5


def test_drawdown_duration_in_seconds_follows_the_timestamps_not_the_bar_count() -> None:
    ts = np.array([0, 60, 120, 10_000, 10_060, 10_120], dtype=np.int64) * 10**9 + T0
    eq = np.array([100.0, 90.0, 100.0, 95.0, 100.0, 101.0])  # two 2-bar spells, the second over a gap
    assert drawdown_durations(eq, ts) == (2, 10_060 - 120)


# -- trades -----------------------------------------------------------------------------------


def test_trade_statistics_of_closed_trades_and_the_kelly_inputs() -> None:
    trades = [closed(30), closed(-10), closed(20), closed(-20), closed(0),
              Tr(5, -1, 1, 1.0, 100.0, 0.0, -1.0, 1.0)]  # still open: counted as a trade, not in the stats
    m = metrics_of([100.0] * 10, trades)
    assert (m.trades, m.closed_trades) == (6, 5)
    assert m.win_rate == pytest.approx(2 / 5)  # a breakeven trade is not a win
    assert m.profit_factor == pytest.approx(50 / 30)
    assert m.expectancy == pytest.approx((30 - 10 + 20 - 20 + 0) / 5)
    assert m.avg_win == pytest.approx(25.0) and m.avg_loss == pytest.approx(15.0)
    assert m.win_loss_ratio == pytest.approx(25 / 15)
    assert m.kelly_inputs() == pytest.approx((0.4, 25 / 15))


def test_all_winning_trades_give_an_infinite_profit_factor_reported_as_none_in_json() -> None:
    m = metrics_of([100.0, 101.0, 102.0], [closed(5), closed(7)])
    assert m.profit_factor == math.inf
    assert m.win_loss_ratio == math.inf
    d = m.to_dict()
    assert d["profit_factor"] is None and d["win_loss_ratio"] is None
    assert d["win_rate"] == 1.0
    json.dumps(d, allow_nan=False)


def test_no_trades_gives_zero_counts_and_an_undefined_profit_factor() -> None:
    m = metrics_of([100.0, 102.0, 101.0])
    assert (m.trades, m.closed_trades, m.win_rate, m.expectancy, m.exposure, m.turnover) == (0, 0, 0, 0, 0, 0)
    assert math.isnan(m.profit_factor)
    assert m.to_dict()["profit_factor"] is None
    assert all(type(v) in (int, float) or v is None for v in m.to_dict().values())


def test_exposure_counts_bars_from_entry_to_before_exit_and_open_trades_to_the_end() -> None:
    trades = [Tr(2, 5, 1, 1, 1, 1, 0, 0), Tr(8, -1, -1, 1, 1, 1, 0, 0)]  # bars 2, 3, 4 and 8, 9
    assert metrics_of([100.0] * 10, trades).exposure == pytest.approx(5 / 10)


def test_overlapping_positions_count_each_bar_once_and_a_same_bar_round_trip_counts_one() -> None:
    trades = [Tr(1, 4, 1, 1, 1, 1, 0, 0), Tr(2, 6, 1, 1, 1, 1, 0, 0), Tr(8, 8, 1, 1, 1, 1, 0, 0)]
    assert metrics_of([100.0] * 10, trades).exposure == pytest.approx((5 + 1) / 10)  # bars 1..5 and 8


def test_turnover_is_traded_notional_over_mean_equity() -> None:
    trades = [Tr(0, 2, 1, 2.0, 100.0, 110.0, 20.0, 0.0), Tr(3, -1, -1, 1.0, 50.0, 0.0, 0.0, 0.0)]
    m = metrics_of([900.0, 1000.0, 1100.0, 1000.0], trades)
    assert m.turnover == pytest.approx((2 * 100 + 2 * 110 + 1 * 50) / 1000.0)


def test_sides_may_be_signs_strings_or_enums() -> None:
    class Side:
        value = "SELL"

    assert [side_sign(s) for s in (1, -1, "BUY", "sell", "LONG", "short", np.int64(-1), Side())] == \
        [1, -1, 1, -1, 1, -1, -1, -1]
    with pytest.raises(ValueError):
        side_sign(0)
    with pytest.raises(ValueError):
        side_sign("HOLD")
    m = metrics_of([100.0, 101.0], [Tr(0, 1, "SELL", 1, 100, 99, 1, 0)])
    assert m.win_rate == 1.0


def test_event_mode_trade_records_satisfy_the_trade_protocol() -> None:
    from tradewire_backtest.event import Trade

    m = metrics_of([100.0, 101.0, 99.0], [Trade(0, 2, 1, 1.0, 100.0, 99.0, -1.5, 0.5)])
    assert (m.trades, m.win_rate, m.avg_loss, m.total_fees) == (1, 0.0, 1.5, 0.5)


def test_to_dict_has_plain_numbers_and_every_field() -> None:
    m = metrics_of(np.linspace(100, 120, 30), [closed(3), closed(-1)])
    d = m.to_dict()
    assert set(d) >= {"total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
                      "max_drawdown_bars", "max_drawdown_seconds", "win_rate", "profit_factor", "expectancy",
                      "avg_win", "avg_loss", "win_loss_ratio", "exposure", "turnover", "trades"}
    assert type(d["trades"]) is int and type(d["max_drawdown_bars"]) is int and type(d["sharpe"]) is float
    assert json.loads(json.dumps(d, allow_nan=False)) == d
