"""Bars as column arrays for the vectorized engine, and exact fixed-point prices.

``BarArrays`` holds one series as numpy columns: ``ts`` (int64 ns since the epoch, UTC, the bar's
open time as the reader gives it) and ``open, high, low, close, volume`` (float64). The floats are
``float(Decimal)``, i.e. the nearest double to each exact value in the file.

Fixed point (:func:`to_fixed`)
------------------------------
Moving-average and RSI rules compare *sums* of prices. A float running sum (``s += x_new - x_old``)
drifts: after millions of bars it no longer equals the sum of the window, and two averages that are
exactly equal (or cross by less than the accumulated error) are compared the wrong way, so a float
engine's signals depend on the series' length and history. Integers have no such error: with prices
as ``int64`` multiples of ``1/scale``, a rolling sum updated a million times is still exactly the
window's sum, and ``fast_sum * slow`` vs ``slow_sum * fast`` is an exact comparison of the two
averages. Nothing drifts, however long the series.

``to_fixed(values, windows)`` returns ``(fixed, scale)`` with ``fixed = round_half_even(values *
scale)`` (the float64 product rounded to the nearest integer, ties to even, as ``np.rint``) and
``scale`` the largest power of ten ``<= 10**12`` for which ``max|fixed| * w * w * factor < 2**62``
with ``w = max(windows)``. That bound is what the kernels need to never overflow int64:

* SMA cross (``w = slow``): ``|fast_sum * slow|, |slow_sum * fast| <= slow * slow * max|fixed| < 2**62``,
  so their difference fits in int64;
* RSI (``w = window``, ``factor`` covering ``100 * den`` of the thresholds, see
  :func:`rsi_factor`): ``100 * den * G`` and ``num * (G + L)`` with ``G + L < window * max|fixed|``.

A price with at most ``log10(scale)`` decimals (and ``|value| * scale < 2**53``) is represented
*exactly*: the double nearest to the decimal, times the power of ten, is within far less than 0.5 of
the integer, so rounding recovers it. Every file under ``data/`` qualifies except values that a
float pipeline already damaged upstream (``0.09946999000000001`` in freqtrade's feather file keeps
its 12 leading decimals at scale ``1e12``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tradewire_common.schemas.market import Bar

__all__ = ["MAX_SCALE", "BarArrays", "fixed_scale", "rsi_factor", "to_fixed"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The largest scale (12 decimals) :func:`to_fixed` chooses.
MAX_SCALE = 10**12
#: ``max|fixed| * w * w * factor`` stays below this.
LIMIT = 2**62


@dataclass(frozen=True, slots=True, eq=False)
class BarArrays:
    """One bar series as contiguous numpy columns (see the module docstring)."""

    ts: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        n = len(self.ts)
        for name in ("ts", "open", "high", "low", "close", "volume"):
            column = getattr(self, name)
            dtype = np.int64 if name == "ts" else np.float64
            if not isinstance(column, np.ndarray) or column.ndim != 1 or len(column) != n:
                raise ValueError(f"{name} must be a 1-D numpy array of length {n}")
            if column.dtype != dtype or not column.flags.c_contiguous:
                object.__setattr__(self, name, np.ascontiguousarray(column, dtype=dtype))

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_columns(
        cls,
        ts: npt.ArrayLike,
        open: npt.ArrayLike,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        volume: npt.ArrayLike | None = None,
    ) -> BarArrays:
        close_arr = np.ascontiguousarray(close, dtype=np.float64)
        vol = np.zeros(len(close_arr)) if volume is None else np.ascontiguousarray(volume, dtype=np.float64)
        return cls(np.ascontiguousarray(ts, dtype=np.int64), np.ascontiguousarray(open, dtype=np.float64),
                   np.ascontiguousarray(high, dtype=np.float64), np.ascontiguousarray(low, dtype=np.float64),
                   close_arr, vol)

    @classmethod
    def from_bars(cls, bars: Sequence[Bar]) -> BarArrays:
        """Columns of ``Bar`` messages (Decimal prices become the nearest float64)."""
        n = len(bars)
        return cls(
            ts=np.fromiter((b.ts_event for b in bars), dtype=np.int64, count=n),
            open=np.fromiter((float(b.open) for b in bars), dtype=np.float64, count=n),
            high=np.fromiter((float(b.high) for b in bars), dtype=np.float64, count=n),
            low=np.fromiter((float(b.low) for b in bars), dtype=np.float64, count=n),
            close=np.fromiter((float(b.close) for b in bars), dtype=np.float64, count=n),
            volume=np.fromiter((float(b.volume) for b in bars), dtype=np.float64, count=n),
        )

    @classmethod
    def from_file(cls, path: str | Path, *, limit: int = 0) -> BarArrays:
        """Read a bar file with ``tradewire_datafeed.readers.read_bar_file`` (or a ``catalog:`` entry)."""
        from tradewire_datafeed.readers import read_bar_file

        text = str(path)
        if text.startswith("catalog:"):
            from tradewire_datafeed.catalog import read_source

            records = read_source(text, limit=limit).records
        else:
            records = read_bar_file(Path(text), limit=limit).records
        n = len(records)
        return cls(
            ts=np.fromiter((r.ts_event for r in records), dtype=np.int64, count=n),
            open=np.fromiter((float(r.open) for r in records), dtype=np.float64, count=n),
            high=np.fromiter((float(r.high) for r in records), dtype=np.float64, count=n),
            low=np.fromiter((float(r.low) for r in records), dtype=np.float64, count=n),
            close=np.fromiter((float(r.close) for r in records), dtype=np.float64, count=n),
            volume=np.fromiter((float(r.volume) for r in records), dtype=np.float64, count=n),
        )

    def slice(self, start: int, stop: int) -> BarArrays:
        """Bars ``[start, stop)`` (views, no copy)."""
        return BarArrays(self.ts[start:stop], self.open[start:stop], self.high[start:stop], self.low[start:stop],
                         self.close[start:stop], self.volume[start:stop])


def rsi_factor(window: int, lower: Fraction, upper: Fraction) -> int:
    """The extra headroom (``factor`` of :func:`fixed_scale`) the RSI comparisons need.

    The kernel compares ``100 * den * G`` with ``num * (G + L)`` for each threshold ``num/den``;
    ``G + L < window * max|fixed|``, so ``window * w * factor >= 100 * max(den)`` with ``w = window``.
    """
    multiplier = 100 * max(lower.denominator, upper.denominator)
    return max(1, math.ceil(multiplier / window))


def fixed_scale(max_abs: float, windows: Iterable[int] = (1,), *, factor: int = 1) -> int:
    """The largest power of ten ``<= MAX_SCALE`` with ``round(max_abs * scale) * w * w * factor < 2**62``."""
    from tradewire_backtest.kernels import fx

    w = max(windows, default=1)
    if w < 1 or factor < 1:
        raise ValueError(f"windows and factor must be >= 1, got {w} and {factor}")
    if not math.isfinite(max_abs):
        raise ValueError(f"cannot convert non-finite values to fixed point (max |value| = {max_abs})")
    scale = MAX_SCALE
    while scale >= 1:
        if abs(int(fx(float(max_abs), float(scale)))) * w * w * factor < LIMIT:
            return scale
        scale //= 10
    raise ValueError(f"values up to {max_abs} are too large for int64 fixed point with window {w}")


def to_fixed(
    values: FloatArray, windows: Iterable[int] = (1,), *, factor: int = 1, scale: int | None = None
) -> tuple[IntArray, int]:
    """``(round_half_even(values * scale) as int64, scale)``; see the module docstring for the scale.

    Computed by the same numba routine the kernels use inline, so an array converted here equals
    what a fused kernel sees bar by bar.
    """
    from tradewire_backtest.kernels import abs_max, to_fixed_into

    arr = np.ascontiguousarray(values, dtype=np.float64)
    if scale is None:
        scale = fixed_scale(float(abs_max(arr)), windows, factor=factor)
    out = np.empty(len(arr), dtype=np.int64)
    to_fixed_into(arr, float(scale), out)
    return out, scale
