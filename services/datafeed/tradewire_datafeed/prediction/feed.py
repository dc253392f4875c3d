"""The prediction-market feed (``datafeed.prediction``): books, quotes, trades and resolutions of configured markets.

One task per configured entry takes the venue's data client (:func:`~tradewire_datafeed.prediction.venue_data`)
and publishes, for every outcome instrument of its markets:

* ``BookSnapshot`` on ``md.book.<venue>.<symbol>`` (top ``book_depth`` levels) whenever the book changes: a
  snapshot from the venue replaces the book kept, a ``BookDelta`` changes one level of it;
* a ``Quote`` (best bid and ask with their sizes) on ``md.quote.<venue>.<symbol>`` whenever the top changes
  (not while a side is empty or the book is crossed);
* ``TradeTick`` on ``md.trade.<venue>.<symbol>``, each trade id once (a ``TradeTick``'s own ``trade_id``); REST
  asks for the trades since the last one seen (at first: since the feed started, the rest is history);
* ``MarketResolved`` on ``pm.resolved.<venue>`` (JetStream) with the id ``derive_id("MarketResolved", venue,
  market)``, so a repeat, here or after a restart (within the stream's duplicate window) or by another
  publisher (execution, a replay), is dropped by the broker; the feed also publishes each market's once.

**Streaming and healing.** With ``websocket = true`` the feed follows the client's ``stream(markets)``; a
``ConnectionError`` there (a dropped connection, a sequence gap) is healed at once with REST snapshots of every
book, the trades since the last one seen and the resolution, then the feed polls REST every ``poll_interval_s``
and goes back to the stream after ``reconnect_s``. A client without a stream (``NotImplementedError``) or
``websocket = false`` is polled. Outcome instruments come from ``market(id)`` at start (retried until it answers).

**Staleness**: ``prediction_last_update_timestamp_seconds{instrument}`` is the clock time the feed last published
a book or trade of the instrument (``time() - it`` is the data's age), like the bar feed's
``last_bar_published_timestamp_seconds``; ``prediction_feed_gaps_total{venue}`` counts healed gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec

from tradewire_common import subjects
from tradewire_common.config import PredictionFeedConfig
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.metrics import ServiceMetrics
from tradewire_common.schemas import (
    BookDelta,
    BookLevel,
    BookSnapshot,
    MarketResolved,
    Message,
    Quote,
    Side,
    TradeTick,
)
from tradewire_datafeed.prediction import PredictionVenueData, venue_data

log = logging.getLogger(__name__)

Publish = Callable[[str, Message], Awaitable[None]]
TRADES_KEPT = 20_000
ZERO = Decimal(0)


def resolution_message_id(venue: str, market_id: str) -> str:
    """The one id of a market's ``MarketResolved`` (whoever publishes it)."""
    return derive_id("MarketResolved", venue, market_id)


class PredictionFeedMetrics:
    """The feed's metrics, defined when the datafeed service is built (whether or not a feed is configured)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.published = metrics.counter("prediction_messages_published_total",
                                         "Prediction-market messages published, per venue and kind", ("venue", "kind"))
        self.last_update = metrics.gauge(
            "prediction_last_update_timestamp_seconds",
            "Clock time the latest book or trade of a prediction outcome was published (staleness = time() - this)",
            ("instrument",))
        self.gaps = metrics.counter("prediction_feed_gaps_total",
                                    "Stream gaps or drops healed with REST snapshots, per venue", ("venue",))


class PredictionFeed:
    """One ``datafeed.prediction`` entry (module docstring)."""

    def __init__(self, config: PredictionFeedConfig, publish: Publish, *, metrics: PredictionFeedMetrics | None = None,
                 now_ns: Callable[[], int] = time.time_ns, client: PredictionVenueData | None = None) -> None:
        self.config = config
        self.venue = config.venue.upper()
        self.publish = publish
        self.metrics = metrics
        self.now_ns = now_ns
        self.client = client
        #: market id -> its outcome instrument ids
        self.instruments: dict[str, tuple[str, ...]] = {}
        self.books: dict[str, dict[Side, dict[Decimal, Decimal]]] = {}
        self._quotes: dict[str, tuple[Decimal, Decimal, Decimal, Decimal]] = {}
        self._last_book: dict[str, tuple[tuple[BookLevel, ...], tuple[BookLevel, ...]]] = {}
        self._trades: OrderedDict[str, None] = OrderedDict()
        self._last_trade_ns: dict[str, int] = {}
        #: Trades before the feed started are history, not news: REST snapshots ask for trades since then.
        self.started_ns = 0
        self.resolved: set[str] = set()
        self.mode = "starting"
        self.gaps = 0
        self.published: dict[str, int] = {"books": 0, "quotes": 0, "trades": 0, "resolutions": 0}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.client is None:
            self.client = venue_data(self.config)
        self.started_ns = self.now_ns()
        self._task = asyncio.create_task(self._run(), name=f"prediction-{self.venue}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()

    def status(self) -> dict[str, Any]:
        return {"mode": self.mode, "published": dict(self.published), "gaps": self.gaps,
                "resolved": sorted(self.resolved), "markets": {m: list(i) for m, i in self.instruments.items()}}

    # --- the task ---------------------------------------------------------------------------------------

    async def _run(self) -> None:
        await self._discover()
        stream_ok = self.config.websocket
        while True:
            if stream_ok:
                self.mode = "stream"
                try:
                    await self._follow_stream()
                except asyncio.CancelledError:
                    raise
                except NotImplementedError:
                    stream_ok = False
                except Exception as exc:
                    self.gaps += 1
                    if self.metrics is not None:
                        self.metrics.gaps.labels(self.venue).inc()
                    log.warning("prediction feed %s: stream failed (%s: %s); healing with REST snapshots, polling "
                                "every %.1fs for %.0fs", self.venue, type(exc).__name__, exc,
                                self.config.poll_interval_s, self.config.reconnect_s)
            self.mode = "rest"
            deadline = time.monotonic() + self.config.reconnect_s
            while not stream_ok or time.monotonic() < deadline:
                try:
                    await self.snapshot()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("prediction feed %s: REST poll failed: %s: %s", self.venue, type(exc).__name__, exc)
                await asyncio.sleep(self.config.poll_interval_s)

    async def _discover(self) -> None:
        assert self.client is not None
        pending = [m for m in self.config.markets if m not in self.instruments]
        while pending:
            for market_id in list(pending):
                try:
                    info = await self.client.market(market_id)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("prediction feed %s: market %s not loaded yet: %s", self.venue, market_id, exc)
                    continue
                self.instruments[market_id] = tuple(o.instrument_id for o in info.outcomes)
                pending.remove(market_id)
            if pending:
                await asyncio.sleep(self.config.poll_interval_s)

    async def _follow_stream(self) -> None:
        assert self.client is not None
        stream = self.client.stream(list(self.config.markets))
        try:
            async for item in stream:
                await self.handle(item)
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
        raise ConnectionError("stream ended")

    async def snapshot(self) -> None:
        """REST: every book, the trades since the last one seen, the resolution (polling, and healing a gap)."""
        assert self.client is not None
        for market_id, instruments in self.instruments.items():
            if market_id in self.resolved:
                continue
            for iid in instruments:
                await self.handle(await self.client.book(market_id, iid, self.config.book_depth))
                since = self._last_trade_ns.get(iid, self.started_ns)
                for tick in await self.client.trades(market_id, iid, since):
                    await self.handle(tick)
            resolved = await self.client.resolution(market_id)
            if resolved is not None:
                await self.handle(resolved)

    # --- publishing -------------------------------------------------------------------------------------

    async def handle(self, item: Any) -> None:
        """Publish what one client message means (unknown kinds are ignored)."""
        if isinstance(item, BookSnapshot):
            self.books[item.instrument_id] = {Side.BUY: {lv.price: lv.size for lv in item.bids},
                                              Side.SELL: {lv.price: lv.size for lv in item.asks}}
            await self._publish_book(item.instrument_id, item.ts_event, item.sequence)
        elif isinstance(item, BookDelta):
            levels = self.books.setdefault(item.instrument_id, {Side.BUY: {}, Side.SELL: {}})[item.side]
            if item.size > 0:
                levels[item.price] = item.size
            else:
                levels.pop(item.price, None)
            await self._publish_book(item.instrument_id, item.ts_event, item.sequence)
        elif isinstance(item, TradeTick):
            await self._publish_trade(item)
        elif isinstance(item, MarketResolved):
            await self._publish_resolution(item)

    def _count(self, kind: str, instrument: str | None = None) -> None:
        self.published[kind] += 1
        if self.metrics is not None:
            self.metrics.published.labels(self.venue, kind).inc()
            if instrument is not None:
                self.metrics.last_update.labels(instrument).set(self.now_ns() / 1e9)

    async def _publish_book(self, iid: str, ts: int, sequence: int) -> None:
        book = self.books[iid]
        depth = self.config.book_depth
        bids = tuple(BookLevel(p, q) for p, q in sorted(book[Side.BUY].items(), reverse=True)[:depth] if q > 0)
        asks = tuple(BookLevel(p, q) for p, q in sorted(book[Side.SELL].items())[:depth] if q > 0)
        if self._last_book.get(iid) == (bids, asks):
            return  # polled again, unchanged
        self._last_book[iid] = (bids, asks)
        symbol, _venue = split_instrument_id(iid)
        now = self.now_ns()
        snapshot = BookSnapshot(id=derive_id("pm-book", iid, ts, sequence, bids, asks), ts_event=ts or now,
                                ts_init=now, instrument_id=iid, bids=bids, asks=asks, sequence=sequence)
        await self.publish(subjects.book(self.venue, symbol), snapshot)
        self._count("books", iid)
        if not bids or not asks or bids[0].price > asks[0].price:
            return
        top = (bids[0].price, asks[0].price, bids[0].size, asks[0].size)
        if self._quotes.get(iid) == top:
            return
        self._quotes[iid] = top
        quote = Quote(id=derive_id("pm-quote", iid, ts, *top), ts_event=ts or now, ts_init=now, instrument_id=iid,
                      bid=top[0], ask=top[1], bid_size=top[2], ask_size=top[3])
        await self.publish(subjects.quote(self.venue, symbol), quote)
        self._count("quotes")

    async def _publish_trade(self, tick: TradeTick) -> None:
        key = f"{tick.instrument_id}\x1f{tick.trade_id}"
        if key in self._trades:
            return
        self._trades[key] = None
        while len(self._trades) > TRADES_KEPT:
            self._trades.popitem(last=False)
        self._last_trade_ns[tick.instrument_id] = max(self._last_trade_ns.get(tick.instrument_id, 0), tick.ts_event)
        symbol, _venue = split_instrument_id(tick.instrument_id)
        await self.publish(subjects.trade(self.venue, symbol), msgspec.structs.replace(tick, ts_init=self.now_ns()))
        self._count("trades", tick.instrument_id)

    async def _publish_resolution(self, resolved: MarketResolved) -> None:
        if resolved.market_id in self.resolved:
            return
        message = msgspec.structs.replace(resolved, id=resolution_message_id(self.venue, resolved.market_id),
                                          venue=self.venue)
        await self.publish(subjects.resolution(self.venue), message)
        self.resolved.add(resolved.market_id)
        self._count("resolutions")
        log.info("prediction feed %s: market %s resolved %s", self.venue, resolved.market_id, resolved.resolution)
