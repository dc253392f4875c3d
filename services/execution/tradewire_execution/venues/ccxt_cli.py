"""``tradewire venues markets --venue NAME``: a ccxt venue's precision and limits as risk's ``InstrumentSpec`` TOML.

Loads the venue's spot markets (public data: no credentials, the same restricted loading as the adapter; the
venue's sandbox when its ``mode`` is ``sandbox``) and prints one ``[[risk.instruments]]`` table per configured
symbol, ready to paste into the configuration (``quantity_step``, ``min_quantity``, ``price_tick``,
``max_quantity``, ``min_notional``, ``max_notional``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from tradewire_common.config import ConfigError, InstrumentSpec, VenueConfig, load_config


def register(sub: Any) -> None:
    p = sub.add_parser("venues", help="live venues: markets, precision and limits")
    vsub = p.add_subparsers(dest="venues_command", required=True)
    markets = vsub.add_parser("markets", help="print a ccxt venue's symbols as [[risk.instruments]] TOML")
    markets.add_argument("--venue", required=True, help="a venue name of execution.venues")
    markets.add_argument("--config", help="TOML config (default: $TRADEWIRE_CONFIG or config/tradewire.toml)")
    p.set_defaults(handler=run)


def spec_toml(spec: InstrumentSpec) -> str:
    lines = ["[[risk.instruments]]", f'id = "{spec.id}"']
    for name in ("quantity_step", "min_quantity", "price_tick", "max_quantity", "min_notional", "max_notional"):
        value = getattr(spec, name)
        if value is not None:
            lines.append(f'{name} = "{value.normalize():f}"')
    return "\n".join(lines) + "\n"


async def venue_specs(venue: VenueConfig) -> list[InstrumentSpec]:
    from tradewire_execution.venues.ccxt_adapter import CcxtVenue, make_exchange

    exchange = make_exchange(venue.exchange or venue.name.lower(), sandbox=venue.mode == "sandbox",
                             url_override=venue.url_override)
    adapter = CcxtVenue(venue.name, exchange, venue.symbols, websocket=False)
    try:
        await adapter.connect()
        return adapter.instrument_specs()
    finally:
        await adapter.disconnect()


def run(args: argparse.Namespace) -> int:
    from tradewire_common.cli.main import _config_path

    try:
        config = load_config(_config_path(args.config))
    except ConfigError as exc:
        print(f"tradewire venues: {exc}", file=sys.stderr)
        return 2
    venue = next((v for v in config.execution.venues if v.name == args.venue), None)
    if venue is None or venue.adapter != "ccxt":
        print(f"tradewire venues: no ccxt venue {args.venue!r} in execution.venues", file=sys.stderr)
        return 2
    try:
        specs = asyncio.run(venue_specs(venue))
    except Exception as exc:  # the venue's errors, unknown symbols
        print(f"tradewire venues: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write("\n".join(spec_toml(s) for s in specs))
    return 0
