"""`tradewire backtest --trailing-stop/--time-stop`: both modes simulate them, with the same trades."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradewire_common.cli.main import main

GOOG = Path(__file__).resolve().parents[2] / "data" / "ohlcv" / "backtesting.py" / "GOOG.csv"


def summary(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["backtest", "--data", str(GOOG), "--strategy", "breakout", "--sizing", "all-in", "--fill",
                 "next_open", "--json", *args]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return out


def test_trailing_and_time_stops_from_the_command_line_agree_in_event_and_vector_mode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exits = ("--trailing-stop", "0.02", "--time-stop", str(10 * 86_400))
    event = summary(capsys, *exits)
    vector = summary(capsys, "--mode", "vector", *exits)
    plain = summary(capsys, "--mode", "vector")
    assert event["trades"] == vector["trades"] != plain["trades"]
    assert float(event["final_equity"]) == pytest.approx(float(vector["final_equity"]), rel=1e-9)  # type: ignore[arg-type]


def test_a_negative_time_stop_is_refused_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--data", str(GOOG), "--time-stop", "-1", "--json"]) == 2
    assert "time_stop_s must be >= 0" in capsys.readouterr().err
