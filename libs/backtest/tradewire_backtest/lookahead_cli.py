"""``tradewire lookahead``: does an event-mode strategy plugin use bars it has not seen yet?

The check runs the real ``tradewire_signals`` plugin (not a vector kernel), fed bar by bar the way
the signals service feeds it, over the whole file and over truncated copies of it, and compares the
per-bar signals with :func:`tradewire_backtest.research.lookahead_check`. A fresh strategy instance
is built for every run, so state cannot leak from one run into the next through the instance.

A truncation check sees only the future a strategy reads from the bars it is replayed on (a
strategy that loads the rest of the file on its own would read the same future in every run).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tradewire_backtest.cli import _param
from tradewire_common.schemas import Bar, Side
from tradewire_signals.strategy import Strategy

SignalArray = npt.NDArray[np.float64]


def register(sub: Any) -> None:
    """Add the ``lookahead`` subcommand to the ``tradewire`` parser (entry point)."""
    p = sub.add_parser("lookahead", help="check that a strategy's signals never use later bars (event mode)")
    p.add_argument("--data", required=True, type=Path, help="bar file or catalog:SYMBOL.VENUE/interval")
    p.add_argument("--strategy", required=True, help="a registered strategy kind (tradewire_signals)")
    p.add_argument("--param", action="append", type=_param, default=[], metavar="KEY=VALUE")
    p.add_argument("--checkpoints", type=int, default=10, help="truncated copies, evenly spaced (default 10)")
    p.add_argument("--instrument", default="", help="instrument id (default: FILESTEM.BACKTEST)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run)


def replay_signals(strategy: Strategy[Any], bars: Sequence[Bar], interval: str = "*") -> SignalArray:
    """The strategy's signal on each bar, as a ``len(bars) × 2`` array: ``[side, target]``.

    Bars reach ``on_bar`` in order and only when the signals service would route them (the
    strategy's instrument, ``interval`` ``"*"`` or the bar's). ``side`` is +1 BUY, -1 SELL, 0 no
    intent, NaN when ``on_bar`` raised (the service reports that and carries on). ``target`` is the
    intent's target fraction, NaN without one: a target of 0 (flat) is a signal, so it gets its own
    column rather than sharing 0 with "nothing".
    """
    out = np.zeros((len(bars), 2), dtype=np.float64)
    out[:, 1] = math.nan
    for i, bar in enumerate(bars):
        if bar.instrument_id not in strategy.instruments or interval not in ("*", bar.interval):
            continue
        try:
            intent = strategy.on_bar(bar)
        except Exception:
            out[i, 0] = math.nan
            continue
        if intent is not None:
            out[i, 0] = 1.0 if intent.side is Side.BUY else -1.0
            if intent.target is not None:
                out[i, 1] = float(intent.target)
    return out


def strategy_signals(kind: str, params: Mapping[str, Any], bars: Sequence[Bar]) -> SignalArray:
    """:func:`replay_signals` of a fresh ``kind`` instance (built like the service builds it) on ``bars``."""
    return replay_signals(build(kind, params, bars[0].instrument_id if bars else ""), bars)


def build(kind: str, params: Mapping[str, Any], instrument_id: str) -> Strategy[Any]:
    """A ``kind`` instance trading ``instrument_id``; LookupError/ValueError for a bad kind or params."""
    from tradewire_common.config import StrategyConfig
    from tradewire_signals.strategy import build_strategy

    instruments = (instrument_id,) if instrument_id else ()
    return build_strategy(StrategyConfig(id="lookahead", kind=kind, instruments=instruments, params=dict(params)))


def load_bars(data: Path, instrument_id: str = "") -> list[Bar]:
    """``Bar`` messages of a file or catalog entry, with the backtest's default instrument id."""
    from tradewire_backtest.config import BacktestSpec
    from tradewire_datafeed.catalog import read_source
    from tradewire_datafeed.readers import to_bars

    series = read_source(data)
    instrument = BacktestSpec(data=data, strategy="", params={}, instrument_id=instrument_id).instrument()
    return to_bars(series, instrument)


def run(args: argparse.Namespace) -> int:
    from tradewire_backtest.research import lookahead_check

    def fail(message: str) -> int:
        print(f"tradewire lookahead: {message}", file=sys.stderr)
        return 2

    if args.checkpoints < 1:
        return fail(f"--checkpoints must be at least 1, got {args.checkpoints}")
    params = dict(args.param)
    try:
        bars = load_bars(args.data, args.instrument)
        build(args.strategy, params, bars[0].instrument_id if bars else "")
    except (ValueError, LookupError, FileNotFoundError) as exc:
        return fail(str(exc))
    if len(bars) < 2:
        return fail(f"{args.data} has {len(bars)} bar(s); the check needs at least 2")
    runs: dict[int, SignalArray] = {}

    def signals_fn(k: int) -> SignalArray:
        runs[k] = strategy_signals(args.strategy, params, bars[:k])
        return runs[k]

    result = lookahead_check(signals_fn, len(bars), args.checkpoints,
                             progress=not args.no_progress and not args.json)
    full = runs[len(bars)]
    summary: dict[str, Any] = {
        "strategy": args.strategy, "params": params, "bars": len(bars), "ok": result.ok,
        "checkpoints": list(result.checkpoints), "signals": int(np.count_nonzero(full[:, 0] != 0)),
        "errors": int(np.count_nonzero(np.isnan(full[:, 0]))), "first_bad_bar": result.first_bad_bar,
        "checkpoint": result.checkpoint, "failures": [list(f) for f in result.failures],
    }
    if not result.ok:
        assert result.first_bad_bar is not None and result.checkpoint is not None
        bar = bars[result.first_bad_bar]
        summary["first_bad_bar_ts"] = bar.ts_event
        summary["full_signal"] = _describe(full[result.first_bad_bar])
        summary["truncated_signal"] = _describe(runs[result.checkpoint][result.first_bad_bar])
    if args.json:
        print(json.dumps(summary))
    elif result.ok:
        print(f"PASS {args.strategy} {params}: {result} ({len(bars)} bars, {summary['signals']} signals)")
    else:
        print(f"FAIL {args.strategy} {params}: {result}\n"
              f"  bar {result.first_bad_bar} (ts_event {summary['first_bad_bar_ts']}): "
              f"{summary['full_signal']} on the full data, {summary['truncated_signal']} on the first "
              f"{result.checkpoint} bars")
    return 0 if result.ok else 1


def _describe(row: SignalArray) -> str:
    side, target = float(row[0]), float(row[1])
    if math.isnan(side):
        return "an error"
    text = {1.0: "BUY", -1.0: "SELL"}.get(side, "no signal")
    return text if math.isnan(target) else f"{text} (target {target:g})"
