"""The overfitting guards behind ``tradewire sweep``, on the vector engine.

A sweep picks the best of N trials, so its best figure is flattered by the choice itself. This
module turns the research tools into reports that say how much:

* :func:`select` sweeps one window and keeps what the guards need from every trial: per-bar
  Sharpe, skew and kurtosis (for the deflated Sharpe ratio) and, within a memory budget, the
  per-bar return matrix (for the probability of backtest overfitting, CSCV);
* :func:`deflated_sharpe` and :func:`backtest_overfitting` report them, or why they were skipped;
* :func:`stitch_out_of_sample` replays each walk-forward fold's chosen parameters on its test
  window with the capital carried from the previous fold, giving one out-of-sample equity curve.

Every window is backtested on its own: the strategy starts flat with empty indicators at the
window's first bar (no warm-up from earlier bars), so a test window never reads a training bar.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from tradewire_backtest.arrays import BarArrays
from tradewire_backtest.metrics import Metrics, bar_returns, compute_metrics
from tradewire_backtest.overfitting import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
)
from tradewire_backtest.research import Params, Result, Sweep, Window, sweep

if TYPE_CHECKING:
    from tradewire_backtest.research import Objective, WalkForwardResult
    from tradewire_backtest.vector import VectorResult

FloatArray = npt.NDArray[np.float64]

#: The largest return matrix (bars × trials) kept for PBO: 50 M float64 cells, 400 MB.
MAX_PBO_CELLS = 50_000_000


class TradeRow(NamedTuple):
    """One kernel trade record as a plain tuple (a ``TradeLike`` for the metrics)."""

    entry_idx: int
    exit_idx: int
    side: int
    qty: float
    entry_px: float
    exit_px: float
    pnl: float
    fees: float


def trade_rows(records: np.ndarray) -> list[TradeRow]:
    """The kernel's ``TRADE_DTYPE`` records as tuples: a sweep needs them once per combination only
    for the metrics, and building these costs a fifth of ``VectorResult.trades``' dataclasses."""
    return list(map(TradeRow._make, zip(*(records[name].tolist() for name in TradeRow._fields), strict=True)))


@dataclass(frozen=True, slots=True)
class ReturnStats:
    """Per-bar (not annualised) Sharpe, skew and Pearson kurtosis of one run's bar returns."""

    sharpe: float
    skew: float
    kurtosis: float
    n_obs: int

    @classmethod
    def of(cls, returns: FloatArray) -> ReturnStats:
        n = int(returns.size)
        if n < 2:
            return cls(0.0, 0.0, 3.0, n)
        mean = float(returns.mean())
        centred = returns - mean
        c2 = centred * centred  # elementwise products: ** 3 and np.dot (threaded BLAS) are 20x slower here
        m2 = float(c2.mean())
        if not m2 > 0:  # never traded, or a constant return: Sharpe 0 as in Metrics
            return cls(0.0, 0.0, 3.0, n)
        sharpe = mean / math.sqrt(m2 * n / (n - 1))  # std with ddof=1
        return cls(sharpe, float((c2 * centred).mean()) / m2**1.5, float((c2 * c2).mean()) / m2**2, n)


@dataclass
class VectorEvaluator:
    """``evaluate(params, start, stop)`` for the research tools, on :func:`run_vector`.

    ``options`` are run_vector's keyword arguments (cash, fees, fill, realism options). Invalid
    parameter combinations (``fast >= slow``) score ``-inf`` and their reason is kept in
    ``invalid``; a bad option raises ValueError. After each call ``last`` holds that run's bar
    returns (None for an invalid combination).
    """

    bars: BarArrays
    strategy: str
    options: dict[str, Any]
    bars_per_year: float
    invalid: dict[str, str] = field(default_factory=dict)
    last: FloatArray | None = None

    def check(self, params: Params) -> str | None:
        """Why ``params`` is not a valid combination for the strategy, or None."""
        from tradewire_backtest.vector import strategy_params

        key = json.dumps(params, sort_keys=True)
        if key not in self.invalid:
            try:
                strategy_params(self.strategy, params)
                self.invalid[key] = ""
            except ValueError as exc:
                self.invalid[key] = str(exc)
        return self.invalid[key] or None

    def run(self, params: Params, start: int, stop: int, **overrides: Any) -> VectorResult:
        from tradewire_backtest.vector import run_vector

        return run_vector(self.strategy, params, self.bars.slice(start, stop), **{**self.options, **overrides})

    def __call__(self, params: Params, start: int, stop: int) -> Result:
        self.last = None
        if self.check(params) is not None:
            return -math.inf
        result = self.run(params, start, stop)
        assert result.equity is not None
        self.last = bar_returns(result.equity)
        return compute_metrics(result.equity, self.bars.ts[start:stop], trade_rows(result.records),
                               bars_per_year=self.bars_per_year)


@dataclass(frozen=True)
class Selection:
    """One sweep on one window, with each trial's return statistics (None: invalid trial)."""

    sweep: Sweep
    stats: tuple[ReturnStats | None, ...]
    #: ``(bars - 1) × valid trials`` bar returns (a transposed view), or None when not kept.
    returns: FloatArray | None
    returns_skipped: str | None

    @property
    def best_index(self) -> int:
        best = self.sweep.best
        return next(i for i, t in enumerate(self.sweep.trials) if t is best)

    @property
    def valid(self) -> int:
        return sum(s is not None for s in self.stats)


def select(
    evaluate: VectorEvaluator,
    candidates: Sequence[Params],
    window: Window,
    *,
    objective: Objective,
    progress: bool = False,
    keep_returns: bool = True,
) -> Selection:
    """Sweep ``candidates`` on ``window`` (research.sweep), keeping the guards' inputs."""
    rows = max(window.size - 1, 0)
    valid = sum(evaluate.check(p) is None for p in candidates)
    skipped = None
    if keep_returns and rows * valid > MAX_PBO_CELLS:
        skipped = f"{rows} bars x {valid} trials exceed the {MAX_PBO_CELLS:,}-cell return matrix budget"
    # one row per trial, so each run's returns are written contiguously; PBO reads the transpose
    matrix = np.empty((valid, rows), dtype=np.float64) if keep_returns and skipped is None else None
    stats: list[ReturnStats | None] = []
    column = iter(range(valid))

    def recording(params: Params, start: int, stop: int) -> Result:
        result = evaluate(params, start, stop)
        returns = evaluate.last
        stats.append(None if returns is None else ReturnStats.of(returns))
        if returns is not None and matrix is not None:
            matrix[next(column)] = returns
        return result

    outcome = sweep(recording, candidates, window.start, window.stop, objective=objective, progress=progress)
    returns = None if matrix is None else matrix.T
    return Selection(outcome, tuple(stats), returns, skipped if keep_returns else "not requested")


def deflated_sharpe(selection: Selection) -> dict[str, Any]:
    """The deflated Sharpe ratio of the selected (best) trial given the number of valid trials.

    ``sharpe_std_per_bar`` is the standard deviation of the valid trials' per-bar Sharpe ratios,
    the formula's σ_SR; ``expected_max_sharpe_per_bar`` is SR0, what the best of that many
    zero-skill trials would show; ``psr`` is the probabilistic Sharpe ratio against 0.
    """
    sharpes = np.array([s.sharpe for s in selection.stats if s is not None], dtype=np.float64)
    best = selection.stats[selection.best_index]
    out: dict[str, Any] = {"trials": int(sharpes.size), "dsr": None, "skipped": None}
    if best is None:
        return {**out, "skipped": "no valid trial"}
    std = float(np.std(sharpes, ddof=1)) if sharpes.size > 1 else 0.0
    out.update(sharpe_per_bar=best.sharpe, sharpe_std_per_bar=std, skew=best.skew, kurtosis=best.kurtosis,
               n_obs=best.n_obs)
    if best.n_obs < 2:
        return {**out, "skipped": f"{best.n_obs} bar return(s): the ratio needs at least 2"}
    try:
        psr = probabilistic_sharpe_ratio(best.sharpe, best.n_obs, best.skew, best.kurtosis)
        dsr = deflated_sharpe_ratio(best.sharpe, int(sharpes.size), best.n_obs, best.skew, best.kurtosis, std)
    except ValueError as exc:
        return {**out, "skipped": str(exc)}
    return {**out, "expected_max_sharpe_per_bar": expected_max_sharpe(int(sharpes.size), std), "psr": psr,
            "dsr": dsr}


def backtest_overfitting(selection: Selection, n_splits: int) -> dict[str, Any]:
    """PBO by CSCV over the valid trials' bar returns (in-sample choice by per-bar Sharpe)."""
    out: dict[str, Any] = {"pbo": None, "splits": n_splits, "trials": selection.valid,
                           "combinations": math.comb(n_splits, n_splits // 2), "skipped": None}
    m = selection.returns
    if selection.valid < 2:
        return {**out, "skipped": f"{selection.valid} valid trial(s): PBO compares at least 2"}
    if m is None:
        return {**out, "skipped": selection.returns_skipped}
    if m.shape[0] < 2 * n_splits:
        return {**out, "skipped": f"{m.shape[0]} bar returns are too few for {n_splits} blocks "
                                  f"(at least {2 * n_splits} needed)"}
    return {**out, "pbo": probability_of_backtest_overfitting(m, n_splits)}


@dataclass(frozen=True)
class Stitched:
    """The out-of-sample equity curve of a walk-forward, folds in time order."""

    equity: FloatArray
    ts: npt.NDArray[np.int64]
    trades: list[TradeRow]
    metrics: Metrics


def stitch_out_of_sample(evaluate: VectorEvaluator, result: WalkForwardResult) -> Stitched:
    """Replay each fold's chosen params on its test window, starting with the equity the previous
    fold ended with, and concatenate. A position open at the end of a test window is marked to its
    last close (no exit fee) and the next fold starts flat; test windows must not overlap."""
    capital = float(evaluate.options["cash"])
    curves: list[FloatArray] = []
    trades: list[TradeRow] = []
    offset = 0
    for n, fold in enumerate(result.folds):
        test = fold.fold.test
        run = evaluate.run(fold.params, test.start, test.stop, cash=max(capital, 0.0))
        assert run.equity is not None
        last = n == len(result.folds) - 1
        close = float(evaluate.bars.close[test.stop - 1])
        for t in trade_rows(run.records):
            exit_idx, exit_px, pnl = t.exit_idx, t.exit_px, t.pnl
            if exit_idx < 0 and not last:  # marked to the window's last close
                exit_idx, exit_px = test.size - 1, close
                pnl = t.side * (close - t.entry_px) * t.qty - t.fees
            trades.append(TradeRow(t.entry_idx + offset, exit_idx + offset if exit_idx >= 0 else -1, t.side, t.qty,
                                t.entry_px, exit_px, pnl, t.fees))
        curves.append(run.equity)
        capital = float(run.equity[-1])
        offset += test.size
    equity = np.concatenate(curves)
    ts = np.concatenate([evaluate.bars.ts[w.slice] for w in result.oos_windows])
    return Stitched(equity, ts, trades, compute_metrics(equity, ts, trades, bars_per_year=evaluate.bars_per_year))
