"""`tradewire backtest`: the JSON summary, the report, bad input, and one code path with the services."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradewire_common.cli.main import main

REPO = Path(__file__).resolve().parents[2]
GOOG = REPO / "data" / "ohlcv" / "backtesting.py" / "GOOG.csv"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["backtest", *args]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return out


def test_event_backtest_prints_the_summary_fields_on_the_last_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    summary = _run(capsys, "--data", str(GOOG), "--strategy", "sma_cross", "--param", "fast=10", "--param",
                   "slow=30", "--cash", "10000", "--fee-bps", "10", "--fill", "close", "--sizing", "all-in",
                   "--mode", "event", "--json", "--report", str(report))
    for key in ("bars", "trades", "final_equity", "total_return", "max_drawdown", "sharpe", "elapsed_s"):
        assert key in summary
    assert summary["bars"] == 2148
    assert summary["trades"] == 33
    assert abs(float(summary["final_equity"]) / 10_000 - 1 - float(summary["total_return"])) < 1e-12  # type: ignore[arg-type]
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "http" not in html.split("</style>")[0]


@pytest.mark.parametrize("strategy", ["rsi_reversion", "breakout"])
def test_every_shipped_strategy_backtests_in_event_mode(strategy: str, capsys: pytest.CaptureFixture[str]) -> None:
    summary = _run(capsys, "--data", str(GOOG), "--strategy", strategy, "--sizing", "all-in", "--json")
    assert int(summary["trades"]) > 5  # type: ignore[call-overload]


def test_bad_parameters_and_bad_files_fail_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["backtest", "--data", str(GOOG), "--param", "fast=40", "--json"]) == 2
    assert "fast (40) must be below slow (30)" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("date,open,high,low,close,volume\n2020-01-01,1,2,0.5,1,10\n2020-01-02,1,0.5,2,1,10\n")
    assert main(["backtest", "--data", str(bad), "--json"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "row 2" in err


def test_vector_mode_refuses_options_only_event_mode_simulates(capsys: pytest.CaptureFixture[str]) -> None:
    for option in (["--latency-ms", "500"], ["--impact", "0.1"], ["--volume-share", "0.5"], ["--sizing", "risk"]):
        args = ["backtest", "--data", str(GOOG), "--mode", "vector", "--sizing", "all-in", *option, "--json"]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "vector mode does not simulate" in err and option[0] in err


def test_out_of_range_realism_options_fail_with_the_option_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--data", str(GOOG), "--stop-loss", "1.5", "--json"]) == 2
    assert "stop_loss" in capsys.readouterr().err
    assert main(["backtest", "--data", str(GOOG), "--latency-ms", "-1", "--json"]) == 2
    assert "latency_ms" in capsys.readouterr().err


def test_latency_moves_the_fills_to_later_bars_and_changes_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--data", str(GOOG), "--strategy", "sma_cross", "--sizing", "all-in", "--fill", "close", "--json"]
    instant = _run(capsys, *base)
    late = _run(capsys, *base, "--latency-ms", "1000")
    assert late["trades"] == instant["trades"]
    assert late["final_equity"] != instant["final_equity"]


@pytest.mark.parametrize("mode", ["event", "vector"])
def test_long_short_whole_units_and_stops_run_in_both_modes(mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    summary = _run(capsys, "--data", str(GOOG), "--strategy", "sma_cross", "--sizing", "all-in", "--mode", mode,
                   "--long-short", "--whole-units", "--stop-loss", "0.03", "--take-profit", "0.06",
                   "--fixed-fee", "1", "--json")
    long_only = _run(capsys, "--data", str(GOOG), "--strategy", "sma_cross", "--sizing", "all-in", "--mode", mode,
                     "--json")
    assert int(summary["trades"]) > int(long_only["trades"])  # type: ignore[call-overload]


def test_the_summary_carries_the_backtested_period_for_the_promotion_gate(capsys: pytest.CaptureFixture[str]) -> None:
    summary = _run(capsys, "--data", str(GOOG), "--sizing", "all-in", "--mode", "vector", "--json")
    assert summary["start_ns"] == 1092873600000000000  # 2004-08-19, GOOG.csv's first row
    assert int(summary["end_ns"]) > int(summary["start_ns"])  # type: ignore[call-overload]
