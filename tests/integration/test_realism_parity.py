"""Event mode (the services' code: risk's flips and brackets, the paper venue's fills) and vector mode
give the same trades and equity with the realism options both simulate: long-short flips, stop loss,
take profit, trailing and time stop exits, whole units, fixed fees per order and slippage, on every
shipped dataset."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.data_files import bar_files
from tradewire_backtest.arrays import BarArrays
from tradewire_backtest.config import BacktestSpec, build_config
from tradewire_backtest.event import run_event
from tradewire_backtest.vector import run_vector

REPO = Path(__file__).resolve().parents[2]
DATASETS = bar_files()
#: Bars per dataset: enough for dozens of trades, few enough to keep event mode quick.
LIMIT = 4000

CONFIGS: dict[str, dict[str, Any]] = {
    "sma-long-short-close-fixed-fee": {"strategy": "sma_cross", "long_short": True, "fill": "close",
                                       "slippage_bps": 2.0, "fixed_fee": Decimal("1.5")},
    "breakout-next-open-stops": {"strategy": "breakout", "fill": "next_open", "stop_loss": 0.01,
                                 "take_profit": 0.02, "fixed_fee": Decimal("0.5")},
    "rsi-long-short-next-open-stops-whole-units": {"strategy": "rsi_reversion", "long_short": True,
                                                    "fill": "next_open", "stop_loss": 0.02, "take_profit": 0.03,
                                                    "whole_units": True, "slippage_bps": 3.0,
                                                    "cash": Decimal(1_000_000)},
    "sma-close-stops-long-only": {"strategy": "sma_cross", "fill": "close", "stop_loss": 0.005,
                                  "take_profit": 0.005},
    # trailing and time stops (the time stop in bars of the dataset's first interval, converted to seconds)
    "sma-long-short-close-trailing-time": {"strategy": "sma_cross", "long_short": True, "fill": "close",
                                           "trailing_stop": 0.004, "time_stop_bars": 40, "slippage_bps": 1.0},
    "breakout-next-open-trailing-stop-loss-time": {"strategy": "breakout", "fill": "next_open", "stop_loss": 0.01,
                                                   "trailing_stop": 0.008, "take_profit": 0.03, "time_stop_bars": 25,
                                                   "fixed_fee": Decimal("0.5")},
}
CASES = [(path, name) for path in DATASETS for name in CONFIGS]


@pytest.mark.parametrize(("path", "name"), CASES, ids=[f"{p.name}-{n}" for p, n in CASES])
def test_event_and_vector_modes_agree_with_realism_options(path: Path, name: str) -> None:
    options = dict(CONFIGS[name])
    strategy = options.pop("strategy")
    bars = BarArrays.from_file(path, limit=LIMIT)
    if "time_stop_bars" in options:
        options["time_stop_s"] = options.pop("time_stop_bars") * int(bars.ts[1] - bars.ts[0]) // 1_000_000_000
    spec = BacktestSpec(data=path, strategy=strategy, params={}, fee_bps=10.0, sizing="all-in", limit=LIMIT,
                        **options)
    event = run_event(build_config(spec))
    vector = run_vector(strategy, {}, bars, cash=float(spec.cash),
                        fee_bps=spec.fee_bps, fixed_fee=float(spec.fixed_fee), slippage_bps=spec.slippage_bps,
                        fill=spec.fill, long_short=spec.long_short, whole_units=spec.whole_units,
                        stop_loss=spec.stop_loss, take_profit=spec.take_profit, trailing_stop=spec.trailing_stop,
                        time_stop_s=spec.time_stop_s)
    assert [(t.entry_idx, t.exit_idx, t.side) for t in event.trades] == [
        (t.entry_idx, t.exit_idx, t.side) for t in vector.trades
    ]
    for e, v in zip(event.trades, vector.trades, strict=True):
        assert e.qty == pytest.approx(v.qty, rel=1e-9)
        assert e.entry_px == pytest.approx(v.entry_px, rel=1e-9)
        assert e.exit_px == pytest.approx(v.exit_px, rel=1e-9)
    assert float(event.final_equity) == pytest.approx(vector.final_equity, rel=1e-9)


def test_the_realism_configs_exercise_flips_stops_and_whole_units() -> None:
    """Guard against a parity test that passes because nothing happened."""
    demo = REPO / "data/demo/btcusdt-perp-1m-2022-01.csv"
    bars = BarArrays.from_file(demo, limit=LIMIT)
    flips = run_vector("sma_cross", {}, bars, cash=10_000.0, fee_bps=10.0, long_short=True)
    assert {t.side for t in flips.trades} == {1, -1}
    stops = run_vector("sma_cross", {}, bars, cash=10_000.0, fee_bps=10.0, stop_loss=0.005, take_profit=0.005)
    plain = run_vector("sma_cross", {}, bars, cash=10_000.0, fee_bps=10.0)
    assert [t.exit_idx for t in stops.trades] != [t.exit_idx for t in plain.trades]
    whole = run_vector("rsi_reversion", {}, bars, cash=1_000_000.0, fee_bps=10.0, whole_units=True)
    assert whole.trades and all(float(t.qty).is_integer() for t in whole.trades)
    trailing = run_vector("sma_cross", {}, bars, cash=10_000.0, fee_bps=10.0, trailing_stop=0.01)
    assert [t.exit_idx for t in trailing.trades] != [t.exit_idx for t in plain.trades]
    timed = run_vector("sma_cross", {}, bars, cash=10_000.0, fee_bps=10.0, time_stop_s=40 * 60)
    assert [t.exit_idx for t in timed.trades] != [t.exit_idx for t in plain.trades]
    assert all(t.exit_idx - t.entry_idx <= 40 for t in timed.trades if t.exit_idx >= 0)
