"""Kalshi market data (KalshiData) against the fake Kalshi in the current wire revision: search with filters and
pages, the single book as YES and NO books, trades, candle history, resolution, and the signed websocket whose
gap is healed by a REST snapshot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.kalshi_fake import KalshiFake, kalshi_fake, new_key_pair
from tests.support.venue_tests import eventually
from tradewire_common.config import PredictionFeedConfig
from tradewire_common.schemas import BookDelta, BookLevel, BookSnapshot, MarketResolved, Message, Side, TradeTick
from tradewire_datafeed.prediction import PricePoint, venue_data
from tradewire_datafeed.prediction.feed import PredictionFeed
from tradewire_datafeed.prediction.kalshi import KalshiData

pytestmark = pytest.mark.timeout(60)

VENUE = "KALSHI"
KEY_ID = "b1f0c2de-data-feed-key"
PRIVATE, PUBLIC = new_key_pair()
TICKER = "KXTWDATA-26DEC31-T3"
YES, NO = f"{TICKER}-YES.{VENUE}", f"{TICKER}-NO.{VENUE}"


@pytest.fixture
def fake() -> Iterator[KalshiFake]:
    with kalshi_fake(wire="current") as venue:
        venue.register_key(KEY_ID, PUBLIC)
        venue.load_recorded_markets()
        venue.add_market(TICKER, title="Will the data test print three?", volume="1200", liquidity="350")
        yield venue


@pytest.fixture
async def data(fake: KalshiFake, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[KalshiData]:
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_KEY", KEY_ID)
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_SECRET", PRIVATE)
    client = venue_data(PredictionFeedConfig(venue=VENUE, adapter="kalshi", markets=(TICKER,),
                                             url_override=fake.server.url))
    assert isinstance(client, KalshiData)
    yield client
    await client.close()


async def next_of(stream: AsyncIterator[Any], kind: type, timeout: float = 5.0) -> Any:
    while True:
        item = await asyncio.wait_for(anext(stream), timeout)
        if isinstance(item, kind):
            return item


async def test_search_filters_by_text_series_close_time_and_volume_across_pages(
    fake: KalshiFake, data: KalshiData
) -> None:
    for n in range(3):  # more markets than one of the fake's pages
        fake.add_market(f"KXTWPAGE-26-{n}", volume=str(10 * n))
    mars = await data.search_markets("mars")
    assert sorted(m.market_id for m in mars) == ["KXCOLONIZEMARS-50", "KXELONMARS-99"]
    assert [m.market_id for m in await data.search_markets("mars", min_volume=Decimal(50000))] == ["KXELONMARS-99"]
    assert [m.market_id for m in await data.search_markets(series="KXCOLONIZEMARS")] == ["KXCOLONIZEMARS-50"]
    before_2060 = int(time.mktime((2060, 1, 1, 0, 0, 0, 0, 0, 0))) * 1_000_000_000
    closing = await data.search_markets(closes_after_ns=int(time.time() + 365 * 86400) * 1_000_000_000,
                                        closes_before_ns=before_2060)
    assert [m.market_id for m in closing] == ["KXCOLONIZEMARS-50"]
    assert [m.market_id for m in await data.search_markets(min_liquidity=Decimal(100))] == [TICKER]
    listings = [q for m, p, q in fake.requests if p.endswith("/markets")]
    assert any(q.get("cursor") for q in listings) and all(q.get("status") == "open" for q in listings)

    elon = await data.market("KXELONMARS-99")
    assert (elon.question, elon.volume, elon.tick_size, elon.event_id) == (
        "Will Elon Musk visit Mars before Aug 1, 2099?", Decimal("94884.62"), Decimal("0.0100"), "KXELONMARS-99")
    assert [(o.label, o.instrument_id, o.price) for o in elon.outcomes] == [
        ("YES", "KXELONMARS-99-YES.KALSHI", Decimal("0.1000")), ("NO", "KXELONMARS-99-NO.KALSHI", Decimal("0.9000"))]
    assert (await data.market("KXCOLONIZEMARS-50")).tick_size == Decimal("0.0010")  # deci_cent


async def test_the_single_book_is_the_yes_book_and_its_mirror_the_no_book(fake: KalshiFake, data: KalshiData) -> None:
    await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.40", "5")
    await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.38", "2")
    await asyncio.to_thread(fake.counterparty, TICKER, "no", "buy", "0.55", "3")
    yes = await data.book(TICKER, YES)
    no = await data.book(TICKER, NO)
    d = Decimal
    assert yes.instrument_id == YES
    assert (yes.bids, yes.asks) == ((BookLevel(d("0.40"), d("5")), BookLevel(d("0.38"), d("2"))),
                                    (BookLevel(d("0.45"), d("3")),))
    assert (no.bids, no.asks) == ((BookLevel(d("0.55"), d("3")),),
                                  (BookLevel(d("0.60"), d("5")), BookLevel(d("0.62"), d("2"))))


async def test_trades_are_ticks_on_both_outcomes_with_the_aggressor_of_each(fake: KalshiFake, data: KalshiData) -> None:
    await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.40", "5")
    await asyncio.to_thread(fake.counterparty, TICKER, "no", "buy", "0.61", "2")  # takes the YES bid: NO bought
    (yes,) = await data.trades(TICKER, YES)
    (no,) = await data.trades(TICKER, NO)
    assert (yes.price, yes.size, yes.aggressor_side) == (Decimal("0.4000"), Decimal("2.00"), Side.SELL)
    assert (no.price, no.size, no.aggressor_side) == (Decimal("0.6000"), Decimal("2.00"), Side.BUY)
    assert yes.trade_id == no.trade_id and await data.trades(TICKER, YES, since_ns=yes.ts_event + 1) == []
    for n in range(4):  # more trades than one page
        await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", f"0.4{n + 1}", "1")
        await asyncio.to_thread(fake.counterparty, TICKER, "no", "buy", "0.70", "1")
    ticks = await data.trades(TICKER, YES)
    assert [t.price for t in ticks] == [Decimal("0.4000"), Decimal("0.4100"), Decimal("0.4200"), Decimal("0.4300"),
                                        Decimal("0.4400")]  # oldest first
    assert any(q.get("cursor") for _m, p, q in fake.requests if p.endswith("/markets/trades"))


async def test_history_comes_from_the_recorded_candles_of_the_markets_series(
    fake: KalshiFake, data: KalshiData
) -> None:
    points = await data.history("KXELONMARS-99", "KXELONMARS-99-YES.KALSHI", 1781100000 * 10**9, 1781200000 * 10**9,
                                interval_s=3600)
    assert points == [PricePoint(1781143200 * 10**9, Decimal("0.0900")), PricePoint(1781172000 * 10**9,
                                                                                    Decimal("0.0900"))]
    no = await data.history("KXELONMARS-99", "KXELONMARS-99-NO.KALSHI", 1781100000 * 10**9, 1781150000 * 10**9, 3600)
    assert no == [PricePoint(1781143200 * 10**9, Decimal("0.9100"))]
    (call,) = [q for m, p, q in fake.requests if p.endswith("/candlesticks")][:1]
    assert call["period_interval"] == "60"
    assert any(p.endswith("/series/KXELONMARS/markets/KXELONMARS-99/candlesticks") for _m, p, _q in fake.requests)


async def test_resolution_is_none_while_open_and_the_result_once_determined(fake: KalshiFake, data: KalshiData) -> None:
    assert await data.resolution(TICKER) is None
    await asyncio.to_thread(fake.settle, TICKER, "yes")
    resolved = await data.resolution(TICKER)
    assert isinstance(resolved, MarketResolved) and (resolved.market_id, resolved.resolution) == (TICKER, "YES")
    assert {p.instrument_id: p.payout for p in resolved.payouts} == {YES: Decimal(1), NO: Decimal(0)}


async def test_the_websocket_streams_snapshot_deltas_trades_and_a_gap_is_healed_by_a_rest_snapshot(
    fake: KalshiFake, data: KalshiData
) -> None:
    await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.40", "5")
    stream = data.stream([TICKER])
    try:
        first = await next_of(stream, BookSnapshot)
        assert (first.instrument_id, first.bids) == (YES, (BookLevel(Decimal("0.4000"), Decimal("5.00")),))
        await asyncio.to_thread(fake.counterparty, TICKER, "no", "buy", "0.55", "3")
        delta = await next_of(stream, BookDelta)
        assert (delta.instrument_id, delta.side, delta.price, delta.size) == (
            NO, Side.BUY, Decimal("0.5500"), Decimal("3.00"))
        mirror = await next_of(stream, BookDelta)
        assert (mirror.instrument_id, mirror.side, mirror.price) == (YES, Side.SELL, Decimal("0.4500"))
        await asyncio.to_thread(fake.counterparty, TICKER, "no", "buy", "0.61", "2")  # trades 2 at 0.40
        tick = await next_of(stream, TradeTick)
        assert (tick.instrument_id, tick.price, tick.size) == (YES, Decimal("0.4000"), Decimal("2.00"))
        fake.skip_seq()  # one message is lost
        await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.42", "7")
        with pytest.raises(ConnectionError, match="gap"):
            while True:
                await asyncio.wait_for(anext(stream), 5)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    healed = await data.book(TICKER, YES)  # the feed heals with a REST snapshot, then subscribes again
    d = Decimal
    assert (healed.bids, healed.asks) == ((BookLevel(d("0.42"), d("7")), BookLevel(d("0.40"), d("3"))),
                                          (BookLevel(d("0.45"), d("3")),))
    again = data.stream([TICKER])
    try:
        fresh = await next_of(again, BookSnapshot)
        assert (fresh.bids, fresh.asks) == (healed.bids, healed.asks)
        await asyncio.to_thread(fake.settle, TICKER, "no")
        resolved = await next_of(again, MarketResolved)
        assert (resolved.market_id, resolved.resolution) == (TICKER, "NO")
    finally:
        await again.aclose()  # type: ignore[attr-defined]


async def test_a_websocket_signed_with_an_unknown_key_is_refused(fake: KalshiFake,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    stranger, _ = new_key_pair()
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_KEY", KEY_ID)
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_SECRET", stranger)
    client = KalshiData(PredictionFeedConfig(venue=VENUE, adapter="kalshi", markets=(TICKER,),
                                             url_override=fake.server.url))
    stream = client.stream([TICKER])
    try:
        with pytest.raises(Exception, match=r"403|4001|rejected"):
            await asyncio.wait_for(anext(stream), 5)
    finally:
        await client.close()
    assert fake.auth_failures == ["invalid signature"]


async def test_without_an_api_key_the_stream_polls_books_trades_and_the_resolution(
    fake: KalshiFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRADEWIRE_KALSHI_API_KEY", raising=False)
    client = KalshiData(PredictionFeedConfig(venue=VENUE, adapter="kalshi", markets=(TICKER,), poll_interval_s=0.05,
                                             url_override=fake.server.url))
    await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.40", "5")
    stream = client.stream([TICKER])
    try:
        book = await next_of(stream, BookSnapshot)
        assert (book.instrument_id, book.bids) == (YES, (BookLevel(Decimal("0.4000"), Decimal("5.00")),))
        await asyncio.to_thread(fake.counterparty, TICKER, "no", "buy", "0.61", "2")
        tick = await next_of(stream, TradeTick)
        assert (tick.instrument_id, tick.price, tick.size) == (YES, Decimal("0.4000"), Decimal("2.00"))
        await asyncio.to_thread(fake.settle, TICKER, "yes")
        resolved = await next_of(stream, MarketResolved)
        assert resolved.resolution == "YES"
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await client.close()
    assert not fake.auth_failures and not fake._subs  # public REST only, no websocket


async def test_the_feed_heals_a_lost_delta_with_rest_snapshots_and_returns_to_the_stream(
    fake: KalshiFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_KEY", KEY_ID)
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_SECRET", PRIVATE)
    published: list[tuple[str, Message]] = []

    async def publish(subject: str, message: Message) -> None:
        published.append((subject, message))

    def yes_books() -> list[BookSnapshot]:
        return [m for _s, m in published if isinstance(m, BookSnapshot) and m.instrument_id == YES]

    await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.40", "5")
    feed = PredictionFeed(PredictionFeedConfig(venue=VENUE, adapter="kalshi", markets=(TICKER,), poll_interval_s=0.05,
                                               reconnect_s=0.5, url_override=fake.server.url), publish)
    await feed.start()
    try:
        await eventually(lambda: fake.stream_clients() == 1 and bool(yes_books()))
        fake.skip_seq()  # the delta of the next order is lost
        await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.43", "4")
        await eventually(lambda: feed.gaps == 1)
        await eventually(lambda: yes_books()[-1].bids[0].price == Decimal("0.4300"))  # healed by REST
        await eventually(lambda: feed.mode == "stream" and fake.stream_clients() == 1)  # back on the stream
        await asyncio.to_thread(fake.counterparty, TICKER, "no", "buy", "0.50", "2")  # a YES ask at 0.50
        await eventually(lambda: bool(yes_books()[-1].asks))
        last = yes_books()[-1]
        await asyncio.to_thread(fake.settle, TICKER, "yes")  # cancels the resting orders, resolves YES
        await eventually(lambda: any(isinstance(m, MarketResolved) for _s, m in published))
    finally:
        await feed.stop()
    assert [(lv.price, lv.size) for lv in last.bids] == [(Decimal("0.4300"), Decimal("4.00")),
                                                         (Decimal("0.4000"), Decimal("5.00"))]
    assert [(lv.price, lv.size) for lv in last.asks] == [(Decimal("0.5000"), Decimal("2.00"))]
    (subject, resolved), = [(s, m) for s, m in published if isinstance(m, MarketResolved)]
    assert subject == "pm.resolved.KALSHI" and resolved.resolution == "YES"  # type: ignore[attr-defined]
