"""Vector mode gives the same trades and equity as event mode (the services' code) on every dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.data_files import bar_files
from tradewire_backtest.arrays import BarArrays
from tradewire_backtest.config import BacktestSpec, build_config
from tradewire_backtest.event import run_event
from tradewire_backtest.vector import run_vector

REPO = Path(__file__).resolve().parents[2]
DATASETS = bar_files()
CASES = [(path, strategy) for path in DATASETS for strategy in ("sma_cross", "rsi_reversion", "breakout")]


@pytest.mark.parametrize(("path", "strategy"), CASES, ids=[f"{p.name}-{s}" for p, s in CASES])
def test_vector_mode_trades_and_equity_equal_event_mode(path: Path, strategy: str) -> None:
    spec = BacktestSpec(data=path, strategy=strategy, params={}, fee_bps=10.0, fill="close", sizing="all-in")
    event = run_event(build_config(spec))
    vector = run_vector(strategy, {}, BarArrays.from_file(path), cash=10_000.0, fee_bps=10.0, fill="close")
    assert [(t.entry_idx, t.exit_idx, t.side) for t in vector.trades] == [
        (t.entry_idx, t.exit_idx, t.side) for t in event.trades
    ]
    assert float(event.final_equity) == pytest.approx(vector.final_equity, rel=1e-9)
