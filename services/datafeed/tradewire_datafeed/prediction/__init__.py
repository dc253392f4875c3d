"""Prediction-market data: discovery, books, trades, price history and resolutions, one client per venue.

Every venue module (``polymarket``, ``kalshi``, ``manifold``) provides a class implementing
:class:`PredictionVenueData`, registered in :data:`VENUES` as ``"module:Class"`` so that a venue's client
library is imported only when it is used. The feed (:mod:`tradewire_datafeed.prediction.feed`), ``tradewire
markets search`` and the history download into the Parquet catalog only talk to this protocol.

Instrument ids of outcomes: ``<symbol>.<VENUE>`` where the symbol is the venue's outcome handle
(Polymarket: the CLOB token id; Kalshi: ``<ticker>-YES`` / ``<ticker>-NO``; Manifold: ``<contract id>-YES``
/ ``-NO``), see each module.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from tradewire_common.config import PredictionFeedConfig
from tradewire_common.schemas import BookSnapshot, MarketResolved, TradeTick


class OutcomeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One outcome (a tradable contract) of a market."""

    label: str
    instrument_id: str
    price: Decimal | None = None


class MarketInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A market as discovery reports it."""

    venue: str
    market_id: str
    question: str
    outcomes: tuple[OutcomeInfo, ...]
    volume: Decimal = Decimal(0)
    liquidity: Decimal = Decimal(0)
    #: Close / end time (ns since the epoch, UTC); 0 = unknown.
    end_ns: int = 0
    active: bool = True
    closed: bool = False
    tick_size: Decimal = Decimal("0.01")
    event_id: str = ""
    url: str = ""


class PricePoint(msgspec.Struct, frozen=True, array_like=True):
    """One point of an outcome's probability history."""

    ts_ns: int
    price: Decimal


class PredictionVenueData(Protocol):
    """What each venue's data client implements (all network calls are async)."""

    venue: str

    async def search_markets(self, query: str = "", *, limit: int = 20, active_only: bool = True) -> list[MarketInfo]:
        """Markets matching ``query`` (the venue's own search where it has one)."""

    async def market(self, market_id: str) -> MarketInfo: ...

    async def book(self, market_id: str, instrument_id: str, depth: int = 10) -> BookSnapshot:
        """A REST snapshot of one outcome's book (bids and asks as probabilities)."""

    async def trades(self, market_id: str, instrument_id: str, since_ns: int = 0) -> list[TradeTick]: ...

    async def history(self, market_id: str, instrument_id: str, start_ns: int, end_ns: int,
                      interval_s: int = 60) -> list[PricePoint]: ...

    async def resolution(self, market_id: str) -> MarketResolved | None:
        """The market's resolution, or None while it is open."""

    def stream(self, markets: Sequence[str]) -> AsyncIterator[Any]:
        """Book snapshots/deltas, trades and resolutions as they come (websocket where the venue has one);
        raises ``ConnectionError`` on a gap so the feed heals it with REST snapshots."""

    async def close(self) -> None: ...


#: Venue adapter name -> ``"module:Class"`` of its data client.
VENUES: dict[str, str] = {
    "polymarket": "tradewire_datafeed.prediction.polymarket:PolymarketData",
    "kalshi": "tradewire_datafeed.prediction.kalshi:KalshiData",
    "manifold": "tradewire_datafeed.prediction.manifold:ManifoldData",
}


def venue_data(config: PredictionFeedConfig) -> PredictionVenueData:
    """The data client of a configured prediction feed."""
    target = VENUES.get(config.adapter)
    if target is None:
        raise ValueError(f"unknown prediction venue {config.adapter!r} (known: {', '.join(sorted(VENUES))})")
    module, _, name = target.partition(":")
    cls: Any = getattr(importlib.import_module(module), name)
    client: PredictionVenueData = cls(config)
    return client
