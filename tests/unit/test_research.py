"""Research tools (sweeps, walk-forward, look-ahead check) and overfitting statistics (DSR, PBO)."""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from tradewire_backtest.metrics import compute_metrics
from tradewire_backtest.overfitting import (
    cscv_logits,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
)
from tradewire_backtest.research import (
    Fold,
    Window,
    grid,
    lookahead_check,
    random_search,
    run_walk_forward,
    score,
    sweep,
    train_test_split,
    walk_forward,
)

PHI = NormalDist()

# -- parameter sets ---------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_with_the_last_key_varying_fastest() -> None:
    assert grid({"fast": [5, 10], "slow": [20, 30, 40]}) == [
        {"fast": 5, "slow": 20}, {"fast": 5, "slow": 30}, {"fast": 5, "slow": 40},
        {"fast": 10, "slow": 20}, {"fast": 10, "slow": 30}, {"fast": 10, "slow": 40},
    ]
    assert grid({}) == [{}]


def test_random_search_draws_distinct_grid_points_reproducibly() -> None:
    space: dict[str, list[Any]] = {"a": list(range(10)), "b": ["x", "y", "z"], "c": [0.1, 0.2]}
    full = grid(space)
    draw = random_search(space, 20, seed=42)
    assert len(draw) == 20
    assert all(p in full for p in draw)
    assert len({tuple(p.items()) for p in draw}) == 20
    assert draw == random_search(space, 20, seed=42)
    assert draw != random_search(space, 20, seed=43)
    everything = random_search(space, 1000, seed=1)
    assert sorted(map(str, everything)) == sorted(map(str, full))


def test_random_search_handles_a_space_too_big_to_enumerate() -> None:
    space = {f"p{i}": list(range(100)) for i in range(10)}  # 10^20 combinations
    draw = random_search(space, 5, seed=0)
    assert len(draw) == 5 and all(set(p) == set(space) for p in draw)


# -- windows ----------------------------------------------------------------------------------


def test_train_test_split_keeps_the_test_bars_after_the_training_bars() -> None:
    assert train_test_split(100, 0.7) == (Window(0, 70), Window(70, 100))
    train, test = train_test_split(3, 0.99)
    assert (train.size, test.size) == (2, 1)
    with pytest.raises(ValueError):
        train_test_split(100, 1.0)


def test_walk_forward_rolls_train_and_test_windows_by_the_test_length() -> None:
    folds = list(walk_forward(100, train=40, test=20))
    assert folds == [
        Fold(0, Window(0, 40), Window(40, 60)),
        Fold(1, Window(20, 60), Window(60, 80)),
        Fold(2, Window(40, 80), Window(80, 100)),
    ]


def test_walk_forward_with_a_step_and_anchored_windows() -> None:
    folds = list(walk_forward(100, train=50, test=20, step=15, anchored=True))
    assert [(f.train.start, f.train.stop, f.test.start, f.test.stop) for f in folds] == [
        (0, 50, 50, 70), (0, 65, 65, 85), (0, 80, 80, 100)]
    assert [f.test.start for f in walk_forward(99, train=50, test=20, step=15)] == [50, 65]  # no partial window


def test_walk_forward_rejects_data_shorter_than_one_fold() -> None:
    with pytest.raises(ValueError, match="too few"):
        walk_forward(50, train=40, test=20)


# -- optimisation -----------------------------------------------------------------------------


def regime_evaluate(calls: list[tuple[int, int, int]]) -> Any:
    """Score -|k - best_k| + start/1000: the best k is 1 for windows ending by bar 100, 3 for later ones."""

    def evaluate(params: dict[str, Any], start: int, stop: int) -> float:
        calls.append((params["k"], start, stop))
        best = 1 if stop <= 100 else 3
        k: int = params["k"]
        return -abs(k - best) + start / 1000  # window-dependent so OOS results are recognisable

    return evaluate


def test_walk_forward_optimises_in_sample_and_reports_only_the_out_of_sample_results() -> None:
    calls: list[tuple[int, int, int]] = []
    wf = run_walk_forward(regime_evaluate(calls), {"k": [1, 2, 3]}, 160, train=60, test=20)
    # folds: train [0,60) [20,80) [40,100) [60,120) [80,140); tests [60,80) … [140,160)
    assert [f.params for f in wf.folds] == [{"k": 1}, {"k": 1}, {"k": 1}, {"k": 3}, {"k": 3}]
    expected_oos = [-abs(k - (1 if stop <= 100 else 3)) + start / 1000
                    for k, (start, stop) in zip([1, 1, 1, 3, 3], [(60, 80), (80, 100), (100, 120), (120, 140),
                                                                    (140, 160)], strict=True)]
    np.testing.assert_allclose(wf.oos_scores, expected_oos)
    assert wf.oos_windows == tuple(Window(s, s + 20) for s in range(60, 160, 20))
    assert wf.oos_bars == 100
    # every test window was evaluated exactly once, with the in-sample choice; candidates only on train windows
    test_calls = [c for c in calls if (c[1], c[2]) in {(w.start, w.stop) for w in wf.oos_windows}]
    assert [(k, s) for k, s, _ in test_calls] == [(1, 60), (1, 80), (1, 100), (3, 120), (3, 140)]
    assert wf.folds[2].in_sample_score == pytest.approx(0.04)  # kept for comparison only


def test_walk_forward_with_metrics_compounds_the_out_of_sample_returns() -> None:
    ts = 1_704_067_200 * 10**9 + np.arange(400, dtype=np.int64) * 86_400 * 10**9
    rng = np.random.default_rng(5)
    prices = 100 * np.cumprod(1 + rng.normal(0, 0.01, 400))

    def evaluate(params: dict[str, Any], start: int, stop: int) -> Any:
        equity = 1000 * (prices[start:stop] / prices[start]) ** params["lev"]
        return compute_metrics(equity, ts[start:stop], [])

    wf = run_walk_forward(evaluate, [{"lev": 1}, {"lev": 2}], 400, train=100, test=50, objective="total_return")
    expected = math.prod(1 + f.result.total_return for f in wf.folds if not isinstance(f.result, float)) - 1
    assert wf.compounded_return() == pytest.approx(expected)
    assert all(f.score == f.result.total_return for f in wf.folds if not isinstance(f.result, float))
    summary = wf.to_dict()
    assert len(summary["folds"]) == 6 and summary["oos_bars"] == 300


def test_walk_forward_accepts_a_custom_optimiser() -> None:
    chosen: list[tuple[int, int]] = []

    def optimiser(start: int, stop: int) -> dict[str, Any]:
        chosen.append((start, stop))
        return {"k": 2}

    wf = run_walk_forward(regime_evaluate([]), [], 100, train=50, test=25, optimiser=optimiser)
    assert chosen == [(0, 50), (25, 75)]
    assert [f.params for f in wf.folds] == [{"k": 2}, {"k": 2}]


def test_sweep_picks_the_first_best_and_ranks_nan_last() -> None:
    values = {1: 0.5, 2: math.nan, 3: 0.7, 4: 0.7}
    result = sweep(lambda p, a, b: values[p["k"]], {"k": [1, 2, 3, 4]}, 0, 10)
    assert result.best.params == {"k": 3}
    assert result.scores[1] == -math.inf
    assert score(compute_metrics(np.ones(3), np.arange(3, dtype=np.int64), []), "profit_factor") == -math.inf
    assert score(2.5) == 2.5 and score(2.0, lambda r: -float(r)) == -2.0  # type: ignore[arg-type]


def test_progress_bars_can_be_enabled_for_long_sweeps() -> None:
    result = sweep(lambda p, a, b: float(p["k"]), {"k": [1, 2]}, 0, 10, progress=True)
    assert result.best.params == {"k": 2}
    wf = run_walk_forward(lambda p, a, b: float(p["k"]), {"k": [1, 2]}, 30, train=10, test=10, progress=True)
    assert len(wf.folds) == 2


# -- look-ahead -------------------------------------------------------------------------------

PRICES = 100 + np.cumsum(np.random.default_rng(11).normal(size=500))


def moving_average_signal(k: int) -> np.ndarray:
    x = PRICES[:k]
    out = np.zeros(k)
    c = np.cumsum(np.insert(x, 0, 0.0))
    ma = np.full(k, np.nan)
    ma[9:] = (c[10:] - c[:-10]) / 10
    out[x > ma] = 1.0
    return out


def test_lookahead_check_passes_a_strategy_that_only_uses_the_past() -> None:
    result = lookahead_check(moving_average_signal, 500, checkpoints=8)
    assert result.ok and result.first_bad_bar is None
    assert result.checkpoints == tuple(500 * i // 9 for i in range(1, 9))
    assert "no look-ahead" in str(result)


def test_lookahead_check_reports_a_strategy_that_uses_the_next_bar() -> None:
    def peeking(k: int) -> np.ndarray:
        x = PRICES[:k]
        out = np.zeros(k, dtype=np.int8)
        out[:-1] = np.sign(x[1:] - x[:-1])  # tomorrow's move, known today
        return out

    result = lookahead_check(peeking, 500, checkpoints=[100, 250, 400])
    assert not result.ok
    assert (result.first_bad_bar, result.checkpoint) == (99, 100)  # the last bar of the shortest truncation
    assert [k for k, _ in result.failures] == [100, 250, 400]
    assert "bar 99" in str(result)


def test_lookahead_check_reports_full_sample_normalisation_from_the_first_bar() -> None:
    def zscore(k: int) -> np.ndarray:
        x = PRICES[:k]
        z: np.ndarray = (x - x.mean()) / x.std()
        return z  # the mean of the whole sample leaks the future into bar 0

    result = lookahead_check(zscore, 500, checkpoints=[300])
    assert (result.ok, result.first_bad_bar) == (False, 0)


def test_lookahead_check_compares_multi_asset_signals_by_bar_and_tolerate_rounding_when_asked() -> None:
    def two_assets(k: int) -> np.ndarray:
        return np.column_stack([PRICES[:k], PRICES[:k] * (1 + 1e-12 * (k == 500))])

    assert not lookahead_check(two_assets, 500, checkpoints=[200]).ok
    assert lookahead_check(two_assets, 500, checkpoints=[200], rtol=1e-9).ok


def test_lookahead_check_rejects_signals_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="expected 100"):
        lookahead_check(lambda k: np.zeros(max(k - 1, 1) if k < 500 else k), 500, checkpoints=[100])


# -- deflated Sharpe ratio --------------------------------------------------------------------


def test_deflated_sharpe_reproduces_the_papers_numerical_example() -> None:
    # Bailey & López de Prado (2014): SR 2.5 a year, 5 years of daily data, skew -3, kurtosis 10,
    # 100 trials whose annualised Sharpe ratios have variance 1/2 → DSR ≈ 0.9004.
    dsr = deflated_sharpe_ratio(2.5 / math.sqrt(250), 100, 1250, -3.0, 10.0, math.sqrt(0.5 / 250))
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_deflated_sharpe_of_one_trial_is_the_probabilistic_sharpe_ratio() -> None:
    sr, t, skew, kurt = 0.12, 500, -0.5, 5.0
    psr = PHI.cdf(sr * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    assert deflated_sharpe_ratio(sr, 1, t, skew, kurt, 0.05) == pytest.approx(psr)
    assert probabilistic_sharpe_ratio(sr, t, skew, kurt) == pytest.approx(psr)
    assert psr > 0.99  # a high Sharpe over 500 observations


def test_deflated_sharpe_decreases_as_the_number_of_trials_grows() -> None:
    dsrs = [deflated_sharpe_ratio(0.1, n, 1000, 0.0, 3.0, 0.04) for n in (1, 2, 10, 100, 1000, 10_000)]
    assert all(a > b for a, b in itertools.pairwise(dsrs))
    assert dsrs[0] > 0.99 and dsrs[-1] < 0.5


def test_expected_max_sharpe_approximates_the_simulated_maximum_of_independent_trials() -> None:
    rng = np.random.default_rng(0)
    simulated = rng.normal(0.0, 0.3, size=(20_000, 100)).max(axis=1).mean()
    assert expected_max_sharpe(100, 0.3) == pytest.approx(simulated, rel=0.02)
    assert expected_max_sharpe(1, 0.3) == 0.0


# -- probability of backtest overfitting ------------------------------------------------------


def brute_force_logits(m: np.ndarray, s: int) -> list[float]:
    blocks = np.array_split(np.arange(m.shape[0]), s)
    out = []
    for chosen in itertools.combinations(range(s), s // 2):
        rows_in = np.concatenate([blocks[i] for i in chosen])
        rows_out = np.concatenate([blocks[i] for i in range(s) if i not in chosen])
        sr_in = m[rows_in].mean(axis=0) / m[rows_in].std(axis=0, ddof=1)
        sr_out = m[rows_out].mean(axis=0) / m[rows_out].std(axis=0, ddof=1)
        best = int(np.argmax(sr_in))
        rank = 1 + sum(sr_out[j] < sr_out[best] for j in range(m.shape[1]))  # no ties with continuous data
        w = rank / (m.shape[1] + 1)
        out.append(math.log(w / (1 - w)))
    return out


def test_cscv_logits_match_a_brute_force_implementation() -> None:
    m = np.random.default_rng(2).normal(0.001, 0.01, size=(123, 7))
    np.testing.assert_allclose(cscv_logits(m, 6), brute_force_logits(m, 6))


def test_pbo_of_pure_noise_strategies_is_about_one_half() -> None:
    pbos = [probability_of_backtest_overfitting(np.random.default_rng(seed).normal(0, 0.01, (800, 40)), 10)
            for seed in range(20)]
    assert 0.4 < float(np.mean(pbos)) < 0.6


def test_pbo_is_near_one_when_in_sample_winners_are_out_of_sample_losers() -> None:
    noise = np.random.default_rng(3).normal(0, 0.01, (1000, 50))
    zero_sum = (noise - noise.mean(axis=0)) / noise.std(axis=0)  # equal full-sample means: gains get paid back
    assert probability_of_backtest_overfitting(zero_sum) > 0.95


def test_pbo_is_near_zero_when_one_strategy_dominates_everywhere() -> None:
    m = np.random.default_rng(4).normal(0, 0.01, (1000, 50))
    m[:, 17] += 0.005
    assert probability_of_backtest_overfitting(m) < 0.05


def test_pbo_needs_an_even_number_of_splits_and_two_strategies() -> None:
    m = np.random.default_rng(0).normal(size=(100, 5))
    with pytest.raises(ValueError, match="even"):
        probability_of_backtest_overfitting(m, 5)
    with pytest.raises(ValueError, match="two strategies"):
        probability_of_backtest_overfitting(m[:, :1])
    with pytest.raises(ValueError, match="too few"):
        probability_of_backtest_overfitting(m[:20], 16)
