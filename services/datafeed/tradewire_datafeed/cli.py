"""``tradewire catalog import|list``: manage the Parquet data catalog."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from tradewire_datafeed.catalog import Catalog
from tradewire_datafeed.readers import BarFileError, read_bar_file


def register(sub: Any) -> None:
    p = sub.add_parser("catalog", aliases=["data"],
                       help="the Parquet bar catalog shared by replay and backtests (alias: data)")
    p.add_argument("--root", type=Path, help="catalog directory (default $TRADEWIRE_CATALOG or var/catalog)")
    csub = p.add_subparsers(dest="catalog_command", required=True)
    imp = csub.add_parser("import", help="read a bar file (CSV/JSON/Feather/Parquet) into the catalog")
    imp.add_argument("file", type=Path)
    imp.add_argument("--instrument", required=True, help="SYMBOL.VENUE")
    imp.add_argument("--interval", default="", help="default: inferred from the timestamps")
    csub.add_parser("list", help="list catalog entries")
    dl = csub.add_parser("download", help="download OHLCV bars from a crypto venue (ccxt) into the catalog")
    dl.add_argument("--venue", required=True, help="ccxt exchange id (binance, coinbase, kraken, ...) or alpaca")
    dl.add_argument("--symbol", required=True, help="unified symbol, e.g. BTC/USDT")
    dl.add_argument("--interval", default="1m", help="a timeframe of the venue (default 1m)")
    dl.add_argument("--since", required=True, help="first bar's open time (ISO 8601, UTC; or epoch)")
    dl.add_argument("--until", help="end (exclusive; ISO 8601, UTC; or epoch); default: the start of the bar "
                                    "now forming (only closed bars)")
    dl.add_argument("--venue-name", default="", help="venue in the instrument id (default: the id in upper case)")
    dl.add_argument("--sandbox", action="store_true", help="the venue's testnet")
    dl.add_argument("--url-override", default="", help="base URL replacing every API host (a proxy)")
    p.set_defaults(handler=run)
    # ``tradewire markets`` (prediction markets) comes with this package's ``tradewire.commands`` entry point
    from tradewire_datafeed.prediction.cli import register as register_markets

    register_markets(sub)


def _epoch_ms(text: str) -> int:
    from tradewire_datafeed.readers import TimestampParser

    return TimestampParser().parse(text.strip()) // 1_000_000


def download(args: argparse.Namespace, catalog: Catalog) -> int:
    import asyncio

    if args.venue.lower() == "alpaca":  # US stocks through alpaca-py, not ccxt
        from tradewire_datafeed.alpaca_data import cli_download

        return cli_download(args, catalog)
    from tradewire_datafeed.ccxt_feed import download_to_catalog

    try:
        since = _epoch_ms(args.since)
        if args.until:
            until = _epoch_ms(args.until)
        else:
            from tradewire_datafeed.ccxt_feed import interval_ms

            step = interval_ms(args.interval)
            until = time.time_ns() // 1_000_000 // step * step
        if since >= until:
            raise ValueError("--since must be before --until")
        entry, count = asyncio.run(download_to_catalog(
            args.venue, args.symbol, args.interval, since, until, venue=args.venue_name.upper(), catalog=catalog,
            sandbox=args.sandbox, url_override=args.url_override))
    except Exception as exc:  # the venue's errors (ccxt's), bad dates, the catalog's file system
        print(f"tradewire catalog download: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(f"{entry.name}: {count} bars downloaded -> {entry.path}")
    return 0


def run(args: argparse.Namespace) -> int:
    catalog = Catalog(args.root)
    if args.catalog_command == "import":
        try:
            series = read_bar_file(args.file)
            entry = catalog.write(args.instrument, series, args.interval or None)
        except (BarFileError, ValueError, FileNotFoundError) as exc:
            print(f"tradewire catalog: {exc}", file=sys.stderr)
            return 2
        print(f"{entry.name}: {len(series.records)} bars -> {entry.path}")
        return 0
    if args.catalog_command == "download":
        return download(args, catalog)
    for entry in catalog.entries():
        print(f"{entry.name}\t{entry.path}")
    return 0
