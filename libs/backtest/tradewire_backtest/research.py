"""Engine-agnostic research tools: parameter sweeps, walk-forward optimisation, look-ahead checks.

Everything works through one callable, so any engine (event mode, vector mode, a notebook
function) plugs in::

    evaluate(params: dict, start: int, stop: int) -> float | Metrics

which backtests ``params`` on the bars ``[start, stop)`` (half-open bar indices) and returns a
score (higher is better) or a :class:`~tradewire_backtest.metrics.Metrics`, reduced to a score by
``objective`` (a Metrics attribute name such as ``"sharpe"``, or a callable). Warm-up bars before
``start`` are the evaluator's business; it must not read bars at or after ``stop``.
"""

from __future__ import annotations

import itertools
import math
import random
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tradewire_backtest.metrics import Metrics

Params = dict[str, Any]
Result = float | Metrics
Evaluate = Callable[[Params, int, int], Result]
Objective = str | Callable[[Result], float]
ParamSpace = Mapping[str, Sequence[Any]]


# -- parameter sets ---------------------------------------------------------------------------


def grid(param_space: ParamSpace) -> list[Params]:
    """Every combination (cartesian product) in key order, the last key varying fastest.

    ``grid({"fast": [5, 10], "slow": [20]})`` → ``[{"fast": 5, "slow": 20}, {"fast": 10, "slow": 20}]``.
    """
    keys = list(param_space)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(param_space[k] for k in keys))]


def random_search(param_space: ParamSpace, n: int, seed: int | None = None) -> list[Params]:
    """``n`` distinct combinations drawn uniformly without replacement from the grid (all of them,
    in random order, when the grid is smaller). Reproducible for a given ``seed``; the grid is never
    materialised, so huge spaces are fine."""
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    keys = list(param_space)
    choices = [list(param_space[k]) for k in keys]
    total = math.prod(len(c) for c in choices)
    rng, k = random.Random(seed), min(n, total)
    if total <= sys.maxsize:
        flats = rng.sample(range(total), k)
    else:  # too many combinations for range(): rejection sampling, collisions are negligible
        drawn: dict[int, None] = {}
        while len(drawn) < k:
            drawn.setdefault(rng.randrange(total))
        flats = list(drawn)
    out: list[Params] = []
    for flat in flats:
        params: Params = {}
        for key, values in zip(reversed(keys), reversed(choices), strict=True):  # mixed radix, last key fastest
            flat, digit = divmod(flat, len(values))
            params[key] = values[digit]
        out.append({k: params[k] for k in keys})
    return out


# -- windows ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """Half-open bar range ``[start, stop)``."""

    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)


@dataclass(frozen=True, slots=True)
class Fold:
    """One walk-forward step: optimise on ``train``, then trade ``test`` (which follows it)."""

    index: int
    train: Window
    test: Window


def train_test_split(n_bars: int, train_fraction: float = 0.7) -> tuple[Window, Window]:
    """``[0, k)`` and ``[k, n_bars)`` with ``k = round(n_bars * train_fraction)``; both non-empty.
    No shuffling: the test bars always come after the training bars."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be within (0, 1), got {train_fraction}")
    if n_bars < 2:
        raise ValueError(f"need at least 2 bars to split, got {n_bars}")
    k = min(max(round(n_bars * train_fraction), 1), n_bars - 1)
    return Window(0, k), Window(k, n_bars)


def walk_forward(
    n_bars: int, train: int, test: int, step: int | None = None, *, anchored: bool = False
) -> Iterator[Fold]:
    """Rolling folds: fold ``i`` trains on ``[s, s + train)`` and tests on ``[s + train, s + train + test)``
    with ``s = i * step`` (``step`` defaults to ``test``, so the test windows tile the data without
    overlap). ``anchored`` keeps every training window starting at bar 0 (expanding window). Only
    full test windows are produced: the last ``< step`` bars may stay untested.
    """
    step = test if step is None else step
    if train < 1 or test < 1 or step < 1:
        raise ValueError(f"train, test and step must be positive, got {train}, {test}, {step}")
    if train + test > n_bars:
        raise ValueError(f"{n_bars} bars are too few for one fold of train={train} + test={test}")
    return _folds(n_bars, train, test, step, anchored)


def _folds(n_bars: int, train: int, test: int, step: int, anchored: bool) -> Iterator[Fold]:
    s, i = 0, 0
    while s + train + test <= n_bars:
        yield Fold(i, Window(0 if anchored else s, s + train), Window(s + train, s + train + test))
        s += step
        i += 1


# -- optimisation -----------------------------------------------------------------------------


@contextmanager
def _ticker(enabled: bool, description: str, total: int) -> Iterator[Callable[[], None]]:
    """A ``tick()`` that advances a rich progress bar (or does nothing when disabled)."""
    if not enabled:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def score(result: Result, objective: Objective = "sharpe") -> float:
    """A result as one number, higher is better: a float as is, a Metrics by its ``objective``
    attribute (or ``objective(result)`` for a callable). None and NaN become ``-inf``."""
    if callable(objective):
        value: Any = objective(result)
    elif isinstance(result, Metrics):
        value = getattr(result, objective)
    else:
        value = result
    number = float(value) if value is not None else math.nan
    return -math.inf if math.isnan(number) else number


@dataclass(frozen=True, slots=True)
class Trial:
    params: Params
    result: Result
    score: float


@dataclass(frozen=True, slots=True)
class Sweep:
    """Every candidate's result on one window; ``best`` is the first one with the highest score."""

    window: Window
    trials: tuple[Trial, ...]

    @property
    def best(self) -> Trial:
        return max(self.trials, key=lambda t: t.score)  # max keeps the first of equal scores

    @property
    def scores(self) -> npt.NDArray[np.float64]:
        return np.array([t.score for t in self.trials], dtype=np.float64)


def _candidates(candidates: Sequence[Params] | ParamSpace) -> list[Params]:
    out = grid(candidates) if isinstance(candidates, Mapping) else [dict(c) for c in candidates]
    if not out:
        raise ValueError("no parameter candidates")
    return out


def sweep(
    evaluate: Evaluate,
    candidates: Sequence[Params] | ParamSpace,
    start: int,
    stop: int,
    *,
    objective: Objective = "sharpe",
    progress: bool = False,
) -> Sweep:
    """Evaluate every candidate (a list of dicts, or a param space expanded by :func:`grid`) on ``[start, stop)``."""
    params_list = _candidates(candidates)
    trials: list[Trial] = []
    with _ticker(progress, f"sweep [{start}, {stop})", len(params_list)) as tick:
        for params in params_list:
            result = evaluate(params, start, stop)
            trials.append(Trial(params, result, score(result, objective)))
            tick()
    return Sweep(Window(start, stop), tuple(trials))


@dataclass(frozen=True, slots=True)
class FoldResult:
    """The parameters chosen in-sample and how they did out of sample.

    ``in_sample_score`` is kept only to measure the in-sample → out-of-sample decay; every aggregate
    of :class:`WalkForwardResult` uses the out-of-sample results alone.
    """

    fold: Fold
    params: Params
    in_sample_score: float
    result: Result  # out of sample, on fold.test
    score: float  # out of sample


@dataclass(frozen=True, slots=True)
class WalkForwardResult:
    """Out-of-sample results of each fold, in time order (their test windows concatenated)."""

    folds: tuple[FoldResult, ...]

    @property
    def oos_scores(self) -> npt.NDArray[np.float64]:
        return np.array([f.score for f in self.folds], dtype=np.float64)

    @property
    def oos_windows(self) -> tuple[Window, ...]:
        return tuple(f.fold.test for f in self.folds)

    @property
    def oos_bars(self) -> int:
        """Bars traded out of sample (the test windows; they do not overlap when ``step >= test``)."""
        return sum(w.size for w in self.oos_windows)

    def compounded_return(self) -> float | None:
        """``prod(1 + total_return) - 1`` over the folds' out-of-sample Metrics: the return of the
        stitched out-of-sample equity curve, capital carried from fold to fold; None for float results."""
        if not all(isinstance(f.result, Metrics) for f in self.folds):
            return None
        growth = math.prod(1.0 + f.result.total_return for f in self.folds if isinstance(f.result, Metrics))
        return growth - 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: per fold the windows, the chosen params and the out-of-sample result."""
        folds = []
        for f in self.folds:
            result = f.result.to_dict() if isinstance(f.result, Metrics) else float(f.result)
            folds.append({
                "train": [f.fold.train.start, f.fold.train.stop], "test": [f.fold.test.start, f.fold.test.stop],
                "params": f.params, "oos_score": f.score if math.isfinite(f.score) else None, "oos": result,
            })
        compounded = self.compounded_return()
        return {"folds": folds, "oos_bars": self.oos_bars, "compounded_return": compounded}


def run_walk_forward(
    evaluate: Evaluate,
    candidates: Sequence[Params] | ParamSpace,
    n_bars: int,
    *,
    train: int,
    test: int,
    step: int | None = None,
    anchored: bool = False,
    objective: Objective = "sharpe",
    optimiser: Callable[[int, int], Params] | None = None,
    progress: bool = False,
) -> WalkForwardResult:
    """Walk-forward optimisation: on each fold of :func:`walk_forward`, pick the candidate with the
    best ``objective`` on the training window, then evaluate only that one on the test window.

    ``optimiser(start, stop) -> params`` replaces the built-in exhaustive sweep over ``candidates``
    (pass ``candidates=[]`` then). The result holds out-of-sample results only (plus the in-sample
    score of the chosen params, for comparison); it never reports an in-sample figure as performance.
    """
    folds = list(walk_forward(n_bars, train, test, step, anchored=anchored))
    params_list = [] if optimiser is not None else _candidates(candidates)
    out: list[FoldResult] = []
    with _ticker(progress, "walk-forward", len(folds) * (len(params_list) + 1)) as tick:
        for fold in folds:
            if optimiser is not None:
                best_params = dict(optimiser(fold.train.start, fold.train.stop))
                in_sample = score(evaluate(best_params, fold.train.start, fold.train.stop), objective)
            else:
                best: Trial | None = None
                for params in params_list:
                    trial_result = evaluate(params, fold.train.start, fold.train.stop)
                    trial = Trial(params, trial_result, score(trial_result, objective))
                    if best is None or trial.score > best.score:
                        best = trial
                    tick()
                assert best is not None
                best_params, in_sample = best.params, best.score
            result = evaluate(best_params, fold.test.start, fold.test.stop)
            out.append(FoldResult(fold, best_params, in_sample, result, score(result, objective)))
            tick()
    return WalkForwardResult(tuple(out))


# -- look-ahead -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LookaheadResult:
    """``ok`` when every truncated run reproduced the full run's signals on its bars.

    ``first_bad_bar`` is the earliest bar whose signal changed once later bars were added (the
    strategy peeks ahead there), ``checkpoint`` the truncation length that exposed it, and
    ``failures`` every failing checkpoint as ``(length, first differing bar)``.
    """

    ok: bool
    first_bad_bar: int | None
    checkpoint: int | None
    checkpoints: tuple[int, ...]
    failures: tuple[tuple[int, int], ...]

    def __str__(self) -> str:
        if self.ok:
            return f"no look-ahead at {len(self.checkpoints)} checkpoints"
        return (f"look-ahead: the signal at bar {self.first_bad_bar} changes when bars after it are added "
                f"(data truncated to {self.checkpoint} bars); {len(self.failures)}/{len(self.checkpoints)} "
                "checkpoints differ")


def _first_difference(full: npt.NDArray[Any], part: npt.NDArray[Any], rtol: float, atol: float) -> int | None:
    if full.dtype.kind in "fc" or part.dtype.kind in "fc":
        same = np.isclose(full, part, rtol=rtol, atol=atol, equal_nan=True)
    else:
        same = full == part
    same = np.asarray(same).reshape(len(full), -1).all(axis=1)
    bad = np.flatnonzero(~same)
    return int(bad[0]) if bad.size else None


def lookahead_check(
    signals_fn: Callable[[int], npt.ArrayLike],
    n_bars: int,
    checkpoints: int | Sequence[int] = 10,
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
    progress: bool = False,
) -> LookaheadResult:
    """Check that signals only use the past: ``signals_fn(k)`` computes the signals on the first
    ``k`` bars only (an array of length ``k``, 1-D or ``k × assets``); for every checkpoint ``k`` it
    must equal ``signals_fn(n_bars)[:k]`` (exactly by default; NaN equals NaN). ``checkpoints`` is a
    list of lengths or a count of evenly spaced ones, ``k_i = n_bars * i // (count + 1)``.
    """
    if isinstance(checkpoints, int):
        ks = sorted({n_bars * i // (checkpoints + 1) for i in range(1, checkpoints + 1)} - {0})
    else:
        ks = sorted(set(int(k) for k in checkpoints))
    if not ks or ks[0] < 1 or ks[-1] > n_bars:
        raise ValueError(f"checkpoints must be within 1..{n_bars}, got {ks}")
    full = np.asarray(signals_fn(n_bars))
    if len(full) != n_bars:
        raise ValueError(f"signals_fn({n_bars}) returned {len(full)} signals")
    failures: list[tuple[int, int]] = []
    with _ticker(progress, "look-ahead check", len(ks)) as tick:
        for k in ks:
            part = np.asarray(signals_fn(k))
            if len(part) != k:
                raise ValueError(f"signals_fn({k}) returned {len(part)} signals, expected {k}")
            bad = _first_difference(full[:k], part, rtol, atol)
            if bad is not None:
                failures.append((k, bad))
            tick()
    if not failures:
        return LookaheadResult(True, None, None, tuple(ks), ())
    k, bar = min(failures, key=lambda kb: (kb[1], kb[0]))
    return LookaheadResult(False, bar, k, tuple(ks), tuple(failures))
