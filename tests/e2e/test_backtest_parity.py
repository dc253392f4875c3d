"""Backtest = paper: `tradewire backtest --mode event` and `tradewire up` over NATS give the same fills."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from tests.support.stack import DEMO_CSV, run_up_json
from tradewire_backtest.config import BacktestSpec, build_config
from tradewire_backtest.event import run_event

BARS = 1500


def _first_rows(path: Path, n: int, out: Path) -> Path:
    lines = path.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[: n + 1]))
    return out


def _up_config(data: Path) -> str:
    return f"""
[datafeed]
speed = "max"
lockstep_timeout_s = 5

[[datafeed.replay]]
path = "{data}"
instrument_id = "BTCUSDT.BINANCE"

[[signals.strategies]]
id = "sma_cross"
kind = "sma_cross"
instruments = ["BTCUSDT.BINANCE"]

[risk]
sizing = "all_in"
cost_fee_bps = 10.0
cost_slippage_bps = 1.0

[[risk.instruments]]
id = "BTCUSDT.BINANCE"
quantity_step = "1e-12"
min_quantity = "1e-12"

[[execution.venues]]
name = "BINANCE"

[execution.paper]
fill_at = "next_open"
slippage_bps = 1.0
fee_bps = 10.0
quantity_step = "1e-12"

[ledger]
starting_cash = "10000"
"""


def test_event_backtest_and_paper_run_over_nats_produce_identical_fills_and_equity(tmp_path: Path) -> None:
    data = _first_rows(DEMO_CSV, BARS, tmp_path / "btc.csv")
    spec = BacktestSpec(data=data, strategy="sma_cross", params={"fast": 10, "slow": 30}, fee_bps=10.0,
                        slippage_bps=1.0, fill="next_open", sizing="all-in", instrument_id="BTCUSDT.BINANCE")
    backtest = run_event(build_config(spec))

    summary, run_dir = run_up_json(_up_config(data), tmp_path)
    with sqlite3.connect(run_dir / "ledger.db") as db:
        rows = db.execute("SELECT side, last_qty, last_px, fee, ts_event FROM fills ORDER BY seq").fetchall()
    paper = [(side, Decimal(q), Decimal(px), Decimal(fee), ts) for side, q, px, fee, ts in rows]
    simulated = [(f.side.value, f.last_qty, f.last_px, f.fee, f.ts_event) for f in backtest.fills]

    assert len(simulated) > 20
    assert simulated == paper
    assert backtest.final_equity == Decimal(summary["final_equity"])
