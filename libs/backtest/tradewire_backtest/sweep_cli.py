"""``tradewire sweep``: many parameter combinations of a vectorized strategy, ranked, with the
overfitting guards of :mod:`tradewire_backtest.guards`.

Three modes. Plain: every combination on all bars, ranked (in-sample figures, put in context by the
deflated Sharpe ratio and PBO). ``--train-fraction F``: choose on the first F of the bars; the
headline is the chosen params' out-of-sample result, the in-sample score only its decay
comparison. ``--walk-forward TRAIN:TEST[:STEP]``: re-choose on every rolling (or ``--anchored``)
training window and report only the stitched out-of-sample results.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradewire_backtest.cli import _param, add_position_options

if TYPE_CHECKING:
    from tradewire_backtest.guards import Selection, VectorEvaluator
    from tradewire_backtest.research import Params


def _values(text: str) -> tuple[str, list[int | float | str | bool]]:
    key, sep, raw = text.partition("=")
    if not sep or not key or not raw:
        raise argparse.ArgumentTypeError(f"--param expects KEY=V1,V2,..., got {text!r}")
    return key, [_param(f"{key}={part}")[1] for part in raw.split(",") if part]


def _walk(text: str) -> tuple[int, int, int | None]:
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) not in (2, 3) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"--walk-forward expects TRAIN:TEST[:STEP] in bars (positive), got {text!r}")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"--train-fraction must be within (0, 1), got {text}")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser("sweep", help="grid or random search over strategy parameters (vector mode)")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--strategy", default="sma_cross")
    p.add_argument("--param", action="append", type=_values, default=[], metavar="KEY=V1,V2,...")
    p.add_argument("--random", type=int, default=0, help="draw N combinations at random instead of the grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--objective", default="sharpe", help="a metric to maximise (sharpe, total_return, calmar, …)")
    p.add_argument("--cash", type=float, default=10_000.0)
    p.add_argument("--fee-bps", type=float, default=10.0)
    p.add_argument("--fixed-fee", type=float, default=0.0, help="fixed fee per order")
    p.add_argument("--slippage-bps", type=float, default=0.0)
    p.add_argument("--fill", choices=("close", "next_open"), default="close")
    add_position_options(p)
    split = p.add_mutually_exclusive_group()
    split.add_argument("--train-fraction", type=_fraction, metavar="F",
                       help="choose on the first F of the bars, report the rest (out of sample)")
    split.add_argument("--walk-forward", type=_walk, metavar="TRAIN:TEST[:STEP]",
                       help="re-choose on rolling windows of TRAIN bars, report the next TEST bars (STEP: TEST)")
    p.add_argument("--anchored", action="store_true", help="walk-forward training windows all start at bar 0")
    p.add_argument("--pbo-splits", type=int, default=16, help="CSCV blocks for PBO (even, default 16)")
    p.add_argument("--top", type=int, default=10, help="rows in the table")
    p.add_argument("--json", action="store_true", help="print everything as one JSON object on the last line")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tradewire_backtest.arrays import BarArrays
    from tradewire_backtest.guards import VectorEvaluator
    from tradewire_backtest.metrics import infer_bars_per_year
    from tradewire_backtest.research import grid, random_search
    from tradewire_backtest.vector import VECTOR_STRATEGIES

    def fail(message: str) -> int:
        print(f"tradewire sweep: {message}", file=sys.stderr)
        return 2

    space = dict(args.param)
    if not space:
        return fail("give at least one --param KEY=V1,V2,...")
    if args.strategy not in VECTOR_STRATEGIES:
        return fail(f"no vector kernel for strategy {args.strategy!r}; vector mode has: {', '.join(VECTOR_STRATEGIES)}")
    if args.anchored and args.walk_forward is None:
        return fail("--anchored needs --walk-forward")
    if args.pbo_splits < 2 or args.pbo_splits % 2:
        return fail(f"--pbo-splits must be an even number >= 2, got {args.pbo_splits}")
    if args.walk_forward and args.walk_forward[2] is not None and args.walk_forward[2] < args.walk_forward[1]:
        return fail("--walk-forward STEP below TEST overlaps the test windows, which cannot be stitched")
    try:
        bars = BarArrays.from_file(args.data)
    except (ValueError, FileNotFoundError) as exc:
        return fail(str(exc))
    if len(bars) < 2:
        return fail(f"{args.data} has {len(bars)} bar(s); a sweep needs at least 2")
    candidates = random_search(space, args.random, args.seed) if args.random else grid(space)
    options = {"cash": args.cash, "fee_bps": args.fee_bps, "fixed_fee": args.fixed_fee,
               "slippage_bps": args.slippage_bps, "fill": args.fill, "long_short": args.long_short,
               "whole_units": args.whole_units, "stop_loss": args.stop_loss, "take_profit": args.take_profit,
               "trailing_stop": args.trailing_stop, "time_stop_s": args.time_stop}
    evaluate = VectorEvaluator(bars, args.strategy, options, infer_bars_per_year(bars.ts))
    reasons = [r for r in map(evaluate.check, candidates) if r is not None]
    if len(reasons) == len(candidates):
        return fail(f"no valid parameter combination ({len(candidates)} tried); first: {reasons[0]}")
    progress = not args.no_progress and not args.json
    try:
        if args.walk_forward:
            out = _walk_forward(args, evaluate, candidates, progress)
        else:
            out = _split(args, evaluate, candidates, progress)
    except (ValueError, LookupError, AttributeError) as exc:
        return fail(str(exc))
    out = {"strategy": args.strategy, "data": str(args.data), "objective": args.objective, "bars": len(bars),
           "trials": len(candidates), "valid_trials": len(candidates) - len(reasons), **out}
    if args.json:
        print(json.dumps(out))
    else:
        from tradewire_backtest.sweep_report import print_report

        print_report(out, args.top)
    return 0


def _guards(args: argparse.Namespace, selection: Selection) -> dict[str, Any]:
    from tradewire_backtest.guards import backtest_overfitting, deflated_sharpe

    w = selection.sweep.window
    return {"window": [w.start, w.stop], "best_params": selection.sweep.best.params,
            "dsr": deflated_sharpe(selection), "pbo": backtest_overfitting(selection, args.pbo_splits)}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _split(args: argparse.Namespace, evaluate: VectorEvaluator, candidates: list[Params],
           progress: bool) -> dict[str, Any]:
    """Plain (all bars) or ``--train-fraction`` mode."""
    from tradewire_backtest.guards import select
    from tradewire_backtest.metrics import Metrics
    from tradewire_backtest.research import Window, score, train_test_split

    n = len(evaluate.bars)
    train, test = train_test_split(n, args.train_fraction) if args.train_fraction else (Window(0, n), None)
    selection = select(evaluate, candidates, train, objective=args.objective, progress=progress)
    ranked = sorted(selection.sweep.trials, key=lambda t: t.score, reverse=True)
    best = ranked[0]
    if test is None:
        rows = [{"params": t.params, "score": _finite(t.score),
                 **(t.result.to_dict() if isinstance(t.result, Metrics) else {"valid": False})} for t in ranked]
        headline = {"kind": "in_sample", "window": [0, n], "params": best.params, "score": _finite(best.score),
                    "metrics": best.result.to_dict() if isinstance(best.result, Metrics) else None}
        return {"mode": "full", "results": rows, "headline": headline, "overfitting": _guards(args, selection)}
    # --train-fraction: only the selection score is shown in sample, no other in-sample figure
    rows = [{"params": t.params, "in_sample_score": _finite(t.score), "valid": isinstance(t.result, Metrics)}
            for t in ranked]
    oos = evaluate(best.params, test.start, test.stop)
    oos_score = score(oos, args.objective)
    headline = {"kind": "out_of_sample", "window": [test.start, test.stop], "train": [train.start, train.stop],
                "params": best.params, "score": _finite(oos_score),
                "metrics": oos.to_dict() if isinstance(oos, Metrics) else None,
                "in_sample_score": _finite(best.score), "decay": _finite(oos_score - best.score)}
    return {"mode": "train_test", "results": rows, "headline": headline, "overfitting": _guards(args, selection)}


def _walk_forward(args: argparse.Namespace, evaluate: VectorEvaluator, candidates: list[Params],
                  progress: bool) -> dict[str, Any]:
    """``--walk-forward`` mode: per-fold params and the stitched out-of-sample curve only."""
    from tradewire_backtest.guards import deflated_sharpe, select, stitch_out_of_sample
    from tradewire_backtest.metrics import Metrics
    from tradewire_backtest.research import Window, run_walk_forward

    train, test, step = args.walk_forward
    fold_dsr: dict[tuple[int, int], dict[str, Any]] = {}

    def optimiser(start: int, stop: int) -> Params:
        selection = select(evaluate, candidates, Window(start, stop), objective=args.objective, keep_returns=False)
        fold_dsr[(start, stop)] = deflated_sharpe(selection)
        return selection.sweep.best.params

    n = len(evaluate.bars)
    result = run_walk_forward(evaluate, [], n, train=train, test=test, step=step, anchored=args.anchored,
                              objective=args.objective, optimiser=optimiser, progress=progress)
    stitched = stitch_out_of_sample(evaluate, result)
    folds = []
    for f in result.folds:
        dsr = fold_dsr[(f.fold.train.start, f.fold.train.stop)]
        folds.append({"train": [f.fold.train.start, f.fold.train.stop], "test": [f.fold.test.start, f.fold.test.stop],
                      "params": f.params, "in_sample_score": _finite(f.in_sample_score),
                      "oos_score": _finite(f.score), "dsr": dsr["dsr"], "dsr_skipped": dsr["skipped"],
                      "oos": f.result.to_dict() if isinstance(f.result, Metrics) else None})
    headline = {"kind": "out_of_sample", "windows": [[w.start, w.stop] for w in result.oos_windows],
                "oos_bars": result.oos_bars, "compounded_return": result.compounded_return(),
                "metrics": stitched.metrics.to_dict()}
    walk = {"train": train, "test": test, "step": step or test, "anchored": args.anchored, "folds": folds}
    # DSR and PBO of choosing among the candidates on all bars: how much a single pick would be luck
    selection = select(evaluate, candidates, Window(0, n), objective=args.objective, progress=progress)
    return {"mode": "walk_forward", "headline": headline, "walk_forward": walk, "overfitting": _guards(args, selection)}
