"""``tradewire markets search|book|history``: prediction markets through the venues' data clients.

Every command builds the venue's client from the registry (:data:`~tradewire_datafeed.prediction.VENUES`), so it
works for every venue whose data client exists; ``--url`` replaces the venue's base URL (a proxy, or a fake under
tests) and ``--sandbox`` selects the venue's demo/development deployment.

* ``search --venue V --query TEXT`` asks the venue's own search, then keeps the markets with at least
  ``--min-volume`` / ``--min-liquidity`` that close before ``--ends-before`` / after ``--ends-after`` (the venue is
  asked for more rows than ``--limit`` so the filters still leave enough); a table, or ``--json``.
* ``book --venue V --market ID [--outcome YES]``: one outcome's book (REST snapshot).
* ``history --venue V --market ID --outcome LABEL --since DATE [--until DATE] [--interval 1m]`` writes
  **probability bars** into the Parquet catalog as ``catalog:<instrument>/<interval>``: each bar's open, high, low
  and close are the first, highest, lowest and last price points in it (the probability of the outcome, so the
  backtester replays a prediction market like any bar series), volume 0; an interval without a point repeats the
  last close (the probability did not move), from the first point to the last. When the market's resolution is
  known it is saved beside the bars as ``{interval}.resolution.json`` in the entry's directory
  (:func:`resolution_path`, e.g. ``var/catalog/bars/MANIFOLD/<id>-YES/1m.resolution.json``) in the recorded
  resolution format of :mod:`tradewire_datafeed.readers_resolution` (``venue``, ``market_id``, ``resolution``,
  ``ts``, ``payouts`` by instrument, ``source``), so a replay publishes it after the last bar::

      [[datafeed.replay]]
      path = "catalog:<id>-YES.MANIFOLD/1m"
      instrument_id = "<id>-YES.MANIFOLD"
      resolution = "var/catalog/bars/MANIFOLD/<id>-YES/1m.resolution.json"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradewire_common.config import PredictionFeedConfig
from tradewire_common.schemas import BookSnapshot, MarketResolved
from tradewire_datafeed.catalog import Catalog, CatalogEntry
from tradewire_datafeed.prediction import VENUES, MarketInfo, PredictionVenueData, PricePoint, venue_data
from tradewire_datafeed.readers import NS_PER_UNIT, BarRecord, build_series, format_ts, parse_interval

#: Interval units ``history`` accepts (the readers' lengths; no weeks, months or sub-second bars).
HISTORY_UNITS = {unit: NS_PER_UNIT[unit] for unit in ("s", "m", "h", "d")}
#: Rows asked of the venue per row shown, so that the filters still leave ``--limit`` markets.
OVERFETCH = 5


def register(sub: Any) -> None:
    p = sub.add_parser("markets", help="prediction markets: search, books, probability history into the catalog")
    msub = p.add_subparsers(dest="markets_command", required=True)

    def venue_options(q: argparse.ArgumentParser) -> None:
        q.add_argument("--venue", required=True, choices=sorted(VENUES), help="prediction venue")
        q.add_argument("--url", default="", help="base URL replacing the venue's API host (a proxy)")
        q.add_argument("--sandbox", action="store_true", help="the venue's demo/development deployment")

    s = msub.add_parser("search", help="find markets by text, volume, liquidity and end date")
    venue_options(s)
    s.add_argument("--query", default="", help="text to search for")
    s.add_argument("--min-volume", type=Decimal, default=None)
    s.add_argument("--min-liquidity", type=Decimal, default=None)
    s.add_argument("--ends-before", default="", help="close time before this date (ISO 8601, UTC)")
    s.add_argument("--ends-after", default="", help="close time after this date (ISO 8601, UTC)")
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--include-closed", action="store_true", help="also closed and resolved markets")
    s.add_argument("--json", action="store_true", help="JSON instead of a table")
    b = msub.add_parser("book", help="one outcome's order book")
    venue_options(b)
    b.add_argument("--market", required=True)
    b.add_argument("--outcome", default="YES", help="outcome label (default YES)")
    b.add_argument("--depth", type=int, default=10)
    b.add_argument("--json", action="store_true")
    h = msub.add_parser("history", help="an outcome's probability as bars in the Parquet catalog")
    venue_options(h)
    h.add_argument("--market", required=True)
    h.add_argument("--outcome", required=True, help="outcome label (YES, NO, ...)")
    h.add_argument("--since", required=True, help="start (ISO 8601, UTC)")
    h.add_argument("--until", default="", help="end, exclusive (default: now)")
    h.add_argument("--interval", default="1m", help="bar interval: s, m, h or d units (default 1m)")
    h.add_argument("--root", type=Path, help="catalog directory (default $TRADEWIRE_CATALOG or var/catalog)")
    p.set_defaults(handler=run)


def _ns(text: str) -> int:
    from tradewire_datafeed.readers import TimestampParser

    return TimestampParser().parse(text.strip())


def client_for(args: argparse.Namespace) -> PredictionVenueData:
    market = getattr(args, "market", "") or "-"
    return venue_data(PredictionFeedConfig(venue=args.venue.upper(), adapter=args.venue, markets=(market,),
                                           url_override=args.url, sandbox=args.sandbox))


def run(args: argparse.Namespace) -> int:
    command = {"search": search, "book": book, "history": history}[args.markets_command]
    try:
        return asyncio.run(command(args))
    except (ValueError, LookupError, ConnectionError, OSError) as exc:
        print(f"tradewire markets {args.markets_command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


# --- search -------------------------------------------------------------------------------------------------


def keep(markets: Sequence[MarketInfo], *, min_volume: Decimal | None = None, min_liquidity: Decimal | None = None,
         ends_before_ns: int = 0, ends_after_ns: int = 0) -> list[MarketInfo]:
    """The markets that pass the filters (an unknown end time passes neither date filter)."""
    return [m for m in markets
            if (min_volume is None or m.volume >= min_volume)
            and (min_liquidity is None or m.liquidity >= min_liquidity)
            and (not ends_before_ns or 0 < m.end_ns < ends_before_ns)
            and (not ends_after_ns or m.end_ns > ends_after_ns)]


def market_json(m: MarketInfo) -> dict[str, Any]:
    return {"venue": m.venue, "market_id": m.market_id, "question": m.question, "volume": str(m.volume),
            "liquidity": str(m.liquidity), "end": format_ts(m.end_ns) if m.end_ns else None, "active": m.active,
            "closed": m.closed, "url": m.url,
            "outcomes": [{"label": o.label, "instrument_id": o.instrument_id,
                          "price": None if o.price is None else str(o.price)} for o in m.outcomes]}


async def search(args: argparse.Namespace) -> int:
    client = client_for(args)
    try:
        found = await client.search_markets(args.query, limit=args.limit * OVERFETCH,
                                            active_only=not args.include_closed)
    finally:
        await client.close()
    rows = keep(found, min_volume=args.min_volume, min_liquidity=args.min_liquidity,
                ends_before_ns=_ns(args.ends_before) if args.ends_before else 0,
                ends_after_ns=_ns(args.ends_after) if args.ends_after else 0)[:args.limit]
    if args.json:
        print(json.dumps([market_json(m) for m in rows]))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.venue} markets matching {args.query!r}: {len(rows)}")
    for column in ("market", "question", "outcomes", "volume", "liquidity", "ends"):
        table.add_column(column, overflow="fold")
    for m in rows:
        outcomes = "  ".join(f"{o.label} {o.price:.3f}" if o.price is not None else o.label for o in m.outcomes)
        table.add_row(m.market_id, m.question, outcomes, f"{m.volume:,.0f}", f"{m.liquidity:,.0f}",
                      format_ts(m.end_ns)[:16] if m.end_ns else "")
    Console().print(table)
    return 0


# --- book ---------------------------------------------------------------------------------------------------


async def _instrument(client: PredictionVenueData, market_id: str, label: str) -> str:
    info = await client.market(market_id)
    for outcome in info.outcomes:
        if outcome.label.upper() == label.upper():
            return outcome.instrument_id
    raise LookupError(f"market {market_id} has no outcome {label!r} "
                      f"(it has: {', '.join(o.label for o in info.outcomes) or 'none'})")


async def book(args: argparse.Namespace) -> int:
    client = client_for(args)
    try:
        snapshot: BookSnapshot = await client.book(args.market, await _instrument(client, args.market, args.outcome),
                                                   args.depth)
    finally:
        await client.close()
    if args.json:
        print(json.dumps({"instrument_id": snapshot.instrument_id, "ts": format_ts(snapshot.ts_event),
                          "bids": [[str(lv.price), str(lv.size)] for lv in snapshot.bids],
                          "asks": [[str(lv.price), str(lv.size)] for lv in snapshot.asks]}))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{snapshot.instrument_id} at {format_ts(snapshot.ts_event)}")
    for column in ("bid size", "bid", "ask", "ask size"):
        table.add_column(column, justify="right")
    for i in range(max(len(snapshot.bids), len(snapshot.asks))):
        bid = snapshot.bids[i] if i < len(snapshot.bids) else None
        ask = snapshot.asks[i] if i < len(snapshot.asks) else None
        table.add_row(str(bid.size) if bid else "", str(bid.price) if bid else "", str(ask.price) if ask else "",
                      str(ask.size) if ask else "")
    Console().print(table)
    return 0


# --- history ------------------------------------------------------------------------------------------------


def interval_ns(interval: str) -> int:
    count, unit = parse_interval(interval)
    if unit not in HISTORY_UNITS:
        raise ValueError(f"interval {interval!r}: use s, m, h or d units")
    return count * HISTORY_UNITS[unit]


def probability_bars(points: Sequence[PricePoint], step_ns: int) -> list[BarRecord]:
    """OHLC bars of price points (module docstring); empty intervals repeat the last close, volume 0."""
    buckets: dict[int, list[Decimal]] = {}
    for point in sorted(points, key=lambda p: p.ts_ns):
        buckets.setdefault(point.ts_ns - point.ts_ns % step_ns, []).append(point.price)
    out: list[BarRecord] = []
    if not buckets:
        return out
    first, last = min(buckets), max(buckets)
    close: Decimal | None = None
    for start in range(first, last + step_ns, step_ns):
        prices = buckets.get(start)
        if prices:
            out.append(BarRecord(start, prices[0], max(prices), min(prices), prices[-1], Decimal(0)))
            close = prices[-1]
        elif close is not None:
            out.append(BarRecord(start, close, close, close, close, Decimal(0)))
    return out


def resolution_path(catalog: Catalog, instrument_id: str, interval: str) -> Path:
    """``{root}/bars/{VENUE}/{SYMBOL}/{interval}.resolution.json``, beside the entry's Parquet file."""
    return catalog.path_for(instrument_id, interval).with_suffix(".resolution.json")


def write_resolution(catalog: Catalog, instrument_id: str, interval: str, resolved: MarketResolved) -> Path:
    """Save ``resolved`` beside the entry as a recorded resolution file (``readers_resolution``'s format)."""
    path = resolution_path(catalog, instrument_id, interval)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "venue": resolved.venue, "market_id": resolved.market_id, "resolution": resolved.resolution,
        "ts": format_ts(resolved.ts_event), "payouts": {p.instrument_id: str(p.payout) for p in resolved.payouts},
        "source": resolved.source or "tradewire markets history"}, indent=2) + "\n")
    return path


def read_resolution(catalog: Catalog, instrument_id: str, interval: str) -> MarketResolved | None:
    """The resolution saved beside a catalog entry, or None (open market, or bars from elsewhere)."""
    from tradewire_datafeed.readers_resolution import read_resolution as read_file

    path = resolution_path(catalog, instrument_id, interval)
    return read_file(path) if path.exists() else None


async def download_history(client: PredictionVenueData, market_id: str, outcome: str, since_ns: int, until_ns: int,
                           interval: str, catalog: Catalog) -> tuple[CatalogEntry, int, MarketResolved | None]:
    """Probability bars of one outcome into the catalog (replacing the entry), with its resolution when known."""
    step = interval_ns(interval)
    iid = await _instrument(client, market_id, outcome)
    points = await client.history(market_id, iid, since_ns, until_ns, step // 1_000_000_000 or 1)
    bars = probability_bars(points, step)
    if not bars:
        raise ValueError(f"no price points of {iid} between {format_ts(since_ns)} and {format_ts(until_ns)}")
    entry = catalog.write(iid, build_series(Path(f"{client.venue}:{market_id}"), bars, interval), interval)
    resolved = await client.resolution(market_id)
    sidecar = resolution_path(catalog, iid, interval)
    if resolved is not None:
        write_resolution(catalog, iid, interval, resolved)
    elif sidecar.exists():
        sidecar.unlink()  # bars replaced by those of an open market
    return entry, len(bars), resolved


async def history(args: argparse.Namespace) -> int:
    since = _ns(args.since)
    until = _ns(args.until) if args.until else time.time_ns()
    if since >= until:
        raise ValueError("--since must be before --until")
    client = client_for(args)
    try:
        entry, count, resolved = await download_history(client, args.market, args.outcome, since, until,
                                                        args.interval, Catalog(args.root))
    finally:
        await client.close()
    note = f"; resolved {resolved.resolution} (saved beside the bars)" if resolved is not None else ""
    print(f"{entry.name}: {count} probability bars -> {entry.path}{note}")
    return 0
