"""Deterministic geometric-Brownian-motion 1-minute OHLCV bars for benchmarks and tests.

``gbm_bars(n, seed=...)`` always returns the same series for the same arguments (numpy's PCG64):

* log returns ``r_i ~ N(-sigma**2 / 2, sigma)`` per minute (a driftless GBM), close ``= s0 * exp(Σ r)``;
* each bar opens at the previous close (the first at ``s0``);
* high/low extend ``max/min(open, close)`` by ``exp(±|N(0, sigma / 2)|)``;
* prices are rounded half-even to ``decimals`` places (a tick of ``10**-decimals``, never below one
  tick), so ties such as equal moving averages really happen; ``decimals=None`` keeps raw floats;
* volume is log-normal, rounded to 3 decimals; ``ts`` are 1-minute steps from 2020-01-01 UTC.

Run it to print a summary: ``.venv/bin/python tests/bench/gbm.py 1000000``.
"""

from __future__ import annotations

import sys

import numpy as np

from tradewire_backtest.arrays import BarArrays

START_NS = 1_577_836_800 * 1_000_000_000  # 2020-01-01T00:00:00Z
MINUTE_NS = 60 * 1_000_000_000


def gbm_bars(
    n: int, *, seed: int = 7, s0: float = 100.0, sigma: float = 0.0005, decimals: int | None = 2,
    start_ns: int = START_NS,
) -> BarArrays:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    steps = rng.standard_normal(n)
    steps *= sigma
    steps -= 0.5 * sigma * sigma
    np.cumsum(steps, out=steps)
    close = np.exp(steps, out=steps)
    close *= s0
    del steps
    open_ = np.empty(n)
    if n:
        open_[0] = s0
        open_[1:] = close[:-1]
    wick = rng.standard_normal(n)
    np.abs(wick, out=wick)
    wick *= 0.5 * sigma
    np.exp(wick, out=wick)
    high = np.maximum(open_, close)
    high *= wick
    wick = rng.standard_normal(n)
    np.abs(wick, out=wick)
    wick *= -0.5 * sigma
    np.exp(wick, out=wick)
    low = np.minimum(open_, close)
    low *= wick
    del wick
    if decimals is not None:
        tick = 10.0 ** -decimals
        for column in (open_, high, low, close):
            np.round(column, decimals, out=column)
            np.maximum(column, tick, out=column)
    volume = rng.lognormal(3.0, 1.0, n)
    np.round(volume, 3, out=volume)
    ts = start_ns + np.arange(n, dtype=np.int64) * MINUTE_NS
    return BarArrays(ts=ts, open=open_, high=high, low=low, close=close, volume=volume)


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 1_000_000
    bars = gbm_bars(n)
    print(f"{n} bars: close {bars.close[0]:.2f} .. {bars.close[-1]:.2f}, min low {bars.low.min():.2f}, "
          f"max high {bars.high.max():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
