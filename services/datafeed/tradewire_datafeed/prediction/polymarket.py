"""Polymarket's public data with plain httpx and websockets: Gamma for discovery and resolutions, the CLOB for
books and price history, the data API for trades, the CLOB's websocket *market* channel for :meth:`stream`.

(Not py-clob-client-v2: it is synchronous and has no Gamma, data-API or websocket calls; not ccxt's polymarket:
it addresses outcomes by ``MARKET:LABEL`` and has no search filters nor the market channel.)

Instrument ids are ``<CLOB token id>.<VENUE>``; market ids are condition ids (``0x...``). The parsing functions
(:func:`market_info`, :func:`book_snapshot`, :func:`resolution_of`, :func:`ws_events`) are pure and are tested on
recorded messages. Polymarket's quirks: Gamma's ``outcomes``/``outcomePrices``/``clobTokenIds`` are JSON *strings*;
``/book`` lists bids ascending and asks descending (best last); the websocket sends a list of ``book`` messages
on subscription, ``price_change`` in the old single-level form or the new ``price_changes[]`` form (with the
level's new aggregate size and the book's best bid/ask after the change), and ``market_resolved`` with
``custom_feature_enabled``. Polymarket has no sequence numbers: a gap (a lost ``price_change``) is detected when
the best bid/ask a change reports differs from the book kept here; :meth:`stream` then raises ``ConnectionError``
so that the feed heals with a REST snapshot, as on a dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import websockets

from tradewire_common.config import PredictionFeedConfig
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.schemas import (
    BookDelta,
    BookLevel,
    BookSnapshot,
    MarketResolved,
    OutcomePayout,
    Side,
    TradeTick,
)
from tradewire_datafeed.prediction import MarketInfo, OutcomeInfo, PricePoint

GAMMA_URL = "https://gamma-api.polymarket.com"
CLOB_URL = "https://clob.polymarket.com"
DATA_URL = "https://data-api.polymarket.com"
WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
PING_S = 10.0
ZERO, ONE = Decimal(0), Decimal(1)
Book = dict[str, dict[Decimal, Decimal]]


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return ZERO
    return Decimal(value if isinstance(value, str) else repr(value))


def _strings(value: Any) -> list[str]:
    """Gamma's JSON-in-a-string lists (``'["Yes", "No"]'``), or a real list."""
    if isinstance(value, str):
        value = json.loads(value) if value else []
    return [str(v) for v in value or []]


def _iso_ns(text: Any) -> int:
    if not text:
        return 0
    return int(datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(UTC).timestamp() * 1e9)


def _ms_ns(value: Any) -> int:
    return int(_dec(value) * 1_000_000) if value else 0


def market_info(raw: dict[str, Any], venue: str) -> MarketInfo:
    """A Gamma market as :class:`MarketInfo` (one outcome per CLOB token)."""
    prices = _strings(raw.get("outcomePrices"))
    outcomes = tuple(
        OutcomeInfo(label=label, instrument_id=f"{token}.{venue}",
                    price=_dec(prices[i]) if i < len(prices) else None)
        for i, (label, token) in enumerate(zip(_strings(raw.get("outcomes")), _strings(raw.get("clobTokenIds")),
                                               strict=False)))
    events = raw.get("events") or []
    return MarketInfo(
        venue=venue, market_id=str(raw.get("conditionId", "")), question=str(raw.get("question", "")),
        outcomes=outcomes, volume=_dec(raw.get("volume")), liquidity=_dec(raw.get("liquidity")),
        end_ns=_iso_ns(raw.get("endDate")), active=bool(raw.get("active", True)), closed=bool(raw.get("closed")),
        tick_size=_dec(raw.get("orderPriceMinTickSize")) or Decimal("0.01"),
        event_id=str(events[0].get("id", "")) if events and isinstance(events[0], dict) else "",
        url=f"https://polymarket.com/market/{raw['slug']}" if raw.get("slug") else "")


def resolution_of(raw: dict[str, Any], venue: str, ts_ns: int = 0) -> MarketResolved | None:
    """The resolution of a closed Gamma market: its final outcome prices are the payouts (1/0, or a split summing
    to 1); None while it is open or its prices are not final (legacy ``0``/``0`` markets)."""
    info = market_info(raw, venue)
    prices = [o.price for o in info.outcomes]
    if not info.closed or not prices or any(p is None for p in prices):
        return None
    final = [p for p in prices if p is not None]
    resolved = raw.get("umaResolutionStatus") == "resolved" or all(p in (ZERO, ONE) for p in final)
    if not resolved or sum(final) != ONE:
        return None
    winners = [o.label.upper() for o in info.outcomes if o.price == ONE]
    when = ts_ns or _iso_ns(str(raw.get("closedTime", "")).replace(" ", "T").replace("+00", "+00:00")) or info.end_ns
    return MarketResolved(
        id=derive_id("MarketResolved", venue, info.market_id), ts_event=when, ts_init=when, venue=venue,
        market_id=info.market_id, resolution=winners[0] if winners else "SPLIT", source="polymarket:gamma",
        payouts=tuple(OutcomePayout(instrument_id=o.instrument_id, payout=p)
                      for o, p in zip(info.outcomes, final, strict=True)))


def book_snapshot(raw: dict[str, Any], venue: str, depth: int = 10, now_ns: int = 0) -> BookSnapshot:
    """A CLOB ``/book`` answer or websocket ``book`` message, best levels first."""
    bids = sorted(((_dec(x["price"]), _dec(x["size"])) for x in raw.get("bids", [])), key=lambda lv: -lv[0])
    asks = sorted(((_dec(x["price"]), _dec(x["size"])) for x in raw.get("asks", [])), key=lambda lv: lv[0])
    ts = _ms_ns(raw.get("timestamp")) or now_ns
    token = str(raw["asset_id"])
    return BookSnapshot(
        id=derive_id("BookSnapshot", venue, token, raw.get("hash", ""), ts), ts_event=ts, ts_init=now_ns or ts,
        instrument_id=f"{token}.{venue}", bids=tuple(BookLevel(p, s) for p, s in bids[:depth] if s > 0),
        asks=tuple(BookLevel(p, s) for p, s in asks[:depth] if s > 0))


def _best(levels: dict[Decimal, Decimal], bid: bool) -> Decimal | None:
    live = [p for p, s in levels.items() if s > 0]
    return (max(live) if bid else min(live)) if live else None


def ws_events(message: Any, venue: str, books: dict[str, Book], depth: int = 10,
              now_ns: int = 0) -> list[BookSnapshot | BookDelta | TradeTick | MarketResolved]:
    """The messages of one websocket frame; keeps ``books`` (token -> side -> price -> size) and raises
    ``ConnectionError`` when a ``price_change`` shows a book other than the one kept (messages were lost)."""
    out: list[BookSnapshot | BookDelta | TradeTick | MarketResolved] = []
    for msg in message if isinstance(message, list) else [message]:
        kind = msg.get("event_type")
        ts = _ms_ns(msg.get("timestamp")) or now_ns
        if kind == "book":
            snap = book_snapshot(msg, venue, depth, now_ns)
            token = str(msg["asset_id"])
            books[token] = {"BUY": {_dec(x["price"]): _dec(x["size"]) for x in msg.get("bids", [])},
                            "SELL": {_dec(x["price"]): _dec(x["size"]) for x in msg.get("asks", [])}}
            out.append(snap)
        elif kind == "price_change":
            changes = msg.get("price_changes") or [msg]  # the new list form, or the old single level
            for change in changes:
                token, side = str(change["asset_id"]), str(change["side"]).upper()
                price, size = _dec(change["price"]), _dec(change["size"])
                book = books.get(token)
                if book is not None:
                    book[side][price] = size
                    for name, bid in (("best_bid", True), ("best_ask", False)):
                        reported = _dec(change.get(name)) if change.get(name) not in (None, "") else None
                        kept = _best(book["BUY" if bid else "SELL"], bid)
                        if reported is not None and reported not in (ZERO, ONE) and reported != kept:
                            raise ConnectionError(f"book gap on {token}: {name} {reported}, kept {kept}")
                out.append(BookDelta(
                    id=derive_id("BookDelta", venue, token, change.get("hash", ""), side, price, size, ts),
                    ts_event=ts, ts_init=now_ns or ts, instrument_id=f"{token}.{venue}",
                    side=Side.BUY if side == "BUY" else Side.SELL, price=price, size=size))
        elif kind == "last_trade_price":
            token = str(msg["asset_id"])
            out.append(TradeTick(
                id=derive_id("TradeTick", venue, token, ts, msg.get("price"), msg.get("size")), ts_event=ts,
                ts_init=now_ns or ts, instrument_id=f"{token}.{venue}", price=_dec(msg["price"]),
                size=_dec(msg["size"]), aggressor_side=Side.BUY if msg.get("side") == "BUY" else Side.SELL,
                trade_id=f"{token}:{msg.get('timestamp')}:{msg.get('price')}:{msg.get('size')}"))
        elif kind == "market_resolved":
            winner = str(msg["winning_asset_id"])
            market = str(msg["market"])
            out.append(MarketResolved(
                id=derive_id("MarketResolved", venue, market), ts_event=ts, ts_init=now_ns or ts, venue=venue,
                market_id=market, resolution=str(msg.get("winning_outcome", "")).upper(), source="polymarket:ws",
                payouts=tuple(OutcomePayout(instrument_id=f"{a}.{venue}", payout=ONE if a == winner else ZERO)
                              for a in msg.get("assets_ids", []))))
    return out


class PolymarketData:
    """:class:`~tradewire_datafeed.prediction.PredictionVenueData` for Polymarket (see the module docstring)."""

    def __init__(self, config: PredictionFeedConfig, *, timeout_s: float = 10.0) -> None:
        self.venue = config.venue
        self.depth = config.book_depth
        base = config.url_override.rstrip("/")
        self.gamma, self.clob, self.data = (base, base, base) if base else (GAMMA_URL, CLOB_URL, DATA_URL)
        self.ws_url = base.replace("http", "ws", 1) + "/ws/market" if base else WS_URL
        self.http = httpx.AsyncClient(timeout=timeout_s)
        self._tokens: dict[str, list[str]] = {}

    async def _get(self, url: str, params: dict[str, Any] | None = None) -> Any:
        answer = await self.http.get(url, params=params)
        if answer.status_code >= 500 or answer.status_code == 429:
            raise ConnectionError(f"{url}: {answer.status_code}")
        answer.raise_for_status()
        return answer.json()

    async def search_markets(
        self, query: str = "", *, limit: int = 20, active_only: bool = True, min_volume: Decimal | None = None,
        min_liquidity: Decimal | None = None, end_after_ns: int | None = None, end_before_ns: int | None = None,
    ) -> list[MarketInfo]:
        """Gamma's text search (``/public-search``) or its market list, filtered by volume, liquidity, end
        date and open/closed (by Gamma, and again here since its search takes no such filters)."""
        if query:
            params: dict[str, Any] = {"q": query, "limit_per_type": limit}
            if active_only:
                params["events_status"] = "active"
            found = await self._get(f"{self.gamma}/public-search", params)
            raws = [m for e in found.get("events") or [] for m in e.get("markets") or []]
        else:
            params = {"limit": limit, "order": "volumeNum", "ascending": "false"}
            if active_only:
                params.update(active="true", closed="false")
            if min_volume is not None:
                params["volume_num_min"] = str(min_volume)
            if min_liquidity is not None:
                params["liquidity_num_min"] = str(min_liquidity)
            for name, ns in (("end_date_min", end_after_ns), ("end_date_max", end_before_ns)):
                if ns is not None:
                    params[name] = datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            raws = await self._get(f"{self.gamma}/markets", params)
        out = [market_info(r, self.venue) for r in raws]
        return [m for m in out
                if (not active_only or (m.active and not m.closed))
                and (min_volume is None or m.volume >= min_volume)
                and (min_liquidity is None or m.liquidity >= min_liquidity)
                and (end_after_ns is None or m.end_ns >= end_after_ns)
                and (end_before_ns is None or m.end_ns <= end_before_ns)][:limit]

    async def _gamma_market(self, market_id: str) -> dict[str, Any]:
        found = await self._get(f"{self.gamma}/markets", {"condition_ids": market_id})
        if not found:
            raise KeyError(f"Polymarket has no market {market_id}")
        raw: dict[str, Any] = found[0]
        return raw

    async def market(self, market_id: str) -> MarketInfo:
        info = market_info(await self._gamma_market(market_id), self.venue)
        self._tokens[market_id] = [split_instrument_id(o.instrument_id)[0] for o in info.outcomes]
        return info

    async def book(self, market_id: str, instrument_id: str, depth: int = 10) -> BookSnapshot:
        token = split_instrument_id(instrument_id)[0]
        return book_snapshot(await self._get(f"{self.clob}/book", {"token_id": token}), self.venue, depth)

    async def trades(self, market_id: str, instrument_id: str, since_ns: int = 0) -> list[TradeTick]:
        """The data API's recent trades of the market, of this outcome, oldest first."""
        token = split_instrument_id(instrument_id)[0]
        rows = await self._get(f"{self.data}/trades", {"market": market_id, "limit": 500})
        out: list[TradeTick] = []
        for r in rows:
            ts = int(_dec(r.get("timestamp")) * 1_000_000_000)
            if str(r.get("asset")) != token or ts < since_ns:
                continue
            trade_id = f"{r.get('transactionHash', '')}:{token}:{r.get('side')}:{r.get('size')}:{r.get('price')}"
            out.append(TradeTick(
                id=derive_id("TradeTick", self.venue, trade_id), ts_event=ts, ts_init=ts, instrument_id=instrument_id,
                price=_dec(r["price"]), size=_dec(r["size"]), trade_id=trade_id,
                aggressor_side=Side.BUY if r.get("side") == "BUY" else Side.SELL))
        return sorted(out, key=lambda t: t.ts_event)

    async def history(self, market_id: str, instrument_id: str, start_ns: int, end_ns: int,
                      interval_s: int = 60) -> list[PricePoint]:
        token = split_instrument_id(instrument_id)[0]
        found = await self._get(f"{self.clob}/prices-history", {
            "market": token, "startTs": start_ns // 1_000_000_000, "endTs": end_ns // 1_000_000_000,
            "fidelity": max(1, interval_s // 60)})
        return [PricePoint(int(_dec(p["t"])) * 1_000_000_000, _dec(p["p"])) for p in found.get("history") or []]

    async def resolution(self, market_id: str) -> MarketResolved | None:
        return resolution_of(await self._gamma_market(market_id), self.venue)

    async def stream(self, markets: Sequence[str]) -> AsyncIterator[Any]:
        """The market channel of every outcome of ``markets``; ``ConnectionError`` on a drop or a gap."""
        tokens = [t for m in markets for t in (self._tokens.get(m) or [
            split_instrument_id(o.instrument_id)[0] for o in (await self.market(m)).outcomes])]
        books: dict[str, Book] = {}
        try:
            async with websockets.connect(self.ws_url, ping_interval=None) as ws:
                await ws.send(json.dumps({"assets_ids": tokens, "type": "market", "custom_feature_enabled": True}))
                pinger = asyncio.create_task(self._ping(ws))
                try:
                    async for frame in ws:
                        if frame == "PONG":
                            continue
                        for event in ws_events(json.loads(frame), self.venue, books, self.depth):
                            yield event
                finally:
                    pinger.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await pinger
        except websockets.ConnectionClosed as exc:
            raise ConnectionError(f"Polymarket market channel closed: {exc}") from exc
        raise ConnectionError("Polymarket market channel ended")

    @staticmethod
    async def _ping(ws: Any) -> None:
        while True:
            await asyncio.sleep(PING_S)
            await ws.send("PING")

    async def close(self) -> None:
        await self.http.aclose()
