"""Crypto market data through ccxt: historical OHLCV downloads into the catalog, and live feeds.

**Downloads** (``tradewire catalog download --venue binance --symbol BTC/USDT --interval 1m --since .. --until ..``):
``fetch_ohlcv`` page by page (``limit`` bars per request, the next page from the last bar's time plus one
interval) over ``[since, until)``, into the Parquet catalog as ``catalog:BTCUSDT.BINANCE/1m`` (merged with what is
there: a bar already stored is replaced by the downloaded one). Prices and volumes are taken from ccxt's numbers
through ``str`` (the shortest text of each double; exact for the venue's decimal strings of up to 15 digits).

**Live feeds** (``datafeed.live``, one per venue): per symbol and channel a task follows ccxt.pro's
``watch_ohlcv`` (bars), ``watch_trades`` (trades), ``watch_bids_asks`` or ``watch_ticker`` (quotes) and
``watch_order_book`` (books) and publishes ``Bar`` on ``md.bar.{venue}.{symbol}.{interval}``, ``TradeTick`` on
``md.trade.*``, ``Quote`` on ``md.quote.*`` and ``BookSnapshot`` (top ``book_depth`` levels) on ``md.book.*``.
Only **closed** bars are published: a bar is closed once a later bar has started (websocket) or its end is past
the venue's clock (REST). When a websocket fails, that task **polls REST** (``fetch_ohlcv``, ``fetch_trades``,
``fetch_ticker``, ``fetch_order_book``) every ``poll_interval_s`` and tries the websocket again after
``reconnect_s``; bars and trades are de-duplicated across both paths (by open time, by trade id), so a failover
neither repeats nor skips one that the venue still serves. Market loading is restricted to spot as in execution
(``tradewire_common.urls.ccxt_config``).
Under tests every URL of the client must be on 127.0.0.1 before the first call.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt.pro as ccxtpro

from tradewire_common import subjects
from tradewire_common.config import LiveFeedConfig
from tradewire_common.ids import derive_id, instrument_id
from tradewire_common.schemas import Bar, BookLevel, BookSnapshot, Message, Quote, Side, TradeTick
from tradewire_common.urls import ccxt_config, rewrite_urls
from tradewire_datafeed.catalog import Catalog, CatalogEntry
from tradewire_datafeed.readers import BarRecord, build_series, parse_interval

log = logging.getLogger(__name__)

_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "M": 2_592_000_000}
Publish = Callable[[str, Message], Awaitable[None]]


def instrument_symbol(symbol: str) -> str:
    base, _, quote = symbol.partition("/")
    return base + quote.split(":")[0]


def interval_ms(interval: str) -> int:
    count, unit = parse_interval(interval)
    if unit not in _UNIT_MS:
        raise ValueError(f"interval {interval!r} is too fine for a venue's OHLCV")
    return count * _UNIT_MS[unit]


def _under_test() -> bool:
    return "PYTEST_CURRENT_TEST" in os.environ or "pytest" in sys.modules


def _urls(node: Any) -> Iterable[str]:
    if isinstance(node, str):
        if "://" in node:
            yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _urls(v)
    elif isinstance(node, list):
        for v in node:
            yield from _urls(v)


def check_loopback(exchange: Any) -> None:
    """Under tests, refuse a client with any URL off the loopback (a test must point it at its fake)."""
    if not _under_test():
        return
    for url in _urls(exchange.urls.get("api")):
        host = urlsplit(url).hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise RuntimeError(f"{exchange.id}: tests may only call 127.0.0.1, not {url}")


def make_exchange(exchange_id: str, *, sandbox: bool = False, url_override: str = "", timeout_ms: int = 10_000) -> Any:
    """A public-data ccxt.pro client with market loading restricted to spot (no credentials)."""
    cls = getattr(ccxtpro, exchange_id, None)
    if cls is None:
        raise ValueError(f"unknown ccxt exchange id {exchange_id!r}")
    exchange = cls({"enableRateLimit": True, "timeout": timeout_ms, **ccxt_config(exchange_id)})
    if sandbox:
        exchange.set_sandbox_mode(True)
    if url_override:
        exchange.urls["api"] = rewrite_urls(exchange.urls["api"], url_override)
    return exchange


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def _record(row: list[Any]) -> BarRecord:
    return BarRecord(ts_event=int(row[0]) * 1_000_000, open=_dec(row[1]), high=_dec(row[2]), low=_dec(row[3]),
                     close=_dec(row[4]), volume=_dec(row[5]))


# --- downloads ---------------------------------------------------------------------------------------------


async def download_ohlcv(
    exchange: Any, symbol: str, interval: str, since_ms: int, until_ms: int, *, page: int = 1000,
    on_page: Callable[[int], None] | None = None,
) -> list[BarRecord]:
    """Every bar of ``symbol`` with ``since_ms <= open < until_ms``, page by page."""
    check_loopback(exchange)
    await exchange.load_markets()
    step = interval_ms(interval)
    out: dict[int, BarRecord] = {}
    cursor = since_ms
    while cursor < until_ms:
        rows = await exchange.fetch_ohlcv(symbol, interval, cursor, page)
        rows = [r for r in rows if cursor <= int(r[0]) < until_ms]
        if not rows:
            break
        for row in rows:
            out[int(row[0])] = _record(row)
        if on_page is not None:
            on_page(len(rows))
        cursor = int(rows[-1][0]) + step
    return [out[k] for k in sorted(out)]


async def download_to_catalog(
    exchange_id: str, symbol: str, interval: str, since_ms: int, until_ms: int, *, venue: str = "",
    catalog: Catalog | None = None, sandbox: bool = False, url_override: str = "",
) -> tuple[CatalogEntry, int]:
    """Download into the catalog (merged with the entry already there); the entry and the bars downloaded."""
    exchange = make_exchange(exchange_id, sandbox=sandbox, url_override=url_override)
    try:
        records = await download_ohlcv(exchange, symbol, interval, since_ms, until_ms)
    finally:
        await exchange.close()
    if not records:
        raise ValueError(f"{exchange_id} returned no {interval} bars of {symbol} in the period")
    catalog = catalog or Catalog()
    iid = instrument_id(instrument_symbol(symbol), venue or exchange_id.upper())
    merged = {r.ts_event: r for r in _existing(catalog, iid, interval)}
    merged.update({r.ts_event: r for r in records})
    series = build_series(Path(f"{exchange_id}:{symbol}"), [merged[k] for k in sorted(merged)], interval)
    return catalog.write(iid, series, interval), len(records)


def _existing(catalog: Catalog, iid: str, interval: str) -> list[BarRecord]:
    try:
        return catalog.read(iid, interval).records
    except FileNotFoundError:
        return []


# --- live feeds --------------------------------------------------------------------------------------------


class LiveFeed:
    """One ``datafeed.live`` entry: a ccxt.pro client and a task per symbol and channel (module docstring)."""

    def __init__(self, config: LiveFeedConfig, publish: Publish, *, now_ns: Callable[[], int] = time.time_ns,
                 exchange: Any = None) -> None:
        self.config = config
        self.venue = config.venue.upper()
        self.publish = publish
        self.now_ns = now_ns
        self.exchange = exchange or make_exchange(config.exchange or config.venue.lower(), sandbox=config.sandbox,
                                                  url_override=config.url_override)
        self.step_ms = interval_ms(config.interval)
        self._tasks: list[asyncio.Task[None]] = []
        self._last_bar: dict[str, int] = {}
        self._seen_trades: dict[str, OrderedDict[str, None]] = {}
        #: ``(symbol, channel)`` -> "websocket" or "rest": how each task gets its data now.
        self.mode: dict[tuple[str, str], str] = {}
        self.published: dict[str, int] = {"bars": 0, "trades": 0, "quotes": 0, "books": 0}
        self.failovers = 0

    async def start(self) -> None:
        check_loopback(self.exchange)
        await self.exchange.load_markets()
        missing = [s for s in self.config.symbols if s not in self.exchange.markets]
        if missing:
            raise RuntimeError(f"live feed {self.venue}: no spot market {', '.join(missing)}")
        for symbol in self.config.symbols:
            for channel in self.config.channels:
                self._tasks.append(asyncio.create_task(self._run(symbol, channel), name=f"live-{symbol}-{channel}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self.exchange.close()
        except Exception as exc:
            log.debug("live feed %s: close: %s", self.venue, exc)

    def instrument(self, symbol: str) -> str:
        return instrument_id(instrument_symbol(symbol), self.venue)

    async def _run(self, symbol: str, channel: str) -> None:
        watch, poll = {"bars": (self._watch_bars, self._poll_bars), "trades": (self._watch_trades, self._poll_trades),
                       "quotes": (self._watch_quotes, self._poll_quotes),
                       "books": (self._watch_books, self._poll_books)}[channel]
        use_ws = self.config.websocket
        while True:
            if use_ws:
                self.mode[(symbol, channel)] = "websocket"
                try:
                    await watch(symbol)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.failovers += 1
                    log.warning("live feed %s %s %s: websocket failed (%s: %s); REST polling every %.1fs for %.0fs",
                                self.venue, symbol, channel, type(exc).__name__, exc, self.config.poll_interval_s,
                                self.config.reconnect_s)
            self.mode[(symbol, channel)] = "rest"
            deadline = time.monotonic() + self.config.reconnect_s
            while not use_ws or time.monotonic() < deadline:
                try:
                    await poll(symbol)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("live feed %s %s %s: REST poll failed: %s", self.venue, symbol, channel, exc)
                await asyncio.sleep(self.config.poll_interval_s)

    # bars
    async def _watch_bars(self, symbol: str) -> None:
        forming: list[Any] | None = None  # the latest bar seen, still open until a later one starts
        while True:
            rows = await self.exchange.watch_ohlcv(symbol, self.config.interval)  # the updated bars only
            closed = []
            for row in sorted(rows, key=lambda r: int(r[0])):
                if forming is not None and int(row[0]) > int(forming[0]):
                    closed.append(forming)
                if forming is None or int(row[0]) >= int(forming[0]):
                    forming = list(row)
            await self._publish_bars(symbol, closed)

    async def _poll_bars(self, symbol: str) -> None:
        since = self._last_bar.get(symbol)
        rows = await self.exchange.fetch_ohlcv(symbol, self.config.interval,
                                               since + self.step_ms if since is not None else None, 100)
        now_ms = self.now_ns() // 1_000_000
        closed = [r for r in rows if int(r[0]) + self.step_ms <= now_ms]
        if since is None:
            closed = closed[-1:]  # a feed starts with the latest closed bar, not the venue's history
        await self._publish_bars(symbol, closed)

    async def _publish_bars(self, symbol: str, rows: list[list[Any]]) -> None:
        iid = self.instrument(symbol)
        for row in sorted(rows, key=lambda r: int(r[0])):
            open_ms = int(row[0])
            last = self._last_bar.get(symbol)
            if last is not None and open_ms <= last:
                continue
            record = _record(row)
            try:
                bar = Bar(id=derive_id("live-bar", iid, self.config.interval, open_ms), ts_event=record.ts_event,
                          ts_init=self.now_ns(), instrument_id=iid, interval=self.config.interval,
                          open=record.open, high=record.high, low=record.low, close=record.close,
                          volume=record.volume)
            except ValueError as exc:
                log.warning("live feed %s: bar %s of %s dropped: %s", self.venue, open_ms, symbol, exc)
                continue
            self._last_bar[symbol] = open_ms
            await self.publish(subjects.bar(self.venue, instrument_symbol(symbol), self.config.interval), bar)
            self.published["bars"] += 1

    # trades
    async def _watch_trades(self, symbol: str) -> None:
        while True:
            await self._publish_trades(symbol, await self.exchange.watch_trades(symbol))

    async def _poll_trades(self, symbol: str) -> None:
        await self._publish_trades(symbol, await self.exchange.fetch_trades(symbol, None, 100))

    async def _publish_trades(self, symbol: str, trades: list[dict[str, Any]]) -> None:
        seen = self._seen_trades.setdefault(symbol, OrderedDict())
        iid = self.instrument(symbol)
        for raw in trades:
            trade_id = str(raw.get("id") or "")
            if not trade_id or trade_id in seen:
                continue
            seen[trade_id] = None
            while len(seen) > 10_000:
                seen.popitem(last=False)
            side = raw.get("side")
            try:
                tick = TradeTick(id=derive_id("live-trade", iid, trade_id), ts_event=int(raw["timestamp"]) * 1_000_000,
                                 ts_init=self.now_ns(), instrument_id=iid, price=_dec(raw["price"]),
                                 size=_dec(raw["amount"]), aggressor_side=Side(side.upper()) if side else None,
                                 trade_id=trade_id)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("live feed %s: trade %s dropped: %s", self.venue, trade_id, exc)
                continue
            await self.publish(subjects.trade(self.venue, instrument_symbol(symbol)), tick)
            self.published["trades"] += 1

    # quotes
    async def _watch_quotes(self, symbol: str) -> None:
        while True:
            if self.exchange.has.get("watchBidsAsks"):
                tickers = await self.exchange.watch_bids_asks([symbol])
                ticker = tickers.get(symbol) or {}
            else:
                ticker = await self.exchange.watch_ticker(symbol)
            await self._publish_quote(symbol, ticker)

    async def _poll_quotes(self, symbol: str) -> None:
        await self._publish_quote(symbol, await self.exchange.fetch_ticker(symbol))

    async def _publish_quote(self, symbol: str, ticker: dict[str, Any]) -> None:
        if not ticker.get("bid") or not ticker.get("ask"):
            return
        iid = self.instrument(symbol)
        ts = int(ticker.get("timestamp") or self.now_ns() // 1_000_000) * 1_000_000
        try:
            quote = Quote(id=derive_id("live-quote", iid, ts, ticker["bid"], ticker["ask"]), ts_event=ts,
                          ts_init=self.now_ns(), instrument_id=iid, bid=_dec(ticker["bid"]), ask=_dec(ticker["ask"]),
                          bid_size=_dec(ticker.get("bidVolume")), ask_size=_dec(ticker.get("askVolume")))
        except ValueError as exc:
            log.warning("live feed %s: quote of %s dropped: %s", self.venue, symbol, exc)
            return
        await self.publish(subjects.quote(self.venue, instrument_symbol(symbol)), quote)
        self.published["quotes"] += 1

    # books
    async def _watch_books(self, symbol: str) -> None:
        while True:
            await self._publish_book(symbol, await self.exchange.watch_order_book(symbol))

    async def _poll_books(self, symbol: str) -> None:
        await self._publish_book(symbol, await self.exchange.fetch_order_book(symbol, self.config.book_depth))

    async def _publish_book(self, symbol: str, book: dict[str, Any]) -> None:
        depth = self.config.book_depth
        iid = self.instrument(symbol)
        ts = int(book.get("timestamp") or self.now_ns() // 1_000_000) * 1_000_000
        sequence = int(book.get("nonce") or 0)
        try:
            snapshot = BookSnapshot(
                id=derive_id("live-book", iid, ts, sequence), ts_event=ts, ts_init=self.now_ns(), instrument_id=iid,
                bids=tuple(BookLevel(_dec(p), _dec(q)) for p, q, *_ in book.get("bids", [])[:depth]),
                asks=tuple(BookLevel(_dec(p), _dec(q)) for p, q, *_ in book.get("asks", [])[:depth]),
                sequence=sequence)
        except ValueError as exc:
            log.warning("live feed %s: book of %s dropped: %s", self.venue, symbol, exc)
            return
        await self.publish(subjects.book(self.venue, instrument_symbol(symbol)), snapshot)
        self.published["books"] += 1
