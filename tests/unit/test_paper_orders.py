"""The paper venue's post-only and GTD orders, amends (ReplaceOrder) and binary (prediction-market) instruments."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from tests.unit.test_paper_venue import INSTRUMENT, MINUTE, NOW, T0, VENUE, bar, order
from tradewire_common.config import InstrumentSpec, PaperConfig
from tradewire_common.ids import derive_id
from tradewire_common.prediction import FeeSchedule
from tradewire_common.schemas import (
    Liquidity,
    MarketResolved,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OutcomePayout,
    ReplaceOrder,
    Side,
    SubmitOrder,
    TimeInForce,
)
from tradewire_execution.paper import PaperVenue

D = Decimal


def venue(**kw: Any) -> PaperVenue:
    kw.setdefault("fill_at", "next_open")
    kw.setdefault("fee_bps", 10.0)
    return PaperVenue(VENUE, PaperConfig(**kw))


def post_only(coid: str, limit: str, side: Side = Side.BUY, **kw: Any) -> SubmitOrder:
    return msgspec.structs.replace(order(coid, limit=limit, side=side, **kw), post_only=True)


def gtd(coid: str, limit: str, expire_ns: int) -> SubmitOrder:
    return msgspec.structs.replace(order(coid, limit=limit), time_in_force=TimeInForce.GTD, expire_time_ns=expire_ns)


def replace(old: str, new: str, *, qty: str | None = None, limit: str | None = None, trigger: str | None = None,
            ts: int = T0 + MINUTE) -> ReplaceOrder:
    return ReplaceOrder(id=derive_id("replace", old, new), ts_event=ts, ts_init=ts, strategy_id="sma",
                        instrument_id=INSTRUMENT, client_order_id=old, new_client_order_id=new,
                        quantity=None if qty is None else D(qty), limit_price=None if limit is None else D(limit),
                        trigger_price=None if trigger is None else D(trigger))


def of(events: list[OrderEvent], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


# --- post-only ------------------------------------------------------------------------------------------------


async def test_a_post_only_buy_whose_arrival_bar_opens_below_its_limit_is_rejected_as_crossing() -> None:
    paper = venue()
    assert await paper.submit(post_only("tw-po1", "100"), NOW) == []  # decided on arrival
    events = await paper.on_bar(bar(1, "99", high="101", low="98"), NOW)
    (rejected,) = events
    assert isinstance(rejected, OrderRejected) and rejected.reason == "post-only would cross"
    assert paper.open_orders() == []


async def test_a_post_only_order_that_does_not_cross_rests_and_fills_as_maker_at_its_limit() -> None:
    paper = venue(maker_fee_bps=2.0)
    await paper.submit(post_only("tw-po2", "100"), NOW)
    arrival = await paper.on_bar(bar(1, "101", high="102", low="100.5"), NOW)
    assert [type(e) for e in arrival] == [OrderAccepted]
    assert arrival[0].ts_event == T0 + MINUTE
    # a later bar gapping down through the limit: the resting maker order fills at its own price
    (fill,) = await paper.on_bar(bar(2, "98", high="99", low="97"), NOW)
    assert isinstance(fill, OrderFilled)
    assert (fill.last_px, fill.liquidity) == (D("100"), Liquidity.MAKER)
    assert fill.fee == D(2) * D(100) * D("0.0002")


async def test_a_late_post_only_order_is_judged_on_the_stored_arrival_bar() -> None:
    paper = venue()
    await paper.on_bar(bar(1, "99", high="101", low="98"), NOW)  # stored before the order arrives
    events = await paper.submit(post_only("tw-po3", "98.5", side=Side.SELL), NOW)  # 99 open > 98.5: crosses
    assert [type(e) for e in events] == [OrderRejected]


async def test_a_plain_limit_order_that_crosses_still_fills_at_once_as_taker() -> None:
    paper = venue()
    await paper.submit(order("tw-lim", limit="100"), NOW)
    accepted_and_fill = await paper.on_bar(bar(1, "99", high="101", low="98"), NOW)
    (fill,) = of(accepted_and_fill, OrderFilled)
    assert (fill.last_px, fill.liquidity) == (D("99"), Liquidity.TAKER)


# --- GTD ----------------------------------------------------------------------------------------------------


async def test_a_gtd_order_expires_at_its_expire_time_in_event_time() -> None:
    paper = venue()
    expiry = T0 + 3 * MINUTE
    await paper.submit(gtd("tw-gtd", "90", expiry), NOW)
    assert await paper.on_bar(bar(1, "100"), NOW) == []
    assert await paper.on_bar(bar(2, "100"), NOW) == []
    (expired,) = await paper.on_bar(bar(3, "80"), NOW)  # would fill, but it expired at this bar's open
    assert isinstance(expired, OrderExpired)
    assert (expired.ts_event, expired.reason) == (expiry, "GTD order expired")
    assert paper.open_orders() == []


async def test_a_gtd_order_fills_normally_before_its_expiry_and_survives_a_restart() -> None:
    paper = venue()
    await paper.submit(gtd("tw-gtd2", "90", T0 + 5 * MINUTE), NOW)
    await paper.on_bar(bar(1, "100"), NOW)
    restored = venue()
    restored.restore_state(paper.export_state())
    (fill,) = await restored.on_bar(bar(2, "95", low="89"), NOW)
    assert isinstance(fill, OrderFilled) and fill.last_px == D("90")


# --- replace (amend in place) -------------------------------------------------------------------------------------


async def test_an_amend_changes_price_and_quantity_in_place_and_keeps_the_filled_quantity() -> None:
    paper = venue(max_volume_share=0.001)  # 1 of volume 1000 fills per bar
    await paper.submit(order("tw-a", limit="100", quantity="3"), NOW)
    (part,) = await paper.on_bar(bar(1, "100", low="99"), NOW)
    assert part.last_qty == D(1) and part.leaves_qty == D(2)
    (replaced,) = await paper.replace(replace("tw-a", "tw-b", qty="5", limit="95"), NOW)
    assert isinstance(replaced, OrderReplaced)
    assert (replaced.client_order_id, replaced.new_client_order_id) == ("tw-a", "tw-b")
    assert (replaced.quantity, replaced.limit_price, replaced.filled_qty) == (D(5), D("95"), D(1))
    assert replaced.venue_order_id == part.venue_order_id
    assert paper.open_orders() == ["tw-b"]
    assert await paper.on_bar(bar(2, "99", low="96"), NOW) == []  # the new limit applies from the next bar
    restored = venue(max_volume_share=0.001)
    restored.restore_state(paper.export_state())
    (fill,) = await restored.on_bar(bar(3, "96", low="94"), NOW)
    assert (fill.client_order_id, fill.last_px, fill.leaves_qty) == ("tw-b", D("95"), D(3))
    assert fill.venue_order_id == part.venue_order_id


async def test_an_amend_below_the_filled_quantity_is_rejected_on_the_new_id_and_the_order_keeps_working() -> None:
    paper = venue(max_volume_share=0.002)
    await paper.submit(order("tw-c", limit="100", quantity="4"), NOW)
    await paper.on_bar(bar(1, "100", low="99"), NOW)  # 2 filled
    (rejected,) = await paper.replace(replace("tw-c", "tw-d", qty="2"), NOW)
    assert isinstance(rejected, OrderRejected) and rejected.client_order_id == "tw-d"
    assert "not above the filled quantity 2" in rejected.reason
    assert paper.open_orders() == ["tw-c"]
    assert await paper.replace(replace("tw-c", "tw-d", qty="9"), NOW) == []  # the new id was used: a duplicate


async def test_replacing_an_unknown_order_or_the_limit_of_a_market_order_is_rejected() -> None:
    paper = venue()
    (unknown,) = await paper.replace(replace("tw-nope", "tw-n2", qty="1"), NOW)
    assert isinstance(unknown, OrderRejected) and "not working" in unknown.reason
    await paper.submit(order("tw-m", quantity="1"), NOW)
    (market,) = await paper.replace(replace("tw-m", "tw-m2", limit="10"), NOW)
    assert isinstance(market, OrderRejected) and "no limit price" in market.reason


async def test_an_amended_stop_keeps_its_bracket_under_the_new_id() -> None:
    paper = venue()
    entry = msgspec.structs.replace(order("tw-s", trigger="105"), stop_loss_pct=D("0.05"))
    await paper.submit(entry, NOW)
    await paper.replace(replace("tw-s", "tw-s2", trigger="103"), NOW)
    (fill,) = await paper.on_bar(bar(1, "100", high="104"), NOW)
    assert (fill.client_order_id, fill.last_px) == ("tw-s2", D("103"))
    exit_events = await paper.on_bar(bar(2, "97", low="90"), NOW)  # stop at 103 * 0.95 = 97.85
    (exit_fill,) = of(exit_events, OrderFilled)
    assert exit_fill.client_order_id.startswith("tw-sl-") and exit_fill.side is Side.SELL
    assert exit_fill.client_order_id == "tw-sl-" + derive_id("exit", "tw-s2", "sl", T0 + 2 * MINUTE)[:24]


# --- binary instruments ----------------------------------------------------------------------------------------------


KALSHI = "KXTEST-25-YES.KALSHI"


def kalshi_venue(**kw: Any) -> PaperVenue:
    kw.setdefault("fill_at", "next_open")
    paper = PaperVenue("KALSHI", PaperConfig(fee_bps=50.0, **kw))
    paper.set_instruments([InstrumentSpec(id=KALSHI, kind="binary", market_id="KXTEST-25", price_tick=D("0.01"),
                                          complement="KXTEST-25-NO.KALSHI"),
                           InstrumentSpec(id="KXTEST-25-NO.KALSHI", kind="binary", market_id="KXTEST-25",
                                          price_tick=D("0.01"))])
    return paper


async def test_a_binary_fill_pays_the_venue_fee_schedule_instead_of_fee_bps() -> None:
    paper = kalshi_venue()
    await paper.submit(order("tw-k1", instrument=KALSHI, quantity="100", limit="0.40"), NOW)
    events = await paper.on_bar(bar(1, "0.42", low="0.38", instrument=KALSHI), NOW)
    (fill,) = of(events, OrderFilled)
    assert (fill.last_px, fill.liquidity) == (D("0.40"), Liquidity.MAKER)
    assert fill.fee == FeeSchedule.for_venue("KALSHI").fee(D("0.40"), D(100), maker=True) == D(0)
    await paper.submit(order("tw-k2", instrument=KALSHI, quantity="100", signal_bar=1), NOW)
    (taker,) = of(await paper.on_bar(bar(2, "0.50", instrument=KALSHI), NOW), OrderFilled)
    assert taker.fee == D("1.75")  # ceil(0.07 * 100 * 0.5 * 0.5) to the cent


async def test_binary_prices_stay_within_zero_and_one() -> None:
    paper = kalshi_venue(slippage_bps=500.0)
    (rejected,) = await paper.submit(order("tw-k3", instrument=KALSHI, limit="1.2"), NOW)
    assert isinstance(rejected, OrderRejected) and "within (0, 1)" in rejected.reason
    await paper.submit(order("tw-k4", instrument=KALSHI, quantity="10"), NOW)
    (fill,) = of(await paper.on_bar(bar(1, "0.99", instrument=KALSHI), NOW), OrderFilled)
    assert fill.last_px == D("0.99")  # 0.99 * 1.05 would be above 1: kept one tick inside


async def test_a_resolution_cancels_the_open_orders_of_the_market_and_no_others() -> None:
    paper = kalshi_venue()
    await paper.submit(order("tw-y", instrument=KALSHI, limit="0.30"), NOW)
    await paper.submit(order("tw-n", instrument="KXTEST-25-NO.KALSHI", limit="0.30"), NOW)
    await paper.submit(order("tw-o", instrument="OTHER-YES.KALSHI", limit="0.30"), NOW)
    resolved = MarketResolved(id=derive_id("res", 1), ts_event=T0 + 5 * MINUTE, ts_init=NOW, venue="KALSHI",
                              market_id="KXTEST-25",
                              payouts=(OutcomePayout(instrument_id=KALSHI, payout=D(1)),), resolution="YES")
    events = paper.resolve(resolved, NOW)
    assert sorted((e.client_order_id, e.reason) for e in of(events, OrderCanceled)) == [
        ("tw-n", "market resolved"), ("tw-y", "market resolved")]
    assert paper.open_orders() == ["tw-o"]
    assert paper.resolve(resolved, NOW) == []  # a repeat cancels nothing more
