"""Performance metrics of one backtest: an equity curve per bar plus its round-trip trades.

Conventions (all vectorised, so a 10M-bar curve takes well under a second):

* Bar returns ``r_i = E_i / E_{i-1} - 1`` for ``i = 1 .. n-1`` (``0`` where ``E_{i-1} <= 0``).
* ``bars_per_year`` (``A``) defaults to the median timestamp step: ``A = 365.25 days / median(Δts)``,
  the crypto convention (markets open every day, around the clock). Pass ``A`` explicitly for
  session-based markets (252 for daily equity bars). ``years = (n - 1) / A``. CAGR and Calmar of
  runs much shorter than a year extrapolate wildly (-14 % in two days is a CAGR of -100 %).
* The risk-free rate is annual and compounded per bar: ``rf = (1 + risk_free) ** (1 / A) - 1``.
* Ratios whose denominator is zero: the risk ratios (Sharpe, Sortino, Calmar) are ``0`` when the
  numerator is not positive (a flat curve has Sharpe 0, not NaN) and Sortino/Calmar ``inf`` when it
  is; the trade ratios (profit factor, win/loss ratio) are ``inf`` for wins without losses and NaN
  when undefined (no closed trades). :meth:`Metrics.to_dict` reports every non-finite value as None.
* Trade statistics use closed trades (``exit_idx >= 0``): an open trade's pnl is not realised.
  ``trades`` counts every position opened, the one still open at the end included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

#: 365.25 days in nanoseconds: the length of a year for annualisation (crypto trades every day).
YEAR_NS = 365.25 * 86_400 * 1_000_000_000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class TradeLike(Protocol):
    """What the metrics and the report read from a trade (read-only attributes)."""

    @property
    def entry_idx(self) -> int: ...  # bar index of the entry fill
    @property
    def exit_idx(self) -> int: ...  # bar index of the exit fill, -1 while open
    @property
    def side(self) -> int | str: ...  # +1/-1 or "BUY"/"SELL" (an enum with such a .value works too)
    @property
    def qty(self) -> float: ...
    @property
    def entry_px(self) -> float: ...
    @property
    def exit_px(self) -> float: ...
    @property
    def pnl(self) -> float: ...  # realised, net of fees
    @property
    def fees(self) -> float: ...


def side_sign(side: object) -> int:
    """``+1`` for a long (1, "BUY", "LONG"), ``-1`` for a short (-1, "SELL", "SHORT")."""
    value = getattr(side, "value", side)
    if isinstance(value, str):
        text = value.strip().upper()
        if text in ("BUY", "LONG", "B", "+1", "1"):
            return 1
        if text in ("SELL", "SHORT", "S", "-1"):
            return -1
        raise ValueError(f"unknown trade side {side!r}")
    try:
        number = float(value)  # type: ignore[arg-type]  # ints, floats and numpy scalars
    except (TypeError, ValueError):
        number = math.nan
    if number > 0:
        return 1
    if number < 0:
        return -1
    raise ValueError(f"unknown trade side {side!r}")


def infer_bars_per_year(ts: npt.ArrayLike) -> float:
    """``365.25 days / median(Δts)`` for nanosecond timestamps; NaN with fewer than two bars."""
    stamps = np.asarray(ts, dtype=np.int64)
    if stamps.size < 2:
        return math.nan
    step = float(np.median(np.diff(stamps)))
    if step <= 0:
        raise ValueError("cannot infer bars_per_year: the median timestamp step is not positive; pass bars_per_year")
    return YEAR_NS / step


def bar_returns(equity: npt.ArrayLike) -> FloatArray:
    """Simple returns ``E_i / E_{i-1} - 1`` (length ``n - 1``; 0 where the previous equity is <= 0)."""
    eq = np.asarray(equity, dtype=np.float64)
    if eq.size < 2:
        return np.zeros(0, dtype=np.float64)
    prev = eq[:-1]
    out = np.zeros(eq.size - 1, dtype=np.float64)
    np.divide(eq[1:] - prev, prev, out=out, where=prev > 0)
    return out


def drawdown(equity: npt.ArrayLike) -> FloatArray:
    """Underwater curve ``1 - E_i / max(E_0..E_i)`` (0 at a new high, positive below it)."""
    eq = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(eq) if eq.size else eq
    out = np.zeros(eq.size, dtype=np.float64)
    np.divide(peak - eq, peak, out=out, where=peak > 0)
    return out


def drawdown_durations(equity: npt.ArrayLike, ts: npt.ArrayLike | None = None) -> tuple[int, float]:
    """Longest drawdown as ``(bars, seconds)``: from the peak bar to the first bar back at or above
    that peak, or to the last bar when it never recovers. Each is the maximum over the drawdown
    spells in its own unit (they agree on regular bars). ``[100, 90, 95, 100]`` gives 3 bars.
    """
    eq = np.asarray(equity, dtype=np.float64)
    n = eq.size
    if n < 2:
        return 0, 0.0
    under = eq < np.maximum.accumulate(eq)
    edges = np.diff(under.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)  # first underwater bar of each spell (never bar 0)
    stops = np.flatnonzero(edges == -1)  # one past its last underwater bar (the recovery bar, or n)
    if starts.size == 0:
        return 0, 0.0
    peaks = starts - 1
    ends = np.minimum(stops, n - 1)  # unrecovered: the spell lasts to the last bar
    bars = int(np.max(ends - peaks))
    if ts is None:
        return bars, 0.0
    stamps = np.asarray(ts, dtype=np.int64)
    seconds = float(np.max(stamps[ends] - stamps[peaks])) / 1e9
    return bars, seconds


def _ratio(num: float, den: float) -> float:
    """``num / den``; ``inf`` for a positive numerator over 0, NaN for 0/0 (undefined)."""
    if den > 0:
        return num / den
    if num > 0:
        return math.inf
    return math.nan if num == 0 else -math.inf


def _risk_ratio(num: float, den: float) -> float:
    """Risk-adjusted ratio: ``num / den``, 0 when ``den`` is 0 and ``num <= 0``, ``inf`` when ``num > 0``."""
    if den > 0:
        return num / den
    return math.inf if num > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Metrics:
    """Summary statistics; fractions are plain fractions (0.05 = 5 %), money in equity units.

    total_return   ``E_last / E_0 - 1``
    cagr           ``(E_last / E_0) ** (1 / years) - 1`` (0 for a one-bar series, -1 once wiped out)
    volatility     ``std(r, ddof=1) * sqrt(A)``
    sharpe         ``mean(r - rf) / std(r, ddof=1) * sqrt(A)``
    sortino        ``mean(r - rf) / sqrt(mean(min(r - rf, 0) ** 2)) * sqrt(A)`` (downside over all bars)
    calmar         ``cagr / max_drawdown``
    max_drawdown   ``max(1 - E_i / peak_i)`` (positive fraction); durations in bars and seconds
    win_rate       winners (pnl > 0) / closed trades (breakeven trades are not wins)
    profit_factor  gross profit / gross loss
    expectancy     mean pnl per closed trade
    avg_win        mean pnl of winners; ``avg_loss`` mean ``|pnl|`` of losers (positive)
    win_loss_ratio ``avg_win / avg_loss`` (Kelly's payoff ratio b)
    exposure       fraction of bars with a position: a trade holds bars ``entry .. exit-1`` (at least its
                   entry bar), an open one to the last bar; overlapping trades count once
    turnover       ``sum(|qty| * (entry_px + exit_px)) / mean(E)`` over the whole run (not annualised);
                   an open trade counts its entry only
    trades         positions opened (one still open at the end counts); ``closed_trades`` those closed
    """

    total_return: float
    cagr: float
    volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_bars: int
    max_drawdown_seconds: float
    win_rate: float
    profit_factor: float
    expectancy: float
    avg_win: float
    avg_loss: float
    win_loss_ratio: float
    exposure: float
    turnover: float
    trades: int
    closed_trades: int
    total_fees: float
    bars: int
    years: float
    bars_per_year: float

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain ``int``/``float`` values for JSON; ``inf``/NaN (e.g. profit factor with no losses) become None."""
        out: dict[str, float | int | None] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int):
                out[f.name] = int(value)
            else:
                number = float(value)
                out[f.name] = number if math.isfinite(number) else None
        return out

    def kelly_inputs(self) -> tuple[float, float]:
        """``(p, b)`` for Kelly sizing: win rate and payoff ratio ``avg_win / avg_loss``.

        ``b`` is ``inf`` without losing trades and NaN without any; check ``math.isfinite(b)`` before
        ``tradewire_risk.sizing.kelly_fraction`` (which needs ``b > 0``).
        """
        return self.win_rate, self.win_loss_ratio


def _trade_arrays(trades: Sequence[TradeLike]) -> dict[str, Any]:
    m = len(trades)
    return {
        "entry": np.fromiter((int(t.entry_idx) for t in trades), dtype=np.int64, count=m),
        "exit": np.fromiter((int(t.exit_idx) for t in trades), dtype=np.int64, count=m),
        "qty": np.fromiter((abs(float(t.qty)) for t in trades), dtype=np.float64, count=m),
        "entry_px": np.fromiter((float(t.entry_px) for t in trades), dtype=np.float64, count=m),
        "exit_px": np.fromiter((float(t.exit_px) for t in trades), dtype=np.float64, count=m),
        "pnl": np.fromiter((float(t.pnl) for t in trades), dtype=np.float64, count=m),
        "fees": np.fromiter((float(t.fees) for t in trades), dtype=np.float64, count=m),
    }


def exposure_mask(n_bars: int, entry: IntArray, exit_: IntArray) -> npt.NDArray[np.bool_]:
    """Bars with a position: ``[entry, max(exit, entry + 1))``, ``[entry, n)`` while open; unknown
    entries (``< 0``) are skipped."""
    known = (entry >= 0) & (entry < n_bars)
    start = entry[known]
    stop = np.where(exit_[known] < 0, n_bars, np.maximum(exit_[known], start + 1))
    stop = np.minimum(stop, n_bars)
    delta = np.zeros(n_bars + 1, dtype=np.int64)
    np.add.at(delta, start, 1)
    np.add.at(delta, stop, -1)
    return np.cumsum(delta[:-1]) > 0


def compute_metrics(
    equity: npt.ArrayLike,
    ts: npt.ArrayLike,
    trades: Sequence[TradeLike],
    *,
    bars_per_year: float | None = None,
    risk_free: float = 0.0,
) -> Metrics:
    """Metrics of an equity curve (float, one value per bar) with nanosecond timestamps ``ts`` and its
    trades (see the module docstring for the conventions). ``risk_free`` is an annual rate."""
    eq = np.asarray(equity, dtype=np.float64)
    stamps = np.asarray(ts, dtype=np.int64)
    n = int(eq.size)
    if n == 0:
        raise ValueError("compute_metrics needs at least one bar")
    if stamps.size != n:
        raise ValueError(f"equity has {n} bars but ts has {stamps.size}")
    if bars_per_year is not None and not bars_per_year > 0:
        raise ValueError(f"bars_per_year must be positive, got {bars_per_year}")
    bpy = float(bars_per_year) if bars_per_year is not None else infer_bars_per_year(stamps)

    # -- the curve ----------------------------------------------------------------------------
    e0, e1 = float(eq[0]), float(eq[-1])
    total_return = e1 / e0 - 1.0 if e0 > 0 else math.nan
    years = (n - 1) / bpy if n > 1 else 0.0
    if not e0 > 0:
        cagr = math.nan
    elif e1 <= 0:
        cagr = -1.0
    elif years <= 0:
        cagr = 0.0
    else:
        try:
            cagr = math.exp(math.log(e1 / e0) / years) - 1.0
        except OverflowError:
            cagr = math.inf

    r = bar_returns(eq)
    annual = math.sqrt(bpy) if r.size else 0.0
    rf = (1.0 + risk_free) ** (1.0 / bpy) - 1.0 if r.size and risk_free else 0.0
    std = float(np.std(r, ddof=1)) if r.size > 1 else 0.0
    excess = r - rf
    mean_excess = float(np.mean(excess)) if r.size else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2))) if r.size else 0.0
    volatility = std * annual
    sharpe = mean_excess / std * annual if std > 0 else 0.0
    sortino = mean_excess / downside * annual if downside > 0 else _risk_ratio(mean_excess, 0.0)
    max_dd = float(np.max(drawdown(eq)))
    dd_bars, dd_seconds = drawdown_durations(eq, stamps)
    calmar = _risk_ratio(cagr, max_dd) if math.isfinite(cagr) else cagr

    # -- the trades ---------------------------------------------------------------------------
    ta = _trade_arrays(trades)
    closed = ta["exit"] >= 0
    pnl = ta["pnl"][closed]
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gross_profit, gross_loss = float(wins.sum()), float(-losses.sum())
    n_closed = int(pnl.size)
    win_rate = wins.size / n_closed if n_closed else 0.0
    avg_win = float(wins.mean()) if wins.size else 0.0
    avg_loss = float(-losses.mean()) if losses.size else 0.0
    notional = float(np.sum(ta["qty"] * ta["entry_px"]) + np.sum(ta["qty"][closed] * ta["exit_px"][closed]))
    mean_equity = float(np.mean(eq))

    return Metrics(
        total_return=total_return,
        cagr=cagr,
        volatility=volatility,
        sharpe=sharpe,
        sortino=sortino,
        calmar=calmar,
        max_drawdown=max_dd,
        max_drawdown_bars=dd_bars,
        max_drawdown_seconds=dd_seconds,
        win_rate=win_rate,
        profit_factor=_ratio(gross_profit, gross_loss),
        expectancy=float(pnl.mean()) if n_closed else 0.0,
        avg_win=avg_win,
        avg_loss=avg_loss,
        win_loss_ratio=_ratio(avg_win, avg_loss),
        exposure=float(np.count_nonzero(exposure_mask(n, ta["entry"], ta["exit"]))) / n,
        turnover=notional / mean_equity if mean_equity > 0 else math.nan,
        trades=len(trades),
        closed_trades=n_closed,
        total_fees=float(ta["fees"].sum()),
        bars=n,
        years=years,
        bars_per_year=bpy,
    )
