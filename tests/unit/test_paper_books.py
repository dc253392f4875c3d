"""The paper venue against books, quotes and trades (prediction markets): taker fills per level, resting maker
fills from added size or trades, post-only, IOC/FOK, latency, fees, bars win, idempotence and restart."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from tests.unit.test_paper_venue import bar, order
from tradewire_common.config import InstrumentSpec, PaperConfig
from tradewire_common.ids import derive_id
from tradewire_common.prediction import FeeSchedule
from tradewire_common.schemas import (
    BookDelta,
    BookLevel,
    BookSnapshot,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    Quote,
    Side,
    SubmitOrder,
    TimeInForce,
    TradeTick,
)
from tradewire_execution.paper import PaperVenue

D = Decimal
VENUE = "PAPER"
YES = "KXTEST-YES.PAPER"
T = 1_765_000_000_000_000_000
MS = 1_000_000
DAY = 86_400 * 1_000_000_000
NOW = 7


def venue(*, binary: bool = False, **kw: Any) -> PaperVenue:
    kw.setdefault("fee_bps", 10.0)
    paper = PaperVenue(VENUE, PaperConfig(**kw))
    if binary:
        paper.set_instruments([InstrumentSpec(id=YES, kind="binary", market_id="KXTEST", price_tick=D("0.01"))])
    return paper


def book(n: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]], *, ts: int | None = None) -> BookSnapshot:
    at = T + n * MS if ts is None else ts
    return BookSnapshot(id=derive_id("book", n), ts_event=at, ts_init=at, instrument_id=YES,
                        bids=tuple(BookLevel(D(p), D(q)) for p, q in bids),
                        asks=tuple(BookLevel(D(p), D(q)) for p, q in asks), sequence=n)


def quote(n: int, bid: str, ask: str, bid_size: str = "10", ask_size: str = "10") -> Quote:
    return Quote(id=derive_id("quote", n), ts_event=T + n * MS, ts_init=T + n * MS, instrument_id=YES, bid=D(bid),
                 ask=D(ask), bid_size=D(bid_size), ask_size=D(ask_size))


def trade(n: int, price: str, size: str) -> TradeTick:
    return TradeTick(id=derive_id("trade", n), ts_event=T + n * MS, ts_init=T + n * MS, instrument_id=YES,
                     price=D(price), size=D(size), aggressor_side=Side.SELL, trade_id=f"t{n}")


def pm_order(coid: str, *, qty: str = "10", limit: str | None = None, side: Side = Side.BUY, at: int = 0,
             tif: TimeInForce = TimeInForce.GTC, **kw: Any) -> SubmitOrder:
    base = order(coid, quantity=qty, limit=limit, side=side, instrument=YES)
    return msgspec.structs.replace(base, ts_event=T + at * MS, ts_init=T + at * MS, time_in_force=tif, **kw)


def fills(events: list[OrderEvent]) -> list[OrderFilled]:
    return [e for e in events if isinstance(e, OrderFilled)]


def px_qty(events: list[OrderEvent]) -> list[tuple[Decimal, Decimal, Liquidity]]:
    return [(f.last_px, f.last_qty, f.liquidity) for f in fills(events)]


ASKS = [("0.40", "4"), ("0.42", "5"), ("0.45", "100")]


# --- taker ------------------------------------------------------------------------------------------------------


async def test_a_market_order_takes_the_asks_best_first_one_fill_per_level() -> None:
    paper = venue()
    await paper.on_book(book(0, [("0.35", "50")], ASKS), NOW)
    events = await paper.submit(pm_order("m1", qty="12"), NOW)
    assert px_qty(events) == [(D("0.40"), D(4), Liquidity.TAKER), (D("0.42"), D(5), Liquidity.TAKER),
                              (D("0.45"), D(3), Liquidity.TAKER)]
    assert [f.leaves_qty for f in fills(events)] == [D(8), D(3), D(0)]
    assert [f.partial for f in fills(events)] == [True, True, False]
    assert all(f.ts_event == T for f in fills(events))
    assert fills(events)[0].fee == D(4) * D("0.40") * D("0.001")  # fee_bps 10
    assert paper.open_orders() == []


async def test_a_limit_buy_takes_levels_up_to_its_limit_and_rests_the_rest_at_its_limit() -> None:
    paper = venue()
    await paper.on_book(book(0, [("0.35", "50")], ASKS), NOW)
    events = await paper.submit(pm_order("l1", qty="12", limit="0.42"), NOW)
    assert px_qty(events) == [(D("0.40"), D(4), Liquidity.TAKER), (D("0.42"), D(5), Liquidity.TAKER)]
    assert paper.open_orders() == ["l1"]


async def test_a_limit_just_below_the_best_ask_does_not_take_and_rests() -> None:
    paper = venue()
    await paper.on_book(book(0, [("0.35", "50")], ASKS), NOW)
    events = await paper.submit(pm_order("l2", limit="0.39"), NOW)
    assert [type(e) for e in events] == [OrderAccepted]
    assert paper.open_orders() == ["l2"]


async def test_a_sell_limit_takes_the_bids_at_or_above_its_limit() -> None:
    paper = venue()
    await paper.on_book(book(0, [("0.35", "3"), ("0.34", "3"), ("0.33", "9")], ASKS), NOW)
    events = await paper.submit(pm_order("s1", side=Side.SELL, qty="10", limit="0.34"), NOW)
    assert px_qty(events) == [(D("0.35"), D(3), Liquidity.TAKER), (D("0.34"), D(3), Liquidity.TAKER)]


async def test_ioc_cancels_what_the_levels_did_not_fill() -> None:
    paper = venue()
    await paper.on_book(book(0, [], ASKS), NOW)
    events = await paper.submit(pm_order("i1", qty="12", limit="0.42", tif=TimeInForce.IOC), NOW)
    assert px_qty(events)[-1] == (D("0.42"), D(5), Liquidity.TAKER)
    (cancel,) = [e for e in events if isinstance(e, OrderCanceled)]
    assert cancel.filled_qty == D(9) and paper.open_orders() == []


async def test_fok_fills_only_when_the_levels_up_to_its_limit_hold_it_all() -> None:
    paper = venue()
    await paper.on_book(book(0, [], ASKS), NOW)
    short = await paper.submit(pm_order("f1", qty="10", limit="0.42", tif=TimeInForce.FOK), NOW)
    assert fills(short) == [] and [type(e) for e in short][-1] is OrderCanceled
    whole = await paper.submit(pm_order("f2", qty="9", limit="0.42", tif=TimeInForce.FOK), NOW)
    assert sum(f.last_qty for f in fills(whole)) == D(9)


async def test_orders_on_one_book_share_its_displayed_sizes_until_the_next_book() -> None:
    paper = venue()
    await paper.on_book(book(0, [], [("0.40", "4")]), NOW)
    first = await paper.submit(pm_order("a", qty="3", tif=TimeInForce.IOC), NOW)
    second = await paper.submit(pm_order("b", qty="3", tif=TimeInForce.IOC), NOW)
    assert [f.last_qty for f in fills(first)] == [D(3)]
    assert [f.last_qty for f in fills(second)] == [D(1)]  # what the first took is gone from this book


async def test_a_gtc_market_order_takes_again_from_later_books() -> None:
    paper = venue()
    await paper.on_book(book(0, [], [("0.40", "4")]), NOW)
    await paper.submit(pm_order("m2", qty="6"), NOW)
    later = await paper.on_book(book(1, [], [("0.41", "10")]), NOW)
    assert px_qty(later) == [(D("0.41"), D(2), Liquidity.TAKER)]
    assert paper.open_orders() == []


# --- resting (maker) ---------------------------------------------------------------------------------------------


async def test_a_resting_bid_fills_as_maker_at_its_limit_for_the_size_a_later_book_adds_through_it() -> None:
    paper = venue(maker_fee_bps=2.0)
    await paper.on_book(book(0, [("0.35", "50")], [("0.40", "4")]), NOW)
    await paper.submit(pm_order("r1", qty="10", limit="0.38"), NOW)
    # the ask at 0.40 was there already (not through 0.38); a new ask of 3 at 0.37 crosses the bid
    events = await paper.on_book(book(1, [("0.35", "50")], [("0.37", "3"), ("0.40", "4")]), NOW)
    assert px_qty(events) == [(D("0.38"), D(3), Liquidity.MAKER)]
    assert fills(events)[0].fee == D(3) * D("0.38") * D("0.0002")
    # the same book again (another message, nothing added): no fill; 2 more at 0.37: 2 more
    assert await paper.on_book(book(2, [("0.35", "50")], [("0.37", "3"), ("0.40", "4")]), NOW) == []
    more = await paper.on_book(book(3, [("0.35", "50")], [("0.37", "5"), ("0.40", "4")]), NOW)
    assert px_qty(more) == [(D("0.38"), D(2), Liquidity.MAKER)]


async def test_size_added_above_a_resting_bid_does_not_fill_it() -> None:
    paper = venue()
    await paper.on_book(book(0, [], [("0.40", "4")]), NOW)
    await paper.submit(pm_order("r2", limit="0.38"), NOW)
    assert await paper.on_book(book(1, [], [("0.39", "50"), ("0.40", "40")]), NOW) == []
    # at exactly the limit it fills
    at_limit = await paper.on_book(book(2, [], [("0.38", "1"), ("0.39", "50")]), NOW)
    assert px_qty(at_limit) == [(D("0.38"), D(1), Liquidity.MAKER)]


async def test_the_rest_of_a_taker_limit_does_not_refill_from_the_liquidity_it_already_took() -> None:
    paper = venue()
    await paper.on_book(book(0, [], [("0.40", "4")]), NOW)
    taken = await paper.submit(pm_order("r3", qty="10", limit="0.40"), NOW)
    assert px_qty(taken) == [(D("0.40"), D(4), Liquidity.TAKER)]
    # the venue's book shows the same 4 at 0.40 again (the paper fill never reached it): not new
    assert await paper.on_book(book(1, [("0.30", "1")], [("0.40", "4")]), NOW) == []
    grown = await paper.on_book(book(2, [("0.30", "1")], [("0.40", "9")]), NOW)
    assert px_qty(grown) == [(D("0.40"), D(5), Liquidity.MAKER)]


async def test_a_trade_at_or_through_a_resting_limit_fills_it_for_the_traded_size_oldest_first() -> None:
    paper = venue()
    await paper.on_book(book(0, [], [("0.40", "4")]), NOW)
    await paper.submit(pm_order("new", qty="3", limit="0.38", at=1), NOW)
    await paper.submit(pm_order("old", qty="3", limit="0.38"), NOW)
    await paper.on_book(book(1, [], [("0.40", "4")]), NOW)  # "new" arrives
    assert await paper.on_trade(trade(2, "0.39", "50"), NOW) == []  # above the bids
    events = await paper.on_trade(trade(3, "0.38", "4"), NOW)
    assert [(f.client_order_id, f.last_qty, f.last_px, f.liquidity) for f in fills(events)] == [
        ("old", D(3), D("0.38"), Liquidity.MAKER), ("new", D(1), D("0.38"), Liquidity.MAKER)]


async def test_a_quote_is_a_one_level_book() -> None:
    paper = venue()
    await paper.on_quote(quote(0, "0.35", "0.40", ask_size="4"), NOW)
    events = await paper.submit(pm_order("q1", qty="6", limit="0.40", tif=TimeInForce.IOC), NOW)
    assert px_qty(events) == [(D("0.40"), D(4), Liquidity.TAKER)]


async def test_quotes_are_ignored_once_the_instrument_has_a_book_with_depth() -> None:
    paper = venue()
    await paper.on_book(book(0, [], ASKS), NOW)
    await paper.on_quote(quote(1, "0.35", "0.40", ask_size="1"), NOW)  # the top of the same book
    events = await paper.submit(pm_order("q2", qty="5", at=1), NOW)
    assert sum(f.last_qty for f in fills(events)) == D(5)  # the 4 at 0.40 still there, then 0.42


async def test_a_delta_changes_one_level() -> None:
    paper = venue()
    await paper.on_book(book(0, [], [("0.40", "4")]), NOW)
    await paper.submit(pm_order("d1", qty="10", limit="0.39"), NOW)
    delta = BookDelta(id="delta-1", ts_event=T + MS, ts_init=T + MS, instrument_id=YES, side=Side.SELL,
                      price=D("0.39"), size=D("6"))
    assert px_qty(await paper.on_book(delta, NOW)) == [(D("0.39"), D(6), Liquidity.MAKER)]


# --- arrival, post-only, expiry, fees -----------------------------------------------------------------------------


async def test_with_latency_an_order_meets_the_first_book_at_or_after_its_arrival() -> None:
    paper = venue(latency_ms=5)
    await paper.on_book(book(0, [], [("0.40", "4")]), NOW)
    assert fills(await paper.submit(pm_order("lat", qty="4"), NOW)) == []  # arrives at T + 5 ms
    assert await paper.on_book(book(4, [], [("0.41", "4")]), NOW) == []
    events = await paper.on_book(book(5, [], [("0.42", "4")]), NOW)
    assert px_qty(events) == [(D("0.42"), D(4), Liquidity.TAKER)]
    assert fills(events)[0].ts_event == T + 5 * MS


async def test_an_order_before_any_book_waits_for_the_first_one() -> None:
    paper = venue()
    assert [type(e) for e in await paper.submit(pm_order("w", qty="2"), NOW)] == [OrderAccepted]
    assert px_qty(await paper.on_book(book(0, [], [("0.40", "4")]), NOW)) == [(D("0.40"), D(2), Liquidity.TAKER)]


async def test_a_post_only_order_crossing_on_arrival_is_rejected_and_one_at_the_bid_rests() -> None:
    paper = venue()
    await paper.on_book(book(0, [("0.35", "5")], [("0.40", "4")]), NOW)
    crossing = await paper.submit(pm_order("po1", limit="0.40", post_only=True), NOW)
    assert [(type(e), getattr(e, "reason", "")) for e in crossing] == [(OrderRejected, "post-only would cross")]
    resting = await paper.submit(pm_order("po2", limit="0.39", post_only=True), NOW)
    assert [type(e) for e in resting] == [OrderAccepted] and paper.open_orders() == ["po2"]


async def test_a_gtd_order_expires_on_the_first_book_at_its_expiry() -> None:
    paper = venue()
    await paper.on_book(book(0, [], [("0.40", "4")]), NOW)
    await paper.submit(pm_order("g", limit="0.30", tif=TimeInForce.GTD, expire_time_ns=T + 3 * MS), NOW)
    assert await paper.on_book(book(2, [], [("0.40", "5")]), NOW) == []
    (expired,) = await paper.on_book(book(3, [], [("0.30", "5")]), NOW)  # expires before matching
    assert isinstance(expired, OrderExpired) and expired.ts_event == T + 3 * MS


async def test_binary_instruments_pay_the_venue_fee_schedule() -> None:
    paper = PaperVenue("KALSHI", PaperConfig(fee_bps=10.0))
    iid = "KXTEST-YES.KALSHI"
    paper.set_instruments([InstrumentSpec(id=iid, kind="binary", market_id="KXTEST", price_tick=D("0.01"))])
    snap = msgspec.structs.replace(book(0, [], [("0.40", "20")]), instrument_id=iid)
    await paper.on_book(snap, NOW)
    (fill,) = fills(await paper.submit(pm_order("k", qty="20", instrument_id=iid), NOW))
    assert fill.fee == FeeSchedule.for_venue("KALSHI").fee(D("0.40"), D(20), maker=False) == D("0.34")


async def test_a_buy_stop_triggers_when_the_best_ask_reaches_its_trigger_and_takes_like_a_market_order() -> None:
    paper = venue()
    await paper.on_book(book(0, [], [("0.40", "4")]), NOW)
    await paper.submit(pm_order("st", qty="3", trigger_price=D("0.45"), order_type=OrderType.STOP_MARKET), NOW)
    assert await paper.on_book(book(1, [], [("0.44", "4")]), NOW) == []
    events = await paper.on_book(book(2, [], [("0.45", "2"), ("0.47", "9")]), NOW)
    assert px_qty(events) == [(D("0.45"), D(2), Liquidity.TAKER), (D("0.47"), D(1), Liquidity.TAKER)]


async def test_a_day_order_expires_at_the_end_of_the_utc_day_of_its_arrival_book() -> None:
    paper = venue()
    await paper.on_book(book(0, [], [("0.40", "4")]), NOW)
    await paper.submit(pm_order("day", limit="0.30", tif=TimeInForce.DAY), NOW)
    midnight = (T // DAY + 1) * DAY
    assert await paper.on_book(book(1, [], [("0.40", "5")], ts=midnight - 1), NOW) == []
    (expired,) = await paper.on_book(book(2, [], [("0.30", "5")], ts=midnight), NOW)
    assert isinstance(expired, OrderExpired) and expired.ts_event == midnight


# --- bars win, idempotence, restart ------------------------------------------------------------------------------


async def test_an_instrument_with_bars_ignores_its_books() -> None:
    paper = venue()
    bar_of_yes = msgspec.structs.replace(bar(0, "0.5", high="0.6", low="0.4"), instrument_id=YES, ts_event=T)
    await paper.on_bar(bar_of_yes, NOW)
    assert not paper.trades_on_book(YES)
    await paper.on_book(book(1, [], [("0.40", "4")]), NOW)
    assert fills(await paper.submit(pm_order("b", qty="2", at=1), NOW)) == []  # waits for a bar


async def test_a_repeated_or_older_book_changes_nothing() -> None:
    paper = venue()
    await paper.on_book(book(1, [], [("0.40", "4")]), NOW)
    await paper.submit(pm_order("x", qty="10", limit="0.38"), NOW)
    crossing = book(2, [], [("0.37", "3")])
    assert len(fills(await paper.on_book(crossing, NOW))) == 1
    assert await paper.on_book(crossing, NOW) == []
    assert await paper.on_book(book(0, [], [("0.30", "9")]), NOW) == []  # older than the book


async def test_a_restored_venue_continues_with_the_same_book_and_fills() -> None:
    first, second = venue(), venue()
    await first.on_book(book(0, [], [("0.40", "4"), ("0.42", "5")]), NOW)
    taken = await first.submit(pm_order("a", qty="3", tif=TimeInForce.IOC), NOW)
    await first.submit(pm_order("r", qty="10", limit="0.38"), NOW)
    second.restore_state(first.export_state())
    assert second.open_orders() == ["r"]
    # the same late order on both: the 1 left at 0.40 (after "a" took 3), then 0.42
    late = pm_order("late", qty="3", tif=TimeInForce.IOC)
    assert px_qty(await second.submit(late, NOW)) == px_qty(await first.submit(late, NOW)) == [
        (D("0.40"), D(1), Liquidity.TAKER), (D("0.42"), D(2), Liquidity.TAKER)]
    nxt = book(1, [], [("0.37", "2"), ("0.40", "4")])
    assert px_qty(await second.on_book(nxt, NOW)) == px_qty(await first.on_book(nxt, NOW)) == [
        (D("0.38"), D(2), Liquidity.MAKER)]
    assert [f.trade_id for f in fills(taken)] == [fills(taken)[0].trade_id]
