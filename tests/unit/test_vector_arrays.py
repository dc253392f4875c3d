"""BarArrays loading and the fixed-point conversion of the vector engine."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.support.data_files import bar_files
from tradewire_backtest.arrays import LIMIT, MAX_SCALE, BarArrays, fixed_scale, rsi_factor, to_fixed
from tradewire_datafeed.readers import read_bar_file, to_bars

DATA = Path(__file__).resolve().parents[2] / "data"
DEMO = DATA / "demo" / "btcusdt-perp-1m-2022-01.csv"


def test_from_file_and_from_bars_give_the_same_columns() -> None:
    series = read_bar_file(DEMO, limit=500)
    from_bars = BarArrays.from_bars(to_bars(series, "BTCUSDT.BINANCE"))
    from_file = BarArrays.from_file(DEMO, limit=500)
    assert len(from_file) == 500
    for name in ("ts", "open", "high", "low", "close", "volume"):
        a, b = getattr(from_bars, name), getattr(from_file, name)
        assert a.dtype == (np.int64 if name == "ts" else np.float64) and a.flags.c_contiguous
        assert np.array_equal(a, b), name
    assert from_file.close[0] == float(series.records[0].close)
    assert from_file.ts[0] == series.records[0].ts_event


def test_bar_arrays_checks_lengths_and_converts_dtypes() -> None:
    bars = BarArrays.from_columns([1, 2], [1, 2], [1, 2], [1, 2], [1, 2])
    assert bars.close.dtype == np.float64 and bars.volume.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="length"):
        BarArrays.from_columns([1, 2], [1], [1, 2], [1, 2], [1, 2])


def test_to_fixed_rounds_half_to_even() -> None:
    fixed, scale = to_fixed(np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49999999999999994]), scale=1)
    assert scale == 1 and fixed.tolist() == [0, 2, 2, 0, -2, 0]
    fixed, _ = to_fixed(np.array([0.125, 0.375]), scale=100)  # 12.5 and 37.5 exactly
    assert fixed.tolist() == [12, 38]


def test_to_fixed_picks_the_largest_power_of_ten_within_the_bound() -> None:
    values = np.array([47_988.12, 33_061.5])
    fixed, scale = to_fixed(values, (30,))
    assert scale == 10**11  # 47988.12e12 * 900 > 2**62 >= 47988.12e11 * 900
    assert int(fixed.max()) * 30 * 30 < LIMIT <= round(47_988.12 * scale * 10) * 30 * 30
    assert fixed.tolist() == [4_798_812_000_000_000, 3_306_150_000_000_000]
    assert to_fixed(np.array([1.25]))[1] == MAX_SCALE
    assert fixed_scale(0.0) == MAX_SCALE
    with pytest.raises(ValueError, match="non-finite"):
        to_fixed(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="too large"):
        to_fixed(np.array([1e18]), (30,))


def test_rsi_factor_covers_the_threshold_denominators() -> None:
    assert rsi_factor(14, Fraction(30), Fraction(70)) == 8  # 14 * 14 * 8 >= 14 * 100
    lower, upper = Fraction("33.3"), Fraction("66.7")
    factor = rsi_factor(5, lower, upper)
    assert 5 * factor >= 100 * 10


@pytest.mark.parametrize("path", bar_files(),
                         ids=lambda p: p.name)
def test_fixed_point_is_exact_for_the_data_files(path: Path) -> None:
    """Every close with at most log10(scale) decimals converts to exactly its decimal value."""
    records = read_bar_file(path).records
    fixed, scale = to_fixed(BarArrays.from_file(path).close, (30,))
    for r, value in zip(records, fixed.tolist(), strict=True):
        exact = r.close * scale
        if exact == exact.to_integral_value():
            assert value == int(exact), (r, value)
        else:  # a value a float pipeline damaged upstream (e.g. 0.09946999000000001): nearest integer
            assert abs(Decimal(value) - exact) <= Decimal("0.5"), (r, value)
