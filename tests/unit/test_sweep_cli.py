"""`tradewire sweep`: every combination evaluated in vector mode, ranked by the objective."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradewire_backtest.arrays import BarArrays
from tradewire_backtest.metrics import compute_metrics
from tradewire_backtest.vector import run_vector
from tradewire_common.cli.main import main

GOOG = Path(__file__).resolve().parents[2] / "data" / "ohlcv" / "backtesting.py" / "GOOG.csv"


def test_grid_sweep_ranks_every_combination_by_the_objective(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--data", str(GOOG), "--param", "fast=5,10,40", "--param", "slow=20,30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["trials"] == 6
    scores = [r["score"] for r in out["results"] if r["score"] is not None]
    assert scores == sorted(scores, reverse=True) and len(scores) == 4  # fast=40 >= slow is invalid
    assert all(r["valid"] is False for r in out["results"][4:])
    best = out["results"][0]
    bars = BarArrays.from_file(GOOG)
    direct = run_vector("sma_cross", best["params"], bars, cash=10_000.0, fee_bps=10.0)
    assert direct.equity is not None
    assert best["sharpe"] == pytest.approx(compute_metrics(direct.equity, bars.ts, direct.trades).sharpe, rel=1e-12)


def test_random_sweep_draws_the_requested_number_reproducibly(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sweep", "--data", str(GOOG), "--param", "fast=3,5,8,10,12", "--param", "slow=30,40,50,60",
            "--random", "5", "--seed", "7", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["trials"] == 5 and first == second


def test_sweep_without_parameters_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--data", str(GOOG)]) == 2
    assert "--param" in capsys.readouterr().err
