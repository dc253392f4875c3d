"""``tradewire sweep``: many parameter combinations of a vectorized strategy, ranked."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from tradewire_backtest.cli import _param


def _values(text: str) -> tuple[str, list[int | float | str | bool]]:
    key, sep, raw = text.partition("=")
    if not sep or not key or not raw:
        raise argparse.ArgumentTypeError(f"--param expects KEY=V1,V2,..., got {text!r}")
    return key, [_param(f"{key}={part}")[1] for part in raw.split(",") if part]


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
    p.add_argument("--slippage-bps", type=float, default=0.0)
    p.add_argument("--fill", choices=("close", "next_open"), default="close")
    p.add_argument("--top", type=int, default=10, help="rows in the table")
    p.add_argument("--json", action="store_true", help="print every trial as one JSON object on the last line")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tradewire_backtest.arrays import BarArrays
    from tradewire_backtest.metrics import Metrics, compute_metrics
    from tradewire_backtest.research import grid, random_search, sweep
    from tradewire_backtest.vector import run_vector

    space = dict(args.param)
    if not space:
        print("tradewire sweep: give at least one --param KEY=V1,V2,...", file=sys.stderr)
        return 2
    try:
        bars = BarArrays.from_file(args.data)
    except (ValueError, FileNotFoundError) as exc:
        print(f"tradewire sweep: {exc}", file=sys.stderr)
        return 2
    candidates = random_search(space, args.random, args.seed) if args.random else grid(space)

    def evaluate(params: dict[str, Any], start: int, stop: int) -> float | Metrics:
        window = bars.slice(start, stop)
        try:
            result = run_vector(args.strategy, params, window, cash=args.cash, fee_bps=args.fee_bps,
                                slippage_bps=args.slippage_bps, fill=args.fill)
        except ValueError:
            return -math.inf  # an invalid combination (e.g. fast >= slow) ranks last
        assert result.equity is not None
        return compute_metrics(result.equity, window.ts, result.trades)

    try:
        outcome = sweep(evaluate, candidates, 0, len(bars.ts), objective=args.objective,
                        progress=not args.no_progress and not args.json)
    except (ValueError, LookupError, AttributeError) as exc:
        print(f"tradewire sweep: {exc}", file=sys.stderr)
        return 2
    ranked = sorted(outcome.trials, key=lambda t: t.score, reverse=True)
    rows = [{"params": t.params, "score": None if not math.isfinite(t.score) else t.score,
             **(t.result.to_dict() if isinstance(t.result, Metrics) else {"valid": False})} for t in ranked]
    if args.json:
        print(json.dumps({"objective": args.objective, "trials": len(rows), "bars": len(bars.ts), "results": rows}))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.strategy} on {args.data.name}: {len(rows)} trials, by {args.objective}")
    for column in ("params", args.objective, "total_return", "max_drawdown", "trades"):
        table.add_column(column)
    for row in rows[: args.top]:
        table.add_row(json.dumps(row["params"]), *(f"{row.get(c)!s:.10}" for c in
                                                   (args.objective, "total_return", "max_drawdown", "trades")))
    Console().print(table)
    return 0
