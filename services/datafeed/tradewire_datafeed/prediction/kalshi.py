"""Kalshi market data (:class:`KalshiData`, a :class:`~tradewire_datafeed.prediction.PredictionVenueData`).

REST with plain ``httpx`` against the public trade API v2 (production ``https://api.elections.kalshi.com``,
the demo ``https://demo-api.kalshi.co`` when ``sandbox``, ``url_override`` in tests), read in Kalshi's current
wire revision (prices ``*_dollars``, counts ``*_fp``, the book under ``orderbook_fp``) with the legacy integer
fields as the fallback. Why not the SDK's typed calls: ``kalshi-python-sync`` 3.2.0's models *require* the legacy
integer fields the current API no longer sends (see ``tradewire_execution.venues.kalshi_adapter``). The websocket
handshake is signed like the SDK's ``KalshiAuth`` signs (:func:`signed_headers`).

* Instruments: ``<ticker>-YES.<VENUE>`` and ``<ticker>-NO.<VENUE>``. Kalshi has **one book** per market of YES
  bids and NO bids: a NO bid at q is a YES ask at 1 - q. The YES book is (YES bids, 1 - NO bids); the NO book is
  its mirror (NO bids, 1 - YES bids). Trades are given at the YES price; the NO instrument's tick is 1 - p with
  the aggressor flipped.
* :meth:`KalshiData.search_markets`: ``/markets`` (every page) by status, series, event and close time, then the
  query (in title, ticker, subtitles) and the minimum volume/liquidity here (Kalshi has no text search there).
* :meth:`KalshiData.history`: ``/series/{series}/markets/{ticker}/candlesticks`` (1 min, 1 h or 1 day), the
  close of the traded price, else the mid of the YES bid/ask closes.
* :meth:`KalshiData.resolution`: the market's ``result`` once determined (``yes``/``no``; a scalar pays
  ``settlement_value_dollars`` to YES).
* :meth:`KalshiData.stream`: the websocket ``/trade-api/ws/v2`` (``orderbook_delta``: a snapshot then deltas;
  ``trade``; ``market_lifecycle_v2``), which needs an API key (``TRADEWIRE_<VENUE>_API_KEY`` and the PEM key in
  ``..._API_SECRET``, or their ``_FILE`` twins). A skipped ``seq`` raises ``ConnectionError`` so the feed heals the
  books with REST snapshots and subscribes again. Without a key it polls the REST snapshots instead.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from tradewire_common.config import PredictionFeedConfig
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    BookDelta,
    BookLevel,
    BookSnapshot,
    MarketResolved,
    OutcomePayout,
    Side,
    TradeTick,
)
from tradewire_common.security import read_secret
from tradewire_datafeed.prediction import MarketInfo, OutcomeInfo, PricePoint

LIVE_HOST = "https://api.elections.kalshi.com"
DEMO_HOST = "https://demo-api.kalshi.co"
API = "/trade-api/v2"
WS = "/trade-api/ws/v2"
ONE = Decimal(1)
ZERO = Decimal(0)
OPEN = ("active", "open")
DETERMINED = ("determined", "settled", "finalized")
MAX_PAGES = 50
Levels = dict[Decimal, Decimal]


def money(raw: dict[str, Any], name: str) -> Decimal:
    """``<name>_dollars``, else the legacy cents ``<name>`` / 100."""
    if raw.get(f"{name}_dollars") not in (None, ""):
        return Decimal(str(raw[f"{name}_dollars"]))
    return Decimal(str(raw[name])) / 100 if raw.get(name) is not None else ZERO


def contracts(raw: dict[str, Any], name: str) -> Decimal:
    """``<name>_fp``, else the legacy integer ``<name>``."""
    if raw.get(f"{name}_fp") not in (None, ""):
        return Decimal(str(raw[f"{name}_fp"]))
    return Decimal(str(raw[name])) if raw.get(name) is not None else ZERO


def iso_ns(text: Any) -> int:
    if not text:
        return 0
    ts = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000


def signed_headers(key_id: str, private_pem: str, method: str, path: str, now_ms: int | None = None) -> dict[str, str]:
    """Kalshi's auth headers: RSA-PSS (MGF1 SHA-256, salt = digest length) over ``timestamp + METHOD + path``, as
    the SDK's ``KalshiAuth`` signs (not imported here: the SDK package takes ~2 s to import)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("a Kalshi API key is an RSA private key")
    stamp = str(now_ms if now_ms is not None else time.time_ns() // 1_000_000)
    signature = key.sign(f"{stamp}{method.upper()}{path.split('?')[0]}".encode(),
                         padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
                         hashes.SHA256())
    return {"KALSHI-ACCESS-KEY": key_id, "KALSHI-ACCESS-SIGNATURE": base64.b64encode(signature).decode(),
            "KALSHI-ACCESS-TIMESTAMP": stamp}


def split(instrument_id: str) -> tuple[str, str]:
    """``(ticker, "YES"|"NO")`` of ``<ticker>-YES.<VENUE>``."""
    symbol = instrument_id.rpartition(".")[0] or instrument_id
    ticker, _, outcome = symbol.rpartition("-")
    if outcome not in ("YES", "NO") or not ticker:
        raise ValueError(f"a Kalshi instrument is <ticker>-YES.<VENUE> or <ticker>-NO.<VENUE>, not {instrument_id!r}")
    return ticker, outcome


def book_levels(body: dict[str, Any]) -> tuple[Levels, Levels]:
    """``(YES bids, NO bids)`` of a REST book (``orderbook_fp``, else the legacy ``orderbook``) or of a websocket
    snapshot (``yes_dollars_fp``/``no_dollars_fp``)."""
    node = body.get("orderbook_fp") or body
    out: list[Levels] = []
    for side in ("yes", "no"):
        rows = node.get(f"{side}_dollars") or node.get(f"{side}_dollars_fp")
        if rows is None and isinstance(body.get("orderbook"), dict):  # the legacy cents
            rows = [[Decimal(p) / 100, q] for p, q in body["orderbook"].get(side) or []]
        out.append({Decimal(str(p)): Decimal(str(q)) for p, q in rows or [] if Decimal(str(q)) > 0})
    return out[0], out[1]


def snapshot(instrument_id: str, outcome: str, yes: Levels, no: Levels, depth: int, ts_ns: int,
             sequence: int = 0) -> BookSnapshot:
    """One outcome's book from Kalshi's single book (bids best first, asks best first)."""
    own, other = (yes, no) if outcome == "YES" else (no, yes)
    bids = tuple(BookLevel(p, q) for p, q in sorted(own.items(), reverse=True)[:depth])
    asks = tuple(BookLevel(ONE - p, q) for p, q in sorted(other.items(), reverse=True)[:depth])
    return BookSnapshot(id=derive_id("kalshi-book", instrument_id, ts_ns, sequence), ts_event=ts_ns, ts_init=ts_ns,
                        instrument_id=instrument_id, bids=bids, asks=asks, sequence=sequence)


def resolution_of(venue: str, raw: dict[str, Any], now_ns: int) -> MarketResolved | None:
    """The ``MarketResolved`` of a determined market (``result``) or lifecycle message; None while open."""
    result = str(raw.get("result") or "").lower()
    ticker = str(raw.get("ticker") or raw.get("market_ticker"))
    if result == "yes":
        yes = ONE
    elif result == "no":
        yes = ZERO
    elif result == "scalar" and raw.get("settlement_value_dollars"):
        yes = Decimal(str(raw["settlement_value_dollars"]))
    else:
        return None
    ts = (iso_ns(raw.get("settlement_ts")) or int(raw.get("determination_ts") or 0) * 1_000_000_000
          or iso_ns(raw.get("close_time")) or now_ns)
    return MarketResolved(
        id=derive_id("MarketResolved", venue, ticker), ts_event=ts, ts_init=now_ns, venue=venue, market_id=ticker,
        payouts=(OutcomePayout(instrument_id=f"{ticker}-YES.{venue}", payout=yes),
                 OutcomePayout(instrument_id=f"{ticker}-NO.{venue}", payout=ONE - yes)),
        resolution=result.upper(), source="kalshi")


class KalshiData:
    """Kalshi's markets, books, trades, candles and resolutions (see the module docstring)."""

    def __init__(self, config: PredictionFeedConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.venue = config.venue
        host = config.url_override.rstrip("/") or (DEMO_HOST if config.sandbox else LIVE_HOST)
        self.rest_url = host + API
        self.ws_url = re.sub(r"^http", "ws", host) + WS
        self.http = httpx.AsyncClient(base_url=self.rest_url, timeout=10.0, transport=transport,
                                      headers={"Accept": "application/json"})
        prefix = "TRADEWIRE_" + re.sub(r"[^A-Z0-9]", "_", config.venue.upper())
        self._key_id = read_secret(f"{prefix}_API_KEY")
        self._pem = read_secret(f"{prefix}_API_SECRET").replace("\\n", "\n")
        self._series: dict[str, str] = {}

    async def _get(self, path: str, **params: Any) -> Any:
        response = await self.http.get(path, params={k: v for k, v in params.items() if v not in (None, "")})
        if response.status_code >= 400:
            raise ConnectionError(f"Kalshi {response.status_code} on {path}: {response.text[:300]}")
        return response.json()

    async def _pages(self, path: str, key: str, enough: int = 0, **params: Any) -> list[dict[str, Any]]:
        """Every page (at most ``MAX_PAGES``; stop once ``enough`` rows are in, when given)."""
        out: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_PAGES):
            body = await self._get(path, cursor=cursor, **params)
            out += body.get(key) or []
            cursor = body.get("cursor") or None
            if cursor is None or (enough and len(out) >= enough):
                break
        return out

    # --- discovery ------------------------------------------------------------------------------------

    def market_info(self, raw: dict[str, Any]) -> MarketInfo:
        ticker = str(raw["ticker"])
        last = money(raw, "last_price")
        bid, ask = money(raw, "yes_bid"), money(raw, "yes_ask")
        yes = last if last > 0 else ((bid + ask) / 2 if ask > 0 else None)
        steps = [Decimal(str(r["step"])) for r in raw.get("price_ranges") or [] if r.get("step")]
        return MarketInfo(
            venue=self.venue, market_id=ticker, question=str(raw.get("title", "")),
            outcomes=(OutcomeInfo(label="YES", instrument_id=f"{ticker}-YES.{self.venue}", price=yes),
                      OutcomeInfo(label="NO", instrument_id=f"{ticker}-NO.{self.venue}",
                                  price=None if yes is None else ONE - yes)),
            volume=contracts(raw, "volume"), liquidity=money(raw, "liquidity"), end_ns=iso_ns(raw.get("close_time")),
            active=raw.get("status") in OPEN, closed=raw.get("status") in ("closed", *DETERMINED),
            tick_size=min(steps) if steps else Decimal("0.01"), event_id=str(raw.get("event_ticker", "")),
            url=f"https://kalshi.com/markets/{ticker.lower()}")

    async def search_markets(
        self, query: str = "", *, limit: int = 20, active_only: bool = True, status: str = "", series: str = "",
        event: str = "", min_volume: Decimal = ZERO, min_liquidity: Decimal = ZERO, closes_after_ns: int = 0,
        closes_before_ns: int = 0,
    ) -> list[MarketInfo]:
        """Markets by ``status`` (``open``, ``closed``, ``settled``; ``open`` when ``active_only``), series, event
        and close time (at Kalshi), then the text and the minimum volume/liquidity (here)."""
        rows = await self._pages(
            "/markets", "markets", enough=0 if (query or min_volume or min_liquidity) else limit,
            status=status or ("open" if active_only else ""), series_ticker=series, event_ticker=event,
            min_close_ts=closes_after_ns // 1_000_000_000 or None,
            max_close_ts=closes_before_ns // 1_000_000_000 or None, limit=1000)
        words = query.lower().split()
        out = []
        for raw in rows:
            text = " ".join(str(raw.get(k, "")) for k in ("title", "ticker", "event_ticker", "yes_sub_title",
                                                          "no_sub_title", "subtitle")).lower()
            info = self.market_info(raw)
            if all(w in text for w in words) and info.volume >= min_volume and info.liquidity >= min_liquidity:
                out.append(info)
        return out[:limit]

    async def market(self, market_id: str) -> MarketInfo:
        return self.market_info((await self._get(f"/markets/{market_id}"))["market"])

    # --- books, trades, history -----------------------------------------------------------------------

    async def book(self, market_id: str, instrument_id: str, depth: int = 10) -> BookSnapshot:
        _ticker, outcome = split(instrument_id)
        yes, no = book_levels(await self._get(f"/markets/{market_id}/orderbook"))
        return snapshot(instrument_id, outcome, yes, no, depth, time.time_ns())

    def trade_tick(self, raw: dict[str, Any], instrument_id: str) -> TradeTick:
        _ticker, outcome = split(instrument_id)
        yes_px = money(raw, "yes_price")
        taker_yes = str(raw.get("taker_side") or raw.get("taker_outcome_side")) == "yes"
        ts = iso_ns(raw.get("created_time")) or int(raw.get("ts") or 0) * 1_000_000_000
        return TradeTick(
            id=derive_id("kalshi-trade", instrument_id, raw["trade_id"]), ts_event=ts, ts_init=time.time_ns(),
            instrument_id=instrument_id, price=yes_px if outcome == "YES" else ONE - yes_px,
            size=contracts(raw, "count"), aggressor_side=Side.BUY if taker_yes == (outcome == "YES") else Side.SELL,
            trade_id=str(raw["trade_id"]))

    async def trades(self, market_id: str, instrument_id: str, since_ns: int = 0) -> list[TradeTick]:
        rows = await self._pages("/markets/trades", "trades", ticker=market_id, limit=1000,
                                 min_ts=since_ns // 1_000_000_000 or None)
        ticks = [self.trade_tick(raw, instrument_id) for raw in rows]
        return sorted((t for t in ticks if t.ts_event >= since_ns), key=lambda t: (t.ts_event, t.trade_id))

    async def _series_of(self, raw_market: dict[str, Any]) -> str:
        event = str(raw_market.get("event_ticker", ""))
        if event not in self._series:
            self._series[event] = str((await self._get(f"/events/{event}"))["event"]["series_ticker"])
        return self._series[event]

    async def history(self, market_id: str, instrument_id: str, start_ns: int, end_ns: int,
                      interval_s: int = 60) -> list[PricePoint]:
        _ticker, outcome = split(instrument_id)
        series = await self._series_of((await self._get(f"/markets/{market_id}"))["market"])
        period = 1 if interval_s < 3600 else 60 if interval_s < 86400 else 1440
        body = await self._get(f"/series/{series}/markets/{market_id}/candlesticks", start_ts=start_ns // 1_000_000_000,
                               end_ts=end_ns // 1_000_000_000, period_interval=period)
        out = []
        for candle in body.get("candlesticks") or []:
            traded = money(candle.get("price") or {}, "close")
            bid, ask = money(candle.get("yes_bid") or {}, "close"), money(candle.get("yes_ask") or {}, "close")
            yes = traded if traded > 0 else (bid + ask) / 2 if ask > 0 else None
            if yes is not None:
                ts = int(candle["end_period_ts"]) * 1_000_000_000
                out.append(PricePoint(ts, yes if outcome == "YES" else ONE - yes))
        return sorted(out, key=lambda p: p.ts_ns)

    async def resolution(self, market_id: str) -> MarketResolved | None:
        raw = (await self._get(f"/markets/{market_id}"))["market"]
        if raw.get("status") not in DETERMINED and not raw.get("result"):
            return None
        return resolution_of(self.venue, raw, time.time_ns())

    # --- streaming ------------------------------------------------------------------------------------

    def stream(self, markets: Sequence[str]) -> AsyncIterator[Any]:
        return self._websocket(markets) if self._key_id and self._pem else self._poll(markets)

    async def _websocket(self, markets: Sequence[str]) -> AsyncIterator[Any]:
        from websockets.asyncio.client import connect

        headers = signed_headers(self._key_id, self._pem, "GET", WS)
        books: dict[str, tuple[Levels, Levels]] = {}
        last_seq: dict[int, int] = {}
        async with connect(self.ws_url, additional_headers=headers, open_timeout=10) as ws:
            await ws.send(json.dumps({"id": 1, "cmd": "subscribe", "params": {
                "channels": ["orderbook_delta", "trade", "market_lifecycle_v2"], "market_tickers": list(markets)}}))
            async for frame in ws:
                message = json.loads(frame)
                kind, sid, seq = message.get("type"), message.get("sid"), message.get("seq")
                if kind == "error":
                    raise ConnectionError(f"Kalshi websocket error: {message.get('msg')}")
                if isinstance(sid, int) and isinstance(seq, int):
                    if sid in last_seq and seq != last_seq[sid] + 1:
                        raise ConnectionError(f"Kalshi websocket gap on sid {sid}: seq {last_seq[sid]} -> {seq}")
                    last_seq[sid] = seq
                for out in self._apply(message, books, seq or 0):
                    yield out

    def _apply(self, message: dict[str, Any], books: dict[str, tuple[Levels, Levels]], seq: int) -> list[Any]:
        """The messages of one websocket frame (``books`` is the state of the single books)."""
        kind, msg, now = message.get("type"), message.get("msg") or {}, time.time_ns()
        ticker = str(msg.get("market_ticker", ""))
        if kind == "orderbook_snapshot":
            yes, no = books[ticker] = book_levels(msg)
            return [snapshot(f"{ticker}-{o}.{self.venue}", o, yes, no, self.config.book_depth, now, seq)
                    for o in ("YES", "NO")]
        if kind == "orderbook_delta" and ticker in books:
            yes, no = books[ticker]
            side = str(msg["side"])
            price = Decimal(str(msg.get("price_dollars") or Decimal(str(msg.get("price", 0))) / 100))
            levels = yes if side == "yes" else no
            size = max(ZERO, levels.get(price, ZERO) + contracts(msg, "delta"))
            if size:
                levels[price] = size
            else:
                levels.pop(price, None)
            own, other = ("YES", "NO") if side == "yes" else ("NO", "YES")
            return [BookDelta(id=derive_id("kalshi-delta", ticker, o, seq), ts_event=iso_ns(msg.get("ts")) or now,
                              ts_init=now, instrument_id=f"{ticker}-{o}.{self.venue}", side=s, price=p, size=size,
                              sequence=seq)
                    for o, s, p in ((own, Side.BUY, price), (other, Side.SELL, ONE - price))]
        if kind == "trade":
            raw = dict(msg, ticker=ticker)
            return [self.trade_tick(raw, f"{ticker}-{o}.{self.venue}") for o in ("YES", "NO")]
        if kind == "market_lifecycle_v2" and msg.get("result"):
            resolved = resolution_of(self.venue, msg, now)
            return [resolved] if resolved is not None else []
        return []

    async def _poll(self, markets: Sequence[str]) -> AsyncIterator[Any]:
        """No API key: REST snapshots, new trades and resolutions every ``poll_interval_s``."""
        since = time.time_ns()
        while True:
            for ticker in markets:
                for outcome in ("YES", "NO"):
                    yield await self.book(ticker, f"{ticker}-{outcome}.{self.venue}", self.config.book_depth)
                for tick in await self.trades(ticker, f"{ticker}-YES.{self.venue}", since):
                    since = max(since, tick.ts_event + 1)
                    yield tick
                resolved = await self.resolution(ticker)
                if resolved is not None:
                    yield resolved
            await asyncio.sleep(self.config.poll_interval_s)

    async def close(self) -> None:
        await self.http.aclose()



