"""``tradewire backtest``: one strategy over one bar file, in event or vector mode."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradewire_backtest.config import BacktestSpec, build_config


def _param(text: str) -> tuple[str, int | float | str | bool]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param expects KEY=VALUE, got {text!r}")
    value: int | float | str | bool
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw
    return key, value


def add_position_options(p: argparse.ArgumentParser) -> None:
    """The options both engines simulate for positions and exits (``backtest`` and ``sweep`` share them)."""
    p.add_argument("--long-short", action="store_true", help="short too: opposite signals flip the position")
    p.add_argument("--whole-units", action="store_true", help="trade whole units only")
    p.add_argument("--stop-loss", type=float, default=0.0, metavar="FRACTION", help="stop loss (0.02 = 2%%)")
    p.add_argument("--take-profit", type=float, default=0.0, metavar="FRACTION", help="take profit (0.05 = 5%%)")
    p.add_argument("--trailing-stop", type=float, default=0.0, metavar="FRACTION",
                   help="trailing stop below the best price since entry (0.03 = 3%%)")
    p.add_argument("--time-stop", type=int, default=0, metavar="SECONDS",
                   help="close a position at the open of the first bar this long after its entry fill")


def register(sub: Any) -> None:
    """Add the ``backtest`` subcommand to the ``tradewire`` parser (entry point)."""
    p = sub.add_parser("backtest", help="backtest a strategy on a bar file (event or vector mode)")
    p.add_argument("--data", type=Path, help="CSV/JSON/Feather/Parquet OHLCV file")
    p.add_argument("--config", type=Path,
                   help="instead of --data: run this TOML config's replay, strategies, risk, paper venues and ledger "
                        "in event mode (several instruments, recorded resolutions; the other options are ignored)")
    p.add_argument("--strategy", default="sma_cross")
    p.add_argument("--param", action="append", type=_param, default=[], metavar="KEY=VALUE")
    p.add_argument("--cash", type=Decimal, default=Decimal(10_000))
    p.add_argument("--fee-bps", type=float, default=10.0)
    p.add_argument("--fixed-fee", type=Decimal, default=Decimal(0))
    p.add_argument("--slippage-bps", type=float, default=0.0)
    p.add_argument("--fill", choices=("close", "next_open"), default="close")
    p.add_argument("--sizing", choices=("all-in", "risk"), default="risk",
                   help="all-in: all equity per entry, fractional units, no risk limits (for comparisons)")
    add_position_options(p)
    p.add_argument("--latency-ms", type=int, default=0, help="order latency after the signal bar (event mode)")
    p.add_argument("--maker-fee-bps", type=float, default=None, help="fee of resting limit fills (default: --fee-bps)")
    p.add_argument("--impact", type=float, default=0.0,
                   help="square-root impact coefficient: slippage += K * sqrt(qty / bar volume) (event mode)")
    p.add_argument("--volume-share", type=float, default=1.0,
                   help="fill at most this share of a bar's volume per bar (event mode; 1 = no cap)")
    p.add_argument("--mode", choices=("event", "vector"), default="event")
    p.add_argument("--instrument", default="", help="instrument id (default: FILESTEM.BACKTEST)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.add_argument("--report", type=Path, help="write a self-contained HTML report")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tradewire_backtest.runner import run_backtest, run_config_backtest

    if (args.data is None) == (args.config is None):
        print("tradewire backtest: give either --data or --config", file=sys.stderr)
        return 2
    try:
        if args.config is not None:
            if args.mode != "event":
                raise ValueError("--config runs in event mode only")
            return _print(run_config_backtest(args.config, report=args.report), as_json=args.json)
        spec = BacktestSpec(
            data=args.data, strategy=args.strategy, params=dict(args.param), cash=args.cash, fee_bps=args.fee_bps,
            fixed_fee=args.fixed_fee, slippage_bps=args.slippage_bps, fill=args.fill, sizing=args.sizing,
            instrument_id=args.instrument, long_short=args.long_short, whole_units=args.whole_units,
            stop_loss=args.stop_loss, take_profit=args.take_profit, trailing_stop=args.trailing_stop,
            time_stop_s=args.time_stop, latency_ms=args.latency_ms,
            maker_fee_bps=args.maker_fee_bps, impact=args.impact, volume_share=args.volume_share,
        )
        build_config(spec)  # validates the strategy parameters and the choices up front
        outcome = run_backtest(spec, mode=args.mode, report=args.report)
    except (ValueError, LookupError, FileNotFoundError) as exc:
        print(f"tradewire backtest: {exc}", file=sys.stderr)
        return 2
    return _print(outcome, as_json=args.json)


def _print(outcome: dict[str, Any], *, as_json: bool) -> int:
    if as_json:
        print(json.dumps(outcome))
    else:
        for key, value in outcome.items():
            print(f"{key:>24}: {value}")
    return 0
