"""``tradewire catalog import|list``: manage the Parquet data catalog."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tradewire_datafeed.catalog import Catalog
from tradewire_datafeed.readers import BarFileError, read_bar_file


def register(sub: Any) -> None:
    p = sub.add_parser("catalog", help="the Parquet bar catalog shared by replay and backtests")
    p.add_argument("--root", type=Path, help="catalog directory (default $TRADEWIRE_CATALOG or var/catalog)")
    csub = p.add_subparsers(dest="catalog_command", required=True)
    imp = csub.add_parser("import", help="read a bar file (CSV/JSON/Feather/Parquet) into the catalog")
    imp.add_argument("file", type=Path)
    imp.add_argument("--instrument", required=True, help="SYMBOL.VENUE")
    imp.add_argument("--interval", default="", help="default: inferred from the timestamps")
    csub.add_parser("list", help="list catalog entries")
    p.set_defaults(handler=run)


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
    for entry in catalog.entries():
        print(f"{entry.name}\t{entry.path}")
    return 0
