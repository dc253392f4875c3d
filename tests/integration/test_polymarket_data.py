"""The Polymarket data client (httpx + websockets) against the fake Polymarket: Gamma search and its filters,
books, trades, history, resolutions, the market channel, and a websocket gap healed by a REST snapshot in the
prediction feed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.polymarket import PolymarketFake, polymarket_fake
from tests.support.venue_tests import eventually
from tradewire_common.config import PredictionFeedConfig
from tradewire_common.schemas import BookDelta, BookSnapshot, MarketResolved, Message, Side, TradeTick
from tradewire_datafeed.prediction import venue_data
from tradewire_datafeed.prediction.feed import PredictionFeed
from tradewire_datafeed.prediction.polymarket import PolymarketData

pytestmark = pytest.mark.timeout(60)

VENUE = "POLYMARKET"
ELECTION = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"
YES = "21742633143463906290569050155826241533067272736897614950488156847949938836455"
NO = "48331043336612883890938759509493159234755048973500640148014422747788308965732"
SMALL, OLD, CLOSED = "0x" + "11" * 32, "0x" + "22" * 32, "0x" + "33" * 32


@pytest.fixture
def fake() -> Iterator[PolymarketFake]:
    with polymarket_fake() as venue:
        venue.add_market(ELECTION, YES, NO, "Will Donald Trump win the 2024 US Presidential Election?",
                         volume=Decimal("3000000"), liquidity=Decimal("500000"), end_date="2024-11-05T12:00:00Z")
        venue.add_market(SMALL, "101", "102", "Will it snow in Paris on Christmas?", volume=Decimal("900"),
                         liquidity=Decimal("50"), end_date="2026-12-25T23:00:00Z")
        venue.add_market(OLD, "201", "202", "Will the election be postponed?", volume=Decimal("80000"),
                         liquidity=Decimal("20000"), end_date="2027-01-01T00:00:00Z")
        venue.add_market(CLOSED, "301", "302", "Will the election turnout exceed 60%?", volume=Decimal("90000"),
                         liquidity=Decimal("0"), closed=True, active=False, payouts=(Decimal(1), Decimal(0)))
        venue.rest(YES, "BUY", "0.40", "100")
        venue.rest(YES, "BUY", "0.39", "50")
        venue.rest(YES, "SELL", "0.43", "80")
        yield venue


def config(fake: PolymarketFake, **kw: Any) -> PredictionFeedConfig:
    return PredictionFeedConfig(venue=VENUE, adapter="polymarket", markets=(ELECTION,), url_override=fake.url,
                                book_depth=5, **kw)


@pytest.fixture
async def client(fake: PolymarketFake) -> AsyncIterator[PolymarketData]:
    data = venue_data(config(fake))
    assert isinstance(data, PolymarketData)
    yield data
    await data.close()


async def test_search_filters_by_volume_liquidity_end_date_and_open_markets(client: PolymarketData) -> None:
    def ids(found: list[Any]) -> set[str]:
        return {m.market_id for m in found}

    assert ids(await client.search_markets()) == {ELECTION, SMALL, OLD}  # closed left out
    assert ids(await client.search_markets(active_only=False)) == {ELECTION, SMALL, OLD, CLOSED}
    assert ids(await client.search_markets(min_volume=Decimal(50_000))) == {ELECTION, OLD}
    assert ids(await client.search_markets(min_liquidity=Decimal(100_000))) == {ELECTION}
    dec_2026 = 1_798_761_600 * 1_000_000_000  # 2027-01-01
    assert ids(await client.search_markets(end_after_ns=1_767_225_600 * 1_000_000_000,  # 2026-01-01
                                           end_before_ns=dec_2026 - 1)) == {SMALL}
    found = await client.search_markets("election")  # Gamma's text search, open markets only
    assert ids(found) == {ELECTION, OLD}
    election = next(m for m in found if m.market_id == ELECTION)
    assert [(o.label, o.instrument_id) for o in election.outcomes] == [
        ("Yes", f"{YES}.{VENUE}"), ("No", f"{NO}.{VENUE}")]
    assert election.volume == Decimal(3_000_000) and election.outcomes[0].price == Decimal("0.4")


async def test_a_book_snapshot_is_the_fakes_book_best_first(client: PolymarketData) -> None:
    snap = await client.book(ELECTION, f"{YES}.{VENUE}", depth=5)
    assert [(lv.price, lv.size) for lv in snap.bids] == [(Decimal("0.4"), Decimal(100)), (Decimal("0.39"), Decimal(50))]
    assert [(lv.price, lv.size) for lv in snap.asks] == [(Decimal("0.43"), Decimal(80))]


async def test_trades_and_price_history_of_one_outcome(fake: PolymarketFake, client: PolymarketData) -> None:
    fake.history(YES, [(1_730_000_000, "0.41"), (1_730_000_060, "0.42"), (1_730_000_120, "0.44")])
    fake.take(YES, "BUY", "0.43", "30")
    points = await client.history(ELECTION, f"{YES}.{VENUE}", 1_730_000_000 * 10**9, 1_730_000_100 * 10**9)
    assert [(p.ts_ns, p.price) for p in points] == [(1_730_000_000 * 10**9, Decimal("0.41")),
                                                    (1_730_000_060 * 10**9, Decimal("0.42"))]
    (tick,) = await client.trades(ELECTION, f"{YES}.{VENUE}")
    assert (tick.price, tick.size, tick.aggressor_side) == (Decimal("0.43"), Decimal(30), Side.BUY)
    assert await client.trades(ELECTION, f"{NO}.{VENUE}") == []


async def test_resolution_is_none_while_open_and_pays_the_winner_after(
    fake: PolymarketFake, client: PolymarketData
) -> None:
    assert await client.resolution(ELECTION) is None
    fake.resolve(ELECTION, "1")
    resolved = await client.resolution(ELECTION)
    assert resolved is not None and resolved.resolution == "YES"
    assert {p.instrument_id: p.payout for p in resolved.payouts} == {f"{YES}.{VENUE}": 1, f"{NO}.{VENUE}": 0}
    closed = await client.resolution(CLOSED)
    assert closed is not None and closed.market_id == CLOSED


async def test_the_market_channel_streams_snapshots_deltas_trades_and_the_resolution(
    fake: PolymarketFake, client: PolymarketData
) -> None:
    got: list[Any] = []

    async def follow() -> None:
        async for item in client.stream([ELECTION]):
            got.append(item)

    task = asyncio.create_task(follow())
    try:
        await eventually(lambda: len([g for g in got if isinstance(g, BookSnapshot)]) == 2)
        fake.change_tick(ELECTION, "0.001")  # announced, not a book event: the stream goes on
        fake.rest(YES, "BUY", "0.41", "5")
        fake.take(YES, "BUY", "0.43", "30")
        fake.resolve(ELECTION, "0")
        await eventually(lambda: any(isinstance(g, MarketResolved) for g in got))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    deltas = [g for g in got if isinstance(g, BookDelta)]
    assert (deltas[0].side, deltas[0].price, deltas[0].size) == (Side.BUY, Decimal("0.41"), Decimal(5))
    assert any(d.side is Side.SELL and d.price == Decimal("0.43") and d.size == Decimal(50) for d in deltas)
    (tick,) = [g for g in got if isinstance(g, TradeTick)]
    assert (tick.instrument_id, tick.price, tick.size) == (f"{YES}.{VENUE}", Decimal("0.43"), Decimal(30))
    (resolved,) = [g for g in got if isinstance(g, MarketResolved)]
    assert resolved.resolution == "NO" and resolved.market_id == ELECTION


async def test_a_dropped_market_channel_is_a_connection_error(fake: PolymarketFake, client: PolymarketData) -> None:
    stream = client.stream([ELECTION])
    first = await anext(stream)
    assert isinstance(first, BookSnapshot)
    await anext(stream)
    fake.drop_ws()
    with pytest.raises(ConnectionError):
        await anext(stream)


async def test_a_lost_price_change_is_a_gap_the_feed_heals_with_a_rest_snapshot(fake: PolymarketFake) -> None:
    published: list[tuple[str, Message]] = []

    async def publish(subject: str, message: Message) -> None:
        published.append((subject, message))

    feed = PredictionFeed(config(fake, poll_interval_s=0.05, reconnect_s=0.3), publish)
    await feed.start()
    try:
        await eventually(lambda: fake.ws_clients() == 1 and feed.published["books"] >= 2)
        fake.skip_ws(1)
        fake.rest(YES, "BUY", "0.45", "10")  # lost: the best bid is now 0.45
        fake.rest(YES, "BUY", "0.42", "5")  # says best bid 0.45, the feed's book says 0.42
        await eventually(lambda: feed.gaps == 1)

        def healed() -> bool:
            books = [m for s, m in published if isinstance(m, BookSnapshot) and m.instrument_id == f"{YES}.{VENUE}"]
            return bool(books) and books[-1].bids[0].price == Decimal("0.45")
        await eventually(healed)
        await eventually(lambda: feed.mode == "stream" and fake.ws_clients() == 1)  # back on the stream
    finally:
        await feed.stop()
    last = [m for _s, m in published if isinstance(m, BookSnapshot) and m.instrument_id == f"{YES}.{VENUE}"][-1]
    assert [(lv.price, lv.size) for lv in last.bids][:3] == [
        (Decimal("0.45"), Decimal(10)), (Decimal("0.42"), Decimal(5)), (Decimal("0.4"), Decimal(100))]


async def test_a_slow_answer_still_arrives_and_a_5xx_or_429_is_a_transient_connection_error(
    fake: PolymarketFake, client: PolymarketData
) -> None:
    fake.fault("GET", "/book", "latency", delay_s=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    snap = await client.book(ELECTION, f"{YES}.{VENUE}")
    assert loop.time() - started >= 0.3 and snap.bids[0].price == Decimal("0.4")
    fake.fault("GET", "/book", "5xx", status=502)
    fake.fault("GET", "/prices-history", "429")
    with pytest.raises(ConnectionError, match="502"):
        await client.book(ELECTION, f"{YES}.{VENUE}")
    with pytest.raises(ConnectionError, match="429"):
        await client.history(ELECTION, f"{YES}.{VENUE}", 0, 10**18)
