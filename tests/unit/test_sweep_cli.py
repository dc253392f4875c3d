"""`tradewire sweep`: every combination evaluated in vector mode, ranked by the objective."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tradewire_backtest import guards
from tradewire_backtest.arrays import BarArrays
from tradewire_backtest.guards import VectorEvaluator, stitch_out_of_sample, trade_rows
from tradewire_backtest.metrics import bar_returns, compute_metrics, infer_bars_per_year
from tradewire_backtest.overfitting import deflated_sharpe_ratio, probability_of_backtest_overfitting
from tradewire_backtest.research import grid, run_walk_forward, walk_forward
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


# -- overfitting guards ------------------------------------------------------------------------

SPACE = ["--param", "fast=5,10,20", "--param", "slow=30,50"]
CANDIDATES = grid({"fast": [5, 10, 20], "slow": [30, 50]})


def _sweep(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["sweep", "--data", str(GOOG), *args, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return out


def _run(params: dict[str, Any], start: int, stop: int, **options: Any) -> tuple[Any, Any]:
    bars = BarArrays.from_file(GOOG)
    window = bars.slice(start, stop)
    result = run_vector("sma_cross", params, window, **{"cash": 10_000.0, "fee_bps": 10.0, **options})
    assert result.equity is not None
    metrics = compute_metrics(result.equity, window.ts, result.trades, bars_per_year=infer_bars_per_year(bars.ts))
    return result, metrics


def _best_on(start: int, stop: int) -> tuple[dict[str, Any], float]:
    scores = [(_run(p, start, stop)[1].sharpe, i) for i, p in enumerate(CANDIDATES) if p["fast"] < p["slow"]]
    sharpe, i = max(scores, key=lambda s: (s[0], -s[1]))
    return CANDIDATES[i], sharpe


def test_train_fraction_headline_is_the_in_sample_winners_out_of_sample_result(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _sweep(capsys, *SPACE, "--train-fraction", "0.7")
    head = out["headline"]
    assert out["mode"] == "train_test" and head["kind"] == "out_of_sample"
    assert head["train"] == [0, 1504] and head["window"] == [1504, 2148]
    best, in_sample = _best_on(0, 1504)
    assert head["params"] == best
    _, oos = _run(best, 1504, 2148)
    assert head["metrics"]["sharpe"] == pytest.approx(oos.sharpe, rel=1e-12)
    assert head["metrics"]["bars"] == 644
    assert head["in_sample_score"] == pytest.approx(in_sample, rel=1e-12)
    assert head["decay"] == pytest.approx(oos.sharpe - in_sample, rel=1e-12)
    # the ranking carries the selection score only: no in-sample performance figure to mistake for a result
    assert all(set(row) == {"params", "in_sample_score", "valid"} for row in out["results"])


def test_walk_forward_reports_only_out_of_sample_results(capsys: pytest.CaptureFixture[str]) -> None:
    out = _sweep(capsys, *SPACE, "--walk-forward", "500:250")
    assert out["mode"] == "walk_forward" and "results" not in out  # no in-sample ranking at all
    folds = list(walk_forward(2148, 500, 250))
    reported = out["walk_forward"]["folds"]
    assert [(f["train"], f["test"]) for f in reported] == [
        ([f.train.start, f.train.stop], [f.test.start, f.test.stop]) for f in folds]
    for fold, row in zip(folds, reported, strict=True):
        best, in_sample = _best_on(fold.train.start, fold.train.stop)
        assert row["params"] == best  # re-optimised on this fold's training window only
        assert row["in_sample_score"] == pytest.approx(in_sample, rel=1e-12)
        _, oos = _run(best, fold.test.start, fold.test.stop)
        assert row["oos"]["total_return"] == pytest.approx(oos.total_return, rel=1e-12)
    head = out["headline"]
    assert head["kind"] == "out_of_sample" and head["oos_bars"] == 1500 and head["metrics"]["bars"] == 1500
    assert head["windows"] == [f["test"] for f in reported]
    # proportional fees only: the stitched curve's return is the compounded fold returns
    assert head["metrics"]["total_return"] == pytest.approx(head["compounded_return"], rel=1e-9)


def test_anchored_walk_forward_trains_every_fold_from_bar_0(capsys: pytest.CaptureFixture[str]) -> None:
    out = _sweep(capsys, *SPACE, "--walk-forward", "500:250:300", "--anchored")
    folds = out["walk_forward"]["folds"]
    assert [f["train"] for f in folds] == [[0, 500], [0, 800], [0, 1100], [0, 1400], [0, 1700]]
    assert [f["test"] for f in folds] == [[500, 750], [800, 1050], [1100, 1350], [1400, 1650], [1700, 1950]]
    assert out["walk_forward"]["step"] == 300 and out["headline"]["oos_bars"] == 1250


def test_stitched_walk_forward_carries_each_folds_final_equity_into_the_next() -> None:
    bars = BarArrays.from_file(GOOG)
    options = {"cash": 10_000.0, "fee_bps": 10.0, "fixed_fee": 5.0}
    evaluate = VectorEvaluator(bars, "sma_cross", options, infer_bars_per_year(bars.ts))
    result = run_walk_forward(evaluate, CANDIDATES, len(bars), train=500, test=250)
    stitched = stitch_out_of_sample(evaluate, result)
    capital = 10_000.0
    for i, fold in enumerate(result.folds):
        t = fold.fold.test
        own, _ = _run(fold.params, t.start, t.stop, fixed_fee=5.0, cash=capital)
        assert np.array_equal(stitched.equity[i * 250 : (i + 1) * 250], own.equity)
        capital = float(own.equity[-1])
    assert stitched.equity[-1] == capital
    assert np.array_equal(stitched.ts, np.concatenate([bars.ts[w.slice] for w in result.oos_windows]))
    assert all(0 <= t.entry_idx < 1500 and t.exit_idx < 1500 for t in stitched.trades)
    assert [t.exit_idx for t in stitched.trades].count(-1) <= 1  # only the last fold may end with a position


def test_deflated_sharpe_ratio_is_that_of_the_best_trial_given_the_number_of_trials(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _sweep(capsys, *SPACE)
    returns = [bar_returns(_run(p, 0, 2148)[0].equity) for p in CANDIDATES if p["fast"] < p["slow"]]
    sharpes = np.array([r.mean() / r.std(ddof=1) for r in returns])
    best = returns[int(np.argmax(sharpes))]
    z = (best - best.mean()) / best.std()
    expected = deflated_sharpe_ratio(float(sharpes.max()), 6, best.size, float(np.mean(z**3)), float(np.mean(z**4)),
                                     float(np.std(sharpes, ddof=1)))
    dsr = out["overfitting"]["dsr"]
    assert dsr["trials"] == 6 and dsr["n_obs"] == 2147 and out["overfitting"]["window"] == [0, 2148]
    assert dsr["sharpe_std_per_bar"] == pytest.approx(float(np.std(sharpes, ddof=1)), rel=1e-9)
    assert dsr["dsr"] == pytest.approx(expected, rel=1e-9)
    assert dsr["dsr"] < dsr["psr"]  # choosing among 6 costs confidence


def test_pbo_is_cscv_on_the_valid_trials_per_bar_returns(capsys: pytest.CaptureFixture[str]) -> None:
    out = _sweep(capsys, *SPACE, "--pbo-splits", "8")
    matrix = np.column_stack([bar_returns(_run(p, 0, 2148)[0].equity) for p in CANDIDATES if p["fast"] < p["slow"]])
    pbo = out["overfitting"]["pbo"]
    assert pbo["skipped"] is None and pbo["splits"] == 8 and pbo["combinations"] == 70
    assert pbo["pbo"] == pytest.approx(probability_of_backtest_overfitting(matrix, 8), abs=1e-12)


def test_pbo_is_skipped_with_a_reason_for_one_trial_or_too_few_bars(capsys: pytest.CaptureFixture[str]) -> None:
    one = _sweep(capsys, "--param", "fast=10", "--param", "slow=30")
    assert one["overfitting"]["pbo"]["pbo"] is None and "1 valid trial" in one["overfitting"]["pbo"]["skipped"]
    assert one["overfitting"]["dsr"]["dsr"] == pytest.approx(one["overfitting"]["dsr"]["psr"])  # N = 1: no deflation
    few = _sweep(capsys, *SPACE, "--pbo-splits", "2000")
    assert few["overfitting"]["pbo"]["pbo"] is None and "too few" in few["overfitting"]["pbo"]["skipped"]


def test_sweep_passes_the_realism_options_to_the_vector_engine(capsys: pytest.CaptureFixture[str]) -> None:
    realism = ["--long-short", "--whole-units", "--stop-loss", "0.05", "--take-profit", "0.1", "--fixed-fee", "2"]
    out = _sweep(capsys, "--param", "fast=10", "--param", "slow=30", *realism)
    result, metrics = _run({"fast": 10, "slow": 30}, 0, 2148, long_short=True, whole_units=True, stop_loss=0.05,
                           take_profit=0.1, fixed_fee=2.0)
    plain, _ = _run({"fast": 10, "slow": 30}, 0, 2148)
    assert out["results"][0]["sharpe"] == pytest.approx(metrics.sharpe, rel=1e-12)
    assert out["results"][0]["trades"] == len(result.trades) != len(plain.trades)
    assert any(t.side == -1 for t in result.trades)


def test_sweep_passes_trailing_and_time_stops_to_the_vector_engine(capsys: pytest.CaptureFixture[str]) -> None:
    out = _sweep(capsys, "--param", "fast=10", "--param", "slow=30", "--trailing-stop", "0.04",
                 "--time-stop", str(20 * 86_400))
    result, metrics = _run({"fast": 10, "slow": 30}, 0, 2148, trailing_stop=0.04, time_stop_s=20 * 86_400)
    plain, _ = _run({"fast": 10, "slow": 30}, 0, 2148)
    assert out["results"][0]["sharpe"] == pytest.approx(metrics.sharpe, rel=1e-12)
    assert [t.exit_idx for t in result.trades] != [t.exit_idx for t in plain.trades]


def test_table_output_shows_the_out_of_sample_headline_and_the_guards_below_the_ranking(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sweep", "--data", str(GOOG), *SPACE, "--train-fraction", "0.7", "--no-progress"]) == 0
    text = capsys.readouterr().out
    ranking, headline = text.index("chosen on bars [0, 1504)"), text.index("OUT OF SAMPLE, bars [1504, 2148)")
    guards = text.index("deflated Sharpe ratio")
    assert ranking < headline < guards < text.index("PBO (CSCV, 16 blocks")
    assert "decay comparison only" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--walk-forward", "500:250:100"], "overlaps"),
    (["--anchored"], "--anchored needs --walk-forward"),
    (["--pbo-splits", "7"], "--pbo-splits"),
    (["--stop-loss", "1.5"], "stop_loss"),
    (["--walk-forward", "2000:500"], "too few"),
    (["--strategy", "no_such"], "no vector kernel"),
])
def test_bad_sweep_options_exit_2_with_a_clear_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", "--data", str(GOOG), *SPACE, *args, "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_a_sweep_without_one_valid_combination_names_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--data", str(GOOG), "--param", "fast=40", "--param", "slow=30", "--json"]) == 2
    assert "must be below slow" in capsys.readouterr().err


@pytest.mark.parametrize("options", [{}, {"long_short": True, "stop_loss": 0.03}])
def test_sweep_metrics_from_trade_rows_equal_those_from_the_trade_objects(options: dict[str, Any]) -> None:
    """The sweep's cheap tuples stand in for VectorResult.trades without changing a single metric."""
    bars = BarArrays.from_file(GOOG)
    result = run_vector("sma_cross", {"fast": 5, "slow": 30}, bars, cash=10_000.0, fee_bps=10.0, **options)
    assert result.equity is not None
    rows = trade_rows(result.records)
    assert [tuple(r) for r in rows] == [(t.entry_idx, t.exit_idx, t.side, t.qty, t.entry_px, t.exit_px, t.pnl, t.fees)
                                        for t in result.trades]
    assert compute_metrics(result.equity, bars.ts, rows) == compute_metrics(result.equity, bars.ts, result.trades)
    assert trade_rows(result.records[:0]) == []


def test_pbo_is_skipped_when_the_return_matrix_exceeds_the_memory_budget(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(guards, "MAX_PBO_CELLS", 6 * 2147 - 1)
    out = _sweep(capsys, *SPACE)
    assert out["overfitting"]["pbo"]["pbo"] is None
    assert "2147 bars x 6 trials exceed" in out["overfitting"]["pbo"]["skipped"]
    assert out["overfitting"]["dsr"]["dsr"] is not None  # the DSR needs no matrix
