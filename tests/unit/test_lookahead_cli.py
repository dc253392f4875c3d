"""`tradewire lookahead`: the real event-mode plugins, replayed on the full and on truncated data."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from tradewire_backtest import lookahead_cli
from tradewire_backtest.arrays import to_fixed
from tradewire_backtest.kernels import sma_cross_signals
from tradewire_common.cli.main import main
from tradewire_common.schemas import Bar, Side
from tradewire_signals import strategy as strategy_module
from tradewire_signals.strategy import Intent, Strategy, StrategyParams

GOOG = Path(__file__).resolve().parents[2] / "data" / "ohlcv" / "backtesting.py" / "GOOG.csv"


class NoParams(StrategyParams, frozen=True):
    pass


class PeekAhead(Strategy[NoParams]):
    """Cheats: buys when the NEXT close is higher. It is handed the series it is replayed on (the
    class attribute), as a strategy precomputing on "the data" would be."""

    params_type = NoParams
    series: ClassVar[Sequence[Bar]] = ()

    def on_bar(self, bar: Bar) -> Intent | None:
        following = self.series[bar.seq + 1 :]
        if not following:
            return None
        return Intent(Side.BUY if following[0].close > bar.close else Side.SELL, 1.0, "peeked")


class Targets(Strategy[NoParams]):
    """Flat target on even bars, half long on every third, nothing otherwise; raises on bar 5."""

    params_type = NoParams

    def on_bar(self, bar: Bar) -> Intent | None:
        if bar.seq == 5:
            raise RuntimeError("boom")
        if bar.seq % 2 == 0:
            return Intent(Side.SELL, 1.0, "flat", target=Decimal(0))
        if bar.seq % 3 == 0:
            return Intent(Side.BUY, 1.0, "half", target=Decimal("0.5"))
        return None


@pytest.fixture
def peek_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the cheat, and hand it each replayed series just before its replay."""
    monkeypatch.setattr(PeekAhead, "kind", "peek_ahead", raising=False)
    monkeypatch.setitem(strategy_module._REGISTRY, "peek_ahead", PeekAhead)
    real = lookahead_cli.strategy_signals

    def handing_over(kind: str, params: Mapping[str, Any], bars: Sequence[Bar]) -> Any:
        monkeypatch.setattr(PeekAhead, "series", bars)
        return real(kind, params, bars)

    monkeypatch.setattr(lookahead_cli, "strategy_signals", handing_over)


@pytest.mark.parametrize(("strategy", "params"), [
    ("sma_cross", ["fast=5", "slow=20"]), ("rsi_reversion", ["window=10"]), ("breakout", ["window=15"]),
])
def test_the_shipped_strategies_pass_the_lookahead_check(
    strategy: str, params: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["lookahead", "--data", str(GOOG), "--strategy", strategy, "--checkpoints", "6", "--json"]
    assert main(args + [a for p in params for a in ("--param", p)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ok"] is True and out["first_bad_bar"] is None
    assert out["bars"] == 2148 and len(out["checkpoints"]) == 6
    assert out["signals"] > 10 and out["errors"] == 0  # it really traded, so the comparison meant something


def test_a_strategy_peeking_at_the_next_bar_is_reported_with_its_first_bad_bar(
    peek_ahead: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lookahead", "--data", str(GOOG), "--strategy", "peek_ahead", "--checkpoints", "4",
                 "--no-progress"]) == 1
    text = capsys.readouterr().out
    first_checkpoint = 2148 // 5
    assert "FAIL peek_ahead" in text
    assert f"bar {first_checkpoint - 1} " in text  # the last bar of the shortest copy had no future to read
    assert "no signal on the first 429 bars" in text


def test_lookahead_json_names_the_failing_checkpoints_and_both_signals(
    peek_ahead: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lookahead", "--data", str(GOOG), "--strategy", "peek_ahead", "--checkpoints", "3", "--json"]) == 1
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ok"] is False
    assert out["checkpoints"] == [537, 1074, 1611]
    assert out["failures"] == [[537, 536], [1074, 1073], [1611, 1610]]
    assert (out["first_bad_bar"], out["checkpoint"]) == (536, 537)
    assert out["full_signal"] in ("BUY", "SELL") and out["truncated_signal"] == "no signal"


def test_replayed_event_signals_equal_the_vector_kernel_signals() -> None:
    """The replay helper feeds bars the way the service does: sma_cross's event-mode signals are the kernel's."""
    bars = lookahead_cli.load_bars(GOOG)
    signals = lookahead_cli.strategy_signals("sma_cross", {"fast": 10, "slow": 30}, bars)
    fixed, _ = to_fixed(np.array([float(b.close) for b in bars]), (30,))
    kernel = sma_cross_signals(fixed, 10, 30)
    assert np.array_equal(signals[:, 0], kernel.astype(np.float64))
    assert np.isnan(signals[:, 1]).all()  # sma_cross never sets a target


def test_replay_keeps_targets_apart_from_no_signal_and_marks_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    bars = lookahead_cli.load_bars(GOOG)[:8]
    out = lookahead_cli.replay_signals(Targets("t", (bars[0].instrument_id,), NoParams()), bars)
    assert out[:5, 0].tolist() == [-1.0, 0.0, -1.0, 1.0, -1.0]
    assert out[[0, 2, 4], 1].tolist() == [0.0, 0.0, 0.0] and out[3, 1] == 0.5 and np.isnan(out[1, 1])
    assert np.isnan(out[5, 0])  # on_bar raised: neither a signal nor "nothing"
    other = lookahead_cli.replay_signals(Targets("t", ("OTHER.VENUE",), NoParams()), bars)
    assert not other[:, 0].any()  # bars of an instrument it does not trade never reach it


@pytest.mark.parametrize(("args", "message"), [
    (["--strategy", "no_such_kind"], "unknown strategy kind"),
    (["--strategy", "sma_cross", "--param", "fast=50"], "must be below slow"),
    (["--strategy", "sma_cross", "--checkpoints", "0"], "--checkpoints"),
])
def test_bad_input_exits_2_with_a_clear_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lookahead", "--data", str(GOOG), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lookahead", "--data", str(tmp_path / "none.csv"), "--strategy", "sma_cross"]) == 2
    assert "none.csv" in capsys.readouterr().err
