"""Manifold Markets data (API v0, public, no key): discovery, a synthetic book, trades, history, resolutions.

Base URL ``https://api.manifold.markets`` (``sandbox``: the development deployment ``https://api.dev.manifold.markets``;
``url_override`` replaces it). Only **binary** markets (``outcomeType = BINARY``) have outcome instruments:
``<contract id>-YES.<VENUE>`` and ``<contract id>-NO.<VENUE>``; a NO price is ``1 -`` the YES probability.

* **Search**: ``GET /v0/search-markets?term=&filter=open|all&sort=&limit=``; the numbers Manifold sends as floats
  become Decimals through their shortest text.
* **Book** (synthetic: Manifold has no order book as such): the **pool** of a ``cpmm-1`` market (``pool.YES``,
  ``pool.NO``, ``p``; invariant ``YES^p * NO^(1-p)``, probability ``p*NO / ((1-p)*YES + p*NO)``) gives, for each
  0.01 step away from the current probability, the shares a bet moving the price to that step buys: an ask level
  (buying YES up to that price) or a bid level (selling YES, i.e. buying NO, down to it), priced at the step (the
  worst price of the slice). The account's **open limit bets** (``GET /v0/bets?contractId=&kinds=open-limit``) add
  their unfilled shares: a YES bet at ``limitProb`` is a bid, a NO bet an ask of YES at ``limitProb``. The NO
  instrument's book is the mirror image (price ``1 - p``, bids and asks swapped).
* **Trades** are bets: each fill of a bet (``fills``; taken on the bet that placed it, i.e. the pool's fills and
  the matched fills whose time is the bet's creation time, so a match between two limit bets counts once) is a
  ``TradeTick`` with id ``<bet id>:<i>`` (bets of 2022 without ``fills``: the bet itself, id ``<bet id>``). A bet on
  the outcome is a BUY at ``amount / shares``; a bet on the other outcome a SELL at ``1 - amount / shares``; a sale
  (negative ``shares`` and ``amount``) the other way round. Ante and redemption bets are not trades.
* **History**: the ``probAfter`` of every bet (``GET /v0/bets?contractId=`` paged with ``before``), plus the last
  one before the period as its opening point; every point is returned (``interval_s`` is left to the bar builder).
* **Resolution**: ``isResolved`` with ``resolution`` ``YES``/``NO`` (payouts 1/0), ``MKT`` (``resolutionProbability``
  for YES, ``1 -`` it for NO) or ``CANCEL`` (Manifold refunds what each bet cost, which is no per-contract payout:
  the payouts carry the last probability and a consumer wanting the refund keys on ``resolution == "CANCEL"``).
* **Stream**: Manifold's REST API is polled every ``poll_interval_s`` (books, trades made since the stream
  started, resolution); a failed call raises ``ConnectionError``, which the feed heals with REST snapshots.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx

from tradewire_common.config import PredictionFeedConfig
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.schemas import BookLevel, BookSnapshot, MarketResolved, OutcomePayout, Side, TradeTick
from tradewire_datafeed.prediction import MarketInfo, OutcomeInfo, PricePoint

LIVE_URL = "https://api.manifold.markets"
DEV_URL = "https://api.dev.manifold.markets"
TICK = Decimal("0.01")
PX_QUANTUM = Decimal("1e-12")
SIZE_QUANTUM = Decimal("1e-6")
#: Bets per page (Manifold's maximum) and pages read at most by one call.
BET_PAGE = 1000
MAX_PAGES = 50
ONE = Decimal(1)


def dec(value: Any) -> Decimal:
    """A Manifold number (a JSON float) as the Decimal of its shortest text; absent is 0."""
    if value is None or value == "":
        return Decimal(0)
    return Decimal(value if isinstance(value, str) else repr(value))


def resolution_id(venue: str, market_id: str) -> str:
    """The id of a market's ``MarketResolved``, the same whoever publishes it (JetStream drops repeats)."""
    return derive_id("MarketResolved", venue.upper(), market_id)


def outcome_instruments(venue: str, market_id: str) -> tuple[str, str]:
    return f"{market_id}-YES.{venue.upper()}", f"{market_id}-NO.{venue.upper()}"


def _outcome(instrument_id: str) -> tuple[str, str]:
    symbol, _venue = split_instrument_id(instrument_id)
    market, _, outcome = symbol.rpartition("-")
    if outcome not in ("YES", "NO"):
        raise ValueError(f"not a Manifold outcome instrument: {instrument_id!r}")
    return market, outcome


def parse_market(raw: dict[str, Any], venue: str, *, now_ms: int | None = None) -> MarketInfo:
    """A market (``/v0/market``, ``/v0/markets``, ``/v0/search-markets`` row) as discovery reports it."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    market_id = str(raw["id"])
    outcomes: tuple[OutcomeInfo, ...] = ()
    if raw.get("outcomeType") == "BINARY":
        yes_iid, no_iid = outcome_instruments(venue, market_id)
        prob = dec(raw["probability"]) if raw.get("probability") is not None else None
        outcomes = (OutcomeInfo(label="YES", instrument_id=yes_iid, price=prob),
                    OutcomeInfo(label="NO", instrument_id=no_iid, price=None if prob is None else ONE - prob))
    close_ms = int(raw.get("closeTime") or 0)
    resolved = bool(raw.get("isResolved"))
    closed = resolved or bool(close_ms and close_ms <= now_ms)
    return MarketInfo(venue=venue.upper(), market_id=market_id, question=str(raw.get("question", "")),
                      outcomes=outcomes, volume=dec(raw.get("volume")), liquidity=dec(raw.get("totalLiquidity")),
                      end_ns=close_ms * 1_000_000, active=not closed, closed=closed, tick_size=TICK,
                      url=str(raw.get("url", "")))


def parse_resolution(raw: dict[str, Any], venue: str, *, now_ns: int = 0) -> MarketResolved | None:
    """The ``MarketResolved`` of a resolved binary market, else None."""
    if not raw.get("isResolved") or raw.get("outcomeType", "BINARY") != "BINARY":
        return None
    label = str(raw.get("resolution") or "")
    if label == "YES":
        yes = ONE
    elif label == "NO":
        yes = Decimal(0)
    elif label == "MKT" and raw.get("resolutionProbability") is not None:
        yes = dec(raw["resolutionProbability"])
    elif label in ("MKT", "CANCEL"):
        yes = dec(raw.get("resolutionProbability") if raw.get("resolutionProbability") is not None
                  else raw.get("probability"))
    else:
        return None
    market_id = str(raw["id"])
    yes_iid, no_iid = outcome_instruments(venue, market_id)
    ts = int(raw.get("resolutionTime") or 0) * 1_000_000
    return MarketResolved(
        id=resolution_id(venue, market_id), ts_event=ts, ts_init=now_ns or time.time_ns(), venue=venue.upper(),
        market_id=market_id, payouts=(OutcomePayout(instrument_id=yes_iid, payout=yes),
                                      OutcomePayout(instrument_id=no_iid, payout=ONE - yes)),
        resolution=label, source="manifold")


def parse_trades(bets: Sequence[dict[str, Any]], instrument_id: str, *, now_ns: int = 0) -> list[TradeTick]:
    """The trades of ``instrument_id`` in a list of bets (module docstring), oldest first."""
    _market, outcome = _outcome(instrument_id)
    out: list[TradeTick] = []
    for bet in bets:
        if bet.get("isAnte") or bet.get("isRedemption") or bet.get("outcome") not in ("YES", "NO"):
            continue
        created = int(bet.get("createdTime") or 0)
        fills = bet.get("fills")
        pieces = ([(f"{bet['id']}:{i}", f) for i, f in enumerate(fills)
                   if f.get("matchedBetId") is None or int(f.get("timestamp") or 0) == created]
                  if fills is not None else [(str(bet["id"]), bet)])
        for trade_id, piece in pieces:
            shares, amount = dec(piece.get("shares")), dec(piece.get("amount"))
            if shares == 0 or amount == 0 or (shares > 0) != (amount > 0):
                continue
            sale = shares < 0  # shares sold back: negative shares and amount
            shares, amount = abs(shares), abs(amount)
            paid = (amount / shares).quantize(PX_QUANTUM).normalize()
            same = bet["outcome"] == outcome
            buy = same != sale
            price = paid if same else ONE - paid
            if not 0 < price < 1:
                continue
            ts = int(piece.get("timestamp") or created) * 1_000_000
            out.append(TradeTick(id=derive_id("manifold-trade", instrument_id, trade_id), ts_event=ts,
                                 ts_init=now_ns or time.time_ns(), instrument_id=instrument_id, price=price,
                                 size=shares.quantize(SIZE_QUANTUM).normalize(),
                                 aggressor_side=Side.BUY if buy else Side.SELL, trade_id=trade_id))
    return sorted(out, key=lambda t: (t.ts_event, t.trade_id))


def _pool_state(raw: dict[str, Any]) -> tuple[float, float, float] | None:
    pool = raw.get("pool")
    if raw.get("mechanism") != "cpmm-1" or not isinstance(pool, dict):
        return None
    yes, no = float(pool.get("YES") or 0), float(pool.get("NO") or 0)
    if yes <= 0 or no <= 0:
        return None
    return yes, no, float(raw.get("p") or 0.5)


def _pool_at(prob: float, k: float, p: float) -> tuple[float, float]:
    """The pool ``(YES, NO)`` at probability ``prob`` on the invariant ``YES^p * NO^(1-p) = k``."""
    ratio = prob * (1 - p) / (p * (1 - prob))  # NO / YES
    yes = k / ratio ** (1 - p)
    return yes, ratio * yes


def pool_levels(raw: dict[str, Any], depth: int) -> tuple[list[BookLevel], list[BookLevel]]:
    """The YES bids and asks a cpmm-1 pool offers, one level per 0.01 step (module docstring)."""
    state = _pool_state(raw)
    if state is None:
        return [], []
    yes0, no0, p = state
    k = yes0 ** p * no0 ** (1 - p)
    prob = p * no0 / ((1 - p) * yes0 + p * no0)
    current = Decimal(repr(prob))
    asks: list[BookLevel] = []
    level = (current / TICK).to_integral_value(ROUND_CEILING) * TICK
    level = level + TICK if level == current else level
    y, n = yes0, no0
    while level <= 1 - TICK and len(asks) < depth:
        y1, n1 = _pool_at(float(level), k, p)
        shares = y + (n1 - n) - y1  # spend n1 - n on YES: both pools grow by it, YES shares come out
        size = Decimal(repr(shares)).quantize(SIZE_QUANTUM)
        if size > 0:  # a sliver between the probability and the next cent is no level
            asks.append(BookLevel(level, size))
        y, n, level = y1, n1, level + TICK
    bids: list[BookLevel] = []
    level = (current / TICK).to_integral_value(ROUND_FLOOR) * TICK
    level = level - TICK if level == current else level
    y, n = yes0, no0
    while level >= TICK and len(bids) < depth:
        y1, n1 = _pool_at(float(level), k, p)
        shares = n + (y1 - y) - n1  # NO shares bought, each redeeming one YES share held: selling YES
        size = Decimal(repr(shares)).quantize(SIZE_QUANTUM)
        if size > 0:
            bids.append(BookLevel(level, size))
        y, n, level = y1, n1, level - TICK
    return bids, asks


def synthetic_book(market: dict[str, Any], open_bets: Sequence[dict[str, Any]], instrument_id: str, depth: int,
                   *, now_ns: int = 0) -> BookSnapshot:
    """The book of one outcome from the pool and the open limit bets (module docstring)."""
    bids, asks = pool_levels(market, depth)
    by_side: dict[str, dict[Decimal, Decimal]] = {"bid": {}, "ask": {}}
    for level, side in [*((b, "bid") for b in bids), *((a, "ask") for a in asks)]:
        by_side[side][level.price] = by_side[side].get(level.price, Decimal(0)) + level.size
    for bet in open_bets:
        if bet.get("limitProb") is None or bet.get("isFilled") or bet.get("isCancelled"):
            continue
        prob = dec(bet["limitProb"])
        left = dec(bet.get("orderAmount")) - dec(bet.get("amount"))
        if left <= 0 or not 0 < prob < 1:
            continue
        yes = bet.get("outcome") == "YES"
        shares = (left / (prob if yes else ONE - prob)).quantize(SIZE_QUANTUM)
        levels = by_side["bid" if yes else "ask"]
        levels[prob] = levels.get(prob, Decimal(0)) + shares
    yes_bids = sorted(by_side["bid"].items(), reverse=True)
    yes_asks = sorted(by_side["ask"].items())
    _market, outcome = _outcome(instrument_id)
    if outcome == "YES":
        bid_levels, ask_levels = yes_bids, yes_asks
    else:
        bid_levels = [(ONE - px, q) for px, q in yes_asks]
        ask_levels = [(ONE - px, q) for px, q in yes_bids]
    bid_t = tuple(BookLevel(px, q) for px, q in bid_levels[:depth])
    ask_t = tuple(BookLevel(px, q) for px, q in ask_levels[:depth])
    ts = int(market.get("lastUpdatedTime") or 0) * 1_000_000 or now_ns or time.time_ns()
    return BookSnapshot(id=derive_id("manifold-book", instrument_id, ts, bid_t, ask_t), ts_event=ts,
                        ts_init=now_ns or time.time_ns(), instrument_id=instrument_id, bids=bid_t, asks=ask_t)


class ManifoldData:
    """:class:`~tradewire_datafeed.prediction.PredictionVenueData` for Manifold (module docstring)."""

    def __init__(self, config: PredictionFeedConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout_s: float = 10.0) -> None:
        self.config = config
        self.venue = config.venue.upper()
        self.base_url = (config.url_override or (DEV_URL if config.sandbox else LIVE_URL)).rstrip("/")
        self.client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, transport=transport,
                                        headers={"Accept": "application/json"})

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """A GET; transport errors, 429 and 5xx raise ``ConnectionError``, other errors ``ValueError``."""
        if "pytest" in sys.modules and urlsplit(self.base_url).hostname not in ("127.0.0.1", "localhost"):
            raise RuntimeError(f"tests may only call 127.0.0.1, not {self.base_url}")
        try:
            response = await self.client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ConnectionError(f"Manifold {path}: {type(exc).__name__}: {exc}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise ConnectionError(f"Manifold {path}: {response.status_code} {response.text[:200]}")
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise ValueError(f"Manifold {path}: {response.status_code} {str(message)[:300]}")
        return response.json()

    async def search_markets(self, query: str = "", *, limit: int = 20, active_only: bool = True) -> list[MarketInfo]:
        rows = await self.get("/v0/search-markets", {"term": query, "filter": "open" if active_only else "all",
                                                     "limit": min(max(limit, 1), 1000)})
        return [parse_market(r, self.venue) for r in rows or [] if isinstance(r, dict)]

    async def _market_raw(self, market_id: str) -> dict[str, Any]:
        raw = await self.get(f"/v0/market/{market_id}")
        if not isinstance(raw, dict):
            raise ValueError(f"Manifold answered no market for {market_id}")
        return raw

    async def market(self, market_id: str) -> MarketInfo:
        return parse_market(await self._market_raw(market_id), self.venue)

    async def book(self, market_id: str, instrument_id: str, depth: int = 10) -> BookSnapshot:
        raw = await self._market_raw(market_id)
        open_bets = await self.get("/v0/bets", {"contractId": market_id, "kinds": "open-limit", "limit": BET_PAGE})
        return synthetic_book(raw, open_bets or [], instrument_id, depth)

    async def bets(self, market_id: str, since_ns: int = 0) -> list[dict[str, Any]]:
        """The market's bets created at or after ``since_ns`` (every page), newest first."""
        out: list[dict[str, Any]] = []
        before: str | None = None
        for _page in range(MAX_PAGES):
            params: dict[str, Any] = {"contractId": market_id, "limit": BET_PAGE}
            if before:
                params["before"] = before
            page = [b for b in await self.get("/v0/bets", params) or [] if isinstance(b, dict)]
            out += page
            if len(page) < BET_PAGE or int(page[-1].get("createdTime") or 0) * 1_000_000 < since_ns:
                break
            before = str(page[-1]["id"])
        return out

    async def trades(self, market_id: str, instrument_id: str, since_ns: int = 0) -> list[TradeTick]:
        return [t for t in parse_trades(await self.bets(market_id, since_ns), instrument_id) if t.ts_event >= since_ns]

    async def history(self, market_id: str, instrument_id: str, start_ns: int, end_ns: int,
                      interval_s: int = 60) -> list[PricePoint]:
        _market, outcome = _outcome(instrument_id)
        points: list[PricePoint] = []
        opening: PricePoint | None = None
        for bet in sorted(await self.bets(market_id, start_ns), key=lambda b: int(b.get("createdTime") or 0)):
            if bet.get("probAfter") is None:
                continue
            ts = int(bet.get("createdTime") or 0) * 1_000_000
            prob = dec(bet["probAfter"])
            price = prob if outcome == "YES" else ONE - prob
            if ts < start_ns:
                opening = PricePoint(start_ns, price)
            elif ts < end_ns:
                points.append(PricePoint(ts, price))
        return ([opening] if opening is not None else []) + points

    async def resolution(self, market_id: str) -> MarketResolved | None:
        return parse_resolution(await self._market_raw(market_id), self.venue)

    async def stream(self, markets: Sequence[str]) -> AsyncIterator[Any]:
        """Polls (Manifold's API is REST): books of both outcomes, new trades, the resolution."""
        seen: OrderedDict[str, None] = OrderedDict()
        started = time.time_ns()  # bets before the stream started are history, not trades to publish
        since: dict[str, int] = {}
        while True:
            for market_id in markets:
                raw = await self._market_raw(market_id)
                open_bets = await self.get("/v0/bets", {"contractId": market_id, "kinds": "open-limit",
                                                        "limit": BET_PAGE})
                for iid in outcome_instruments(self.venue, market_id):
                    yield synthetic_book(raw, open_bets or [], iid, self.config.book_depth)
                bets = await self.bets(market_id, since.get(market_id, 0))
                for iid in outcome_instruments(self.venue, market_id):
                    for tick in parse_trades(bets, iid):
                        if tick.id not in seen and tick.ts_event >= started:
                            seen[tick.id] = None
                            yield tick
                while len(seen) > 50_000:
                    seen.popitem(last=False)
                if bets:
                    since[market_id] = max(int(b.get("createdTime") or 0) for b in bets) * 1_000_000
                resolved = parse_resolution(raw, self.venue)
                if resolved is not None:
                    yield resolved
            await asyncio.sleep(self.config.poll_interval_s)

    async def close(self) -> None:
        await self.client.aclose()
