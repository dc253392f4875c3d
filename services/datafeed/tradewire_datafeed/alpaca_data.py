"""Alpaca market data (US stocks) through the official ``alpaca-py`` SDK.

* **History** (:func:`download_bars`): ``StockHistoricalDataClient.get_stock_bars`` for one symbol and
  interval between two times; the SDK follows ``next_page_token`` until the last page, so the result is
  every bar of the range however many pages it took. Bars become exact ``BarRecord`` rows (Alpaca sends
  prices as JSON numbers: each is converted through ``repr(float)``, the shortest text that reads back
  as the same double, as the Arrow reader does) and go into the Parquet catalog
  (:func:`download_to_catalog`, ``tradewire catalog download --venue alpaca``).
* **Live** (:class:`AlpacaLiveFeed`): ``StockDataStream`` (msgpack over a websocket, IEX feed by
  default, SIP with a subscription) for bars, trades and quotes of some symbols, published as ``Bar``
  (``md.bar.{venue}.{symbol}.1m``: Alpaca's stream bars are one-minute bars stamped with their open
  time), ``TradeTick`` (``md.trade...``) and ``Quote`` (``md.quote...``). Ids are derived from the data
  (a bar's from instrument, interval and open time, as in replays), so a bar sent twice after a
  reconnect carries the same id. A record that fails validation (a crossed or zero quote before the
  open, ...) is counted and skipped, never published.

Credentials come from the environment or secret files only (:func:`credentials`:
``$APCA_API_KEY_ID``/``$APCA_API_SECRET_KEY`` or ``..._FILE``); they are never logged. The endpoints
default to Alpaca's; ``data_url``/``stream_url`` override them (tests point them at a fake on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tradewire_common import subjects
from tradewire_common.bus import Bus
from tradewire_common.ids import derive_id, instrument_id
from tradewire_common.schemas import Bar, Quote, Side, TradeTick
from tradewire_common.security import read_secret
from tradewire_datafeed.catalog import Catalog, CatalogEntry
from tradewire_datafeed.readers import BarRecord, build_series

log = logging.getLogger(__name__)

KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
#: Alpaca's stream bars are one-minute bars.
STREAM_INTERVAL = "1m"


def credentials() -> tuple[str, str]:
    """``(key id, secret key)`` from ``$APCA_API_KEY_ID``/``$APCA_API_SECRET_KEY`` (or ``..._FILE``)."""
    key, secret = read_secret(KEY_ENV), read_secret(SECRET_ENV)
    if not key or not secret:
        raise ValueError(f"Alpaca credentials missing: set {KEY_ENV} and {SECRET_ENV} (or {KEY_ENV}_FILE and "
                         f"{SECRET_ENV}_FILE)")
    return key, secret


def timeframe(interval: str) -> Any:
    """Alpaca's ``TimeFrame`` for ``1m``, ``5m``, ``15m``, ``30m``, ``1h``, ``4h``, ``1d``, ``1w``, ``1M``."""
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    units = {"m": TimeFrameUnit.Minute, "h": TimeFrameUnit.Hour, "d": TimeFrameUnit.Day,
             "w": TimeFrameUnit.Week, "M": TimeFrameUnit.Month}
    amount, unit = interval[:-1], interval[-1:]
    if unit not in units or not amount.isdigit() or int(amount) < 1:
        raise ValueError(f"Alpaca has no bar interval {interval!r} (use e.g. 1m, 5m, 1h, 1d, 1w, 1M)")
    try:
        return TimeFrame(int(amount), units[unit])
    except ValueError as exc:  # e.g. 90m: Alpaca allows 1-59 minutes, 1-23 hours
        raise ValueError(f"Alpaca has no bar interval {interval!r}: {exc}") from None


def exact(value: float | int | str) -> Decimal:
    """A JSON number as Alpaca sent it, without binary float noise (``repr`` round-trips)."""
    return Decimal(value if isinstance(value, str) else repr(value))


def _ns(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _refuse_real_endpoints_under_tests(url: str | None) -> None:
    """Under pytest only 127.0.0.1 may be called (a test that forgot its fake fails before any request)."""
    if "pytest" in sys.modules and urlsplit(url or "https://data.alpaca.markets").hostname not in ("127.0.0.1",
                                                                                                   "localhost"):
        raise RuntimeError(f"tests may only call 127.0.0.1, not {url or 'Alpaca'}")


def data_client(url: str | None = None, key: str | None = None, secret: str | None = None) -> Any:
    """A ``StockHistoricalDataClient`` (``url``: an override of Alpaca's data endpoint)."""
    from alpaca.data.historical.stock import StockHistoricalDataClient

    _refuse_real_endpoints_under_tests(url)
    if key is None or secret is None:
        key, secret = credentials()
    return StockHistoricalDataClient(key, secret, url_override=url or None)


def download_bars(client: Any, symbol: str, interval: str, start: datetime, end: datetime | None = None, *,
                  feed: str = "iex", adjustment: str = "raw") -> list[BarRecord]:
    """Every bar of ``symbol`` in ``[start, end)`` (all pages), oldest first."""
    from alpaca.data.enums import Adjustment, DataFeed
    from alpaca.data.requests import StockBarsRequest

    request = StockBarsRequest(symbol_or_symbols=symbol, timeframe=timeframe(interval), start=start, end=end,
                               feed=DataFeed(feed), adjustment=Adjustment(adjustment))
    barset = client.get_stock_bars(request)
    records = [
        BarRecord(ts_event=_ns(b.timestamp), open=exact(b.open), high=exact(b.high), low=exact(b.low),
                  close=exact(b.close), volume=exact(b.volume))
        for b in barset.data.get(symbol, [])
    ]
    records.sort(key=lambda r: r.ts_event)
    return records


def download_to_catalog(client: Any, catalog: Catalog, symbol: str, interval: str, start: datetime,
                        end: datetime | None = None, *, venue: str = "ALPACA", feed: str = "iex") -> CatalogEntry:
    """Download ``symbol``'s bars into the catalog as ``catalog:SYMBOL.VENUE/interval``."""
    records = download_bars(client, symbol, interval, start, end, feed=feed)
    iid = instrument_id(symbol, venue)
    if not records:
        raise ValueError(f"Alpaca returned no {interval} bars for {symbol} between {start} and {end or 'now'}")
    series = build_series(Path(f"alpaca:{symbol}"), records, interval)
    return catalog.write(iid, series, interval)


@dataclass
class FeedCounters:
    bars: int = 0
    trades: int = 0
    quotes: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


class AlpacaLiveFeed:
    """Alpaca's live stock stream published on the bus (see the module docstring)."""

    def __init__(self, bus: Bus | Callable[[str, Any], Awaitable[None]], symbols: list[str], *, venue: str = "ALPACA",
                 bars: bool = True,
                 trades: bool = False, quotes: bool = False, feed: str = "iex", stream_url: str | None = None,
                 key: str | None = None, secret: str | None = None,
                 now_ns: Callable[[], int] | None = None) -> None:
        from alpaca.data.enums import DataFeed
        from alpaca.data.live.stock import StockDataStream

        _refuse_real_endpoints_under_tests(stream_url)
        if key is None or secret is None:
            key, secret = credentials()
        self._send = bus if callable(bus) else bus.publish
        self.venue = venue
        self.symbols = list(symbols)
        self.counters = FeedCounters()
        #: The shape ``DatafeedService.status`` reads of a live feed (as ``ccxt_feed.LiveFeed``'s).
        self.published: dict[str, int] = {"bars": 0, "trades": 0, "quotes": 0}
        self.failovers = 0
        self.mode: dict[tuple[str, str], str] = {(s, c): "websocket" for s in self.symbols
                                                 for c, on in (("bars", bars), ("trades", trades), ("quotes", quotes))
                                                 if on}
        self._now = now_ns or (lambda: _ns(datetime.now(UTC)))
        self.stream = StockDataStream(key, secret, feed=DataFeed(feed), url_override=stream_url or None)
        if bars:
            self.stream.subscribe_bars(self.on_bar, *self.symbols)
        if trades:
            self.stream.subscribe_trades(self.on_trade, *self.symbols)
        if quotes:
            self.stream.subscribe_quotes(self.on_quote, *self.symbols)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run the stream in a task of this loop (it connects, authenticates, subscribes and reconnects)."""
        self._task = asyncio.create_task(self.stream._run_forever(), name=f"alpaca-data-{self.venue}")

    async def stop(self) -> None:
        await self.stream.stop_ws()
        await self.stream.close()  # wakes a pending receive, so the loop sees the stop at once
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except TimeoutError:
                self._task.cancel()
            self._task = None

    async def _publish(self, subject: str, build: Callable[[], Any], what: str) -> bool:
        try:
            message = build()
        except (ValueError, TypeError, ArithmeticError) as exc:  # invalid at the edge: skipped, not published
            self.counters.skipped += 1
            log.warning("alpaca %s skipped: %s", what, exc)
            return False
        await self._send(subject, message)
        return True

    async def on_bar(self, bar: Any) -> None:
        iid = instrument_id(bar.symbol, self.venue)
        ts = _ns(bar.timestamp)

        def build() -> Bar:
            return Bar(id=derive_id("bar", iid, STREAM_INTERVAL, ts), ts_event=ts, ts_init=self._now(),
                       correlation_id="", instrument_id=iid, interval=STREAM_INTERVAL, open=exact(bar.open),
                       high=exact(bar.high), low=exact(bar.low), close=exact(bar.close), volume=exact(bar.volume))

        if await self._publish(subjects.bar(self.venue, bar.symbol, STREAM_INTERVAL), build, "bar"):
            self.counters.bars += 1
            self.published["bars"] += 1

    async def on_trade(self, trade: Any) -> None:
        iid = instrument_id(trade.symbol, self.venue)
        ts = _ns(trade.timestamp)
        trade_id = str(trade.id)

        def build() -> TradeTick:
            side: Side | None = None
            return TradeTick(id=derive_id("trade", iid, ts, trade_id), ts_event=ts, ts_init=self._now(),
                             correlation_id="", instrument_id=iid, price=exact(trade.price), size=exact(trade.size),
                             aggressor_side=side, trade_id=trade_id)

        if await self._publish(subjects.trade(self.venue, trade.symbol), build, "trade"):
            self.counters.trades += 1
            self.published["trades"] += 1

    async def on_quote(self, quote: Any) -> None:
        iid = instrument_id(quote.symbol, self.venue)
        ts = _ns(quote.timestamp)

        def build() -> Quote:
            return Quote(id=derive_id("quote", iid, ts, quote.bid_price, quote.ask_price), ts_event=ts,
                         ts_init=self._now(), correlation_id="", instrument_id=iid, bid=exact(quote.bid_price),
                         ask=exact(quote.ask_price), bid_size=exact(quote.bid_size), ask_size=exact(quote.ask_size))

        if await self._publish(subjects.quote(self.venue, quote.symbol), build, "quote"):
            self.counters.quotes += 1
            self.published["quotes"] += 1


def cli_download(args: argparse.Namespace, catalog: Catalog) -> int:
    """``tradewire catalog download --venue alpaca --symbol AAPL --interval 1d --since ... --until ...``: Alpaca's
    bars (every page) into the catalog as ``SYMBOL.ALPACA`` (``--venue-name`` to rename); ``--url-override``
    replaces Alpaca's data endpoint. Keys from ``$APCA_API_KEY_ID``/``$APCA_API_SECRET_KEY`` (or ``..._FILE``)."""
    from tradewire_datafeed.readers import TimestampParser

    try:
        start_ns = TimestampParser().parse(args.since.strip())
        # no --until: up to now (Alpaca returns closed bars only)
        end_ns = TimestampParser().parse(args.until.strip()) if args.until else time.time_ns()
        if start_ns >= end_ns:
            raise ValueError("--since must be before --until")
        start = datetime.fromtimestamp(start_ns / 1e9, UTC)
        end = datetime.fromtimestamp(end_ns / 1e9, UTC)
        client = data_client(args.url_override or None)
        entry = download_to_catalog(client, catalog, args.symbol, args.interval, start, end,
                                    venue=(args.venue_name or "ALPACA").upper())
    except Exception as exc:  # Alpaca's answers (APIError), bad dates or interval, missing keys, the file system
        print(f"tradewire catalog download: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    count = len(catalog.read(entry.instrument_id, entry.interval).records)
    print(f"{entry.name}: {count} bars downloaded -> {entry.path}")
    return 0


def live_feed(config: Any, publish: Callable[[str, Any], Awaitable[None]], *,
              now_ns: Callable[[], int] | None = None) -> AlpacaLiveFeed:
    """An ``AlpacaLiveFeed`` from a ``datafeed.live`` entry with ``exchange = "alpaca"``: ``symbols`` are tickers,
    ``channels`` bars/trades/quotes (Alpaca's stream bars are 1m), ``url_override`` replaces the stream's host
    (``http://host`` -> ``ws://host/v2/iex``), ``sandbox`` is not used (Alpaca's paper keys read the same data)."""
    channels = set(config.channels)
    if "books" in channels:
        raise ValueError(f"live feed {config.venue}: Alpaca's stock stream has no order books")
    if "bars" in channels and config.interval != STREAM_INTERVAL:
        raise ValueError(f"live feed {config.venue}: Alpaca streams {STREAM_INTERVAL} bars, not {config.interval}")
    stream_url = None
    if config.url_override:
        parts = urlsplit(config.url_override)
        stream_url = f"{'ws' if parts.scheme == 'http' else 'wss'}://{parts.netloc}/v2/iex"
    return AlpacaLiveFeed(publish, list(config.symbols), venue=config.venue, bars="bars" in channels,
                          trades="trades" in channels, quotes="quotes" in channels, stream_url=stream_url,
                          now_ns=now_ns)
