"""The prediction feed with a scripted data client: books from snapshots and deltas, a quote per change of the top,
trades once, a resolution once with the shared id, a stream gap healed with REST snapshots then the stream again,
and polling for a client without a stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import pytest

from tests.support.venue_tests import eventually
from tradewire_common.config import PredictionFeedConfig
from tradewire_common.ids import derive_id
from tradewire_common.metrics import ServiceMetrics
from tradewire_common.schemas import (
    BookDelta,
    BookLevel,
    BookSnapshot,
    MarketResolved,
    Message,
    OutcomePayout,
    Quote,
    Side,
    TradeTick,
)
from tradewire_datafeed.prediction import MarketInfo, OutcomeInfo, PricePoint
from tradewire_datafeed.prediction.feed import PredictionFeed, PredictionFeedMetrics

pytestmark = pytest.mark.timeout(20)

YES, NO = "M1-YES.TEST", "M1-NO.TEST"


def book(iid: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], ts: int = 1) -> BookSnapshot:
    return BookSnapshot(id=f"b{ts}", ts_event=ts, ts_init=ts, instrument_id=iid,
                        bids=tuple(BookLevel(Decimal(p), Decimal(q)) for p, q in bids),
                        asks=tuple(BookLevel(Decimal(p), Decimal(q)) for p, q in asks))


def delta(price: str, size: str) -> BookDelta:
    return BookDelta(id=f"d{price}", ts_event=3, ts_init=3, instrument_id=YES, side=Side.BUY, price=Decimal(price),
                     size=Decimal(size))


def trade(iid: str, trade_id: str, ts: int = 5) -> TradeTick:
    return TradeTick(id=f"t{trade_id}", ts_event=ts, ts_init=ts, instrument_id=iid, price=Decimal("0.4"),
                     size=Decimal(3), aggressor_side=Side.BUY, trade_id=trade_id)


RESOLVED = MarketResolved(id="client-chosen", ts_event=9, ts_init=9, venue="TEST", market_id="M1", resolution="YES",
                          payouts=(OutcomePayout(instrument_id=YES, payout=Decimal(1)),
                                   OutcomePayout(instrument_id=NO, payout=Decimal(0))))


class Scripted:
    """A data client whose stream plays ``script`` (an Exception item is raised) and whose REST answers are set."""

    venue = "TEST"

    def __init__(self, script: list[Any], *, streams: bool = True) -> None:
        self.script = script
        self.streams = streams
        self.stream_calls = 0
        self.rest_books = {YES: book(YES, [("0.39", "5")], [("0.41", "5")], ts=50),
                           NO: book(NO, [("0.59", "5")], [("0.61", "5")], ts=50)}
        self.rest_trades: list[TradeTick] = []
        self.resolved: MarketResolved | None = None
        self.resolve_after = 0
        self.rest_calls = 0

    async def market(self, market_id: str) -> MarketInfo:
        return MarketInfo(venue="TEST", market_id=market_id, question="?",
                          outcomes=(OutcomeInfo(label="YES", instrument_id=YES),
                                    OutcomeInfo(label="NO", instrument_id=NO)))

    async def search_markets(self, query: str = "", *, limit: int = 20, active_only: bool = True) -> list[MarketInfo]:
        return []

    async def book(self, market_id: str, instrument_id: str, depth: int = 10) -> BookSnapshot:
        self.rest_calls += 1
        return self.rest_books[instrument_id]

    async def trades(self, market_id: str, instrument_id: str, since_ns: int = 0) -> list[TradeTick]:
        return [t for t in self.rest_trades if t.instrument_id == instrument_id and t.ts_event >= since_ns]

    async def history(self, market_id: str, instrument_id: str, start_ns: int, end_ns: int,
                      interval_s: int = 60) -> list[PricePoint]:
        return []

    async def resolution(self, market_id: str) -> MarketResolved | None:
        return self.resolved if self.rest_calls >= self.resolve_after else None

    async def stream(self, markets: Sequence[str]) -> AsyncIterator[Any]:
        self.stream_calls += 1
        if not self.streams:
            raise NotImplementedError
        while self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            yield item
        await asyncio.Event().wait()  # the stream stays open

    async def close(self) -> None:
        pass


def make_feed(client: Scripted, **kw: Any) -> tuple[PredictionFeed, list[tuple[str, Message]]]:
    out: list[tuple[str, Message]] = []

    async def publish(subject: str, message: Message) -> None:
        out.append((subject, message))

    config = PredictionFeedConfig(venue="test", adapter="manifold", markets=("M1",), poll_interval_s=0.01,
                                  reconnect_s=kw.pop("reconnect_s", 0.05), book_depth=kw.pop("book_depth", 10), **kw)
    metrics = PredictionFeedMetrics(ServiceMetrics("datafeed"))
    return PredictionFeed(config, publish, metrics=metrics, now_ns=lambda: 77, client=client), out  # type: ignore[arg-type]


def of(out: list[tuple[str, Message]], kind: type[Message]) -> list[tuple[str, Any]]:
    return [(s, m) for s, m in out if isinstance(m, kind)]


async def test_snapshots_and_deltas_publish_the_top_levels_when_they_change_and_a_quote_when_the_top_does() -> None:
    client = Scripted([book(YES, [("0.40", "10"), ("0.39", "4")], [("0.42", "7")]),
                       delta("0.38", "3"),  # below the top two levels published: nothing new
                       delta("0.40", "0")])  # the best bid leaves: the quote moves to .39
    feed, out = make_feed(client, book_depth=2)
    await feed.start()
    await eventually(lambda: len(of(out, BookSnapshot)) == 2 and not client.script)
    await feed.stop()
    books = [m for _s, m in of(out, BookSnapshot)]
    assert all(s == "md.book.TEST.M1-YES" for s, _m in of(out, BookSnapshot))
    assert [tuple(lv.price for lv in b.bids) for b in books] == [
        (Decimal("0.40"), Decimal("0.39")), (Decimal("0.39"), Decimal("0.38"))]
    quotes = [m for _s, m in of(out, Quote)]
    assert [(q.bid, q.ask, q.bid_size) for q in quotes] == [(Decimal("0.40"), Decimal("0.42"), Decimal("10")),
                                                            (Decimal("0.39"), Decimal("0.42"), Decimal("4"))]
    assert of(out, Quote)[0][0] == "md.quote.TEST.M1-YES"


async def test_trades_once_and_a_resolution_once_with_the_id_from_venue_and_market() -> None:
    client = Scripted([trade(YES, "a"), trade(YES, "a"), trade(NO, "a"), RESOLVED, RESOLVED])
    feed, out = make_feed(client)
    await feed.start()
    await eventually(lambda: len(of(out, MarketResolved)) == 1 and not client.script)
    await feed.stop()
    assert [(s, m.trade_id) for s, m in of(out, TradeTick)] == [("md.trade.TEST.M1-YES", "a"),
                                                                ("md.trade.TEST.M1-NO", "a")]
    ((subject, resolved),) = of(out, MarketResolved)
    assert subject == "pm.resolved.TEST" and resolved.id == derive_id("MarketResolved", "TEST", "M1")
    assert feed.status()["resolved"] == ["M1"]


async def test_a_stream_gap_is_healed_with_rest_snapshots_then_the_stream_is_followed_again() -> None:
    client = Scripted([book(YES, [("0.40", "10")], [("0.42", "7")]), ConnectionError("sequence gap"),
                       trade(YES, "after")])
    client.rest_trades = [trade(YES, "history", ts=76), trade(YES, "missed", ts=78)]  # the feed starts at 77
    feed, out = make_feed(client)
    await feed.start()
    await eventually(lambda: any(m.trade_id == "after" for _s, m in of(out, TradeTick)))
    await feed.stop()
    assert feed.gaps == 1 and client.stream_calls == 2 and client.rest_calls >= 2
    assert [m.trade_id for _s, m in of(out, TradeTick)] == ["missed", "after"]
    healed = [m for _s, m in of(out, BookSnapshot) if m.instrument_id == NO]  # the NO book came from REST
    assert healed and healed[0].bids[0].price == Decimal("0.59")
    assert feed.metrics is not None and feed.metrics.gaps.labels("TEST")._value.get() == 1


async def test_a_client_without_a_stream_is_polled_and_staleness_is_the_last_publish_time() -> None:
    client = Scripted([], streams=False)
    client.resolved, client.resolve_after = RESOLVED, 6  # three polls of both books first
    feed, out = make_feed(client)
    await feed.start()
    await eventually(lambda: bool(of(out, MarketResolved)))
    await feed.stop()
    assert feed.mode == "rest" and client.stream_calls == 1
    assert {m.instrument_id for _s, m in of(out, BookSnapshot)} == {YES, NO}
    assert client.rest_calls == 6 and len(of(out, BookSnapshot)) == 2  # polled again unchanged: not republished
    assert feed.metrics is not None and feed.metrics.last_update.labels(YES)._value.get() == 77 / 1e9
