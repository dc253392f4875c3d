"""Paper venue stop orders: STOP_MARKET and STOP_LIMIT triggers, gaps, volume cap and time in force."""

from __future__ import annotations

from decimal import Decimal

from tests.unit.test_paper_venue import MINUTE, NOW, T0, _fields, bar, feed, fills, order, venue
from tradewire_common.schemas import (
    Bar,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    Side,
    TimeInForce,
)

# --- stop market ----------------------------------------------------------------------------------


async def test_buy_stop_triggers_when_the_high_reaches_the_trigger_and_fills_at_it_with_slippage() -> None:
    v = venue(slippage_bps=10.0, fee_bps=10.0)
    await v.submit(order(trigger="105", quantity="1"), NOW)

    assert await feed(v, bar(1, "100", high="104.99", low="99")) == []
    (fill,) = fills(await feed(v, bar(2, "101", high="105", low="100", close="104")))
    assert (fill.last_px, fill.liquidity, fill.partial) == (Decimal("105.105"), Liquidity.TAKER, False)
    assert fill.fee == Decimal("0.105105")
    assert v.open_orders() == []


async def test_buy_stop_gapping_up_through_the_trigger_fills_at_the_open() -> None:
    v = venue()
    await v.submit(order(trigger="105"), NOW)

    (fill,) = fills(await feed(v, bar(1, "110", high="112", low="108")))
    assert fill.last_px == Decimal("110")


async def test_sell_stop_triggers_when_the_low_reaches_the_trigger() -> None:
    v = venue(slippage_bps=10.0)
    await v.submit(order(side=Side.SELL, trigger="95", quantity="1"), NOW)

    assert await feed(v, bar(1, "100", low="95.01")) == []
    (fill,) = fills(await feed(v, bar(2, "99", low="95", high="99")))
    assert (fill.last_px, fill.side) == (Decimal("94.905"), Side.SELL)


async def test_sell_stop_gapping_down_through_the_trigger_fills_at_the_open() -> None:
    v = venue()
    await v.submit(order(side=Side.SELL, trigger="95"), NOW)

    (fill,) = fills(await feed(v, bar(1, "90", high="91", low="89")))
    assert fill.last_px == Decimal("90")


async def test_a_stop_never_triggers_on_its_signal_bar_even_in_close_mode() -> None:
    v = venue(fill_at="close")
    await v.on_bar(bar(0, "100", high="120", close="110"), NOW)

    assert [type(e) for e in await v.submit(order(trigger="105"), NOW)] == [OrderAccepted]
    (fill,) = fills(await feed(v, bar(1, "101", high="106")))
    assert (fill.ts_event, fill.last_px) == (T0 + MINUTE, Decimal("105"))


async def test_a_stop_pays_sqrt_impact_like_a_market_order() -> None:
    v = venue(slippage_model="sqrt_impact", impact_coefficient=0.1)
    await v.submit(order(trigger="100", quantity="4"), NOW)

    (fill,) = fills(await feed(v, bar(1, "99", high="101", volume="100")))
    assert fill.last_px == Decimal("102")  # 100 * (1 + 0.1 * sqrt(4 / 100))


async def test_a_capped_stop_fills_its_remainder_at_the_later_opens() -> None:
    v = venue(max_volume_share=0.5)
    await v.submit(order(trigger="105", quantity="3"), NOW)

    events = await feed(v, bar(1, "100", high="106", volume="2"), bar(2, "103", high="103", low="102", volume="4"))
    got = [(f.last_qty, f.last_px, f.leaves_qty, f.liquidity) for f in fills(events)]
    assert got == [
        (Decimal("1"), Decimal("105"), Decimal("2"), Liquidity.TAKER),
        (Decimal("2"), Decimal("103"), Decimal("0"), Liquidity.TAKER),  # triggered: no new trigger needed
    ]


async def test_a_stop_waits_for_the_bar_after_its_arrival_with_latency() -> None:
    v = venue(latency_ms=1)
    await v.submit(order(trigger="105"), NOW)

    events = await feed(v, bar(0, "100"), bar(1, "100", high="110"), bar(2, "100", high="105"))
    (fill,) = fills(events)
    assert fill.ts_event == T0 + 2 * MINUTE


# --- stop limit -----------------------------------------------------------------------------------


async def test_buy_stop_limit_fills_at_the_trigger_on_its_trigger_bar_without_slippage() -> None:
    v = venue(slippage_bps=50.0, fee_bps=10.0, maker_fee_bps=1.0)
    await v.submit(order(trigger="105", limit="106", quantity="1"), NOW)

    (fill,) = fills(await feed(v, bar(1, "100", high="107")))
    assert (fill.last_px, fill.liquidity, fill.fee) == (Decimal("105"), Liquidity.TAKER, Decimal("0.105"))


async def test_buy_stop_limit_fills_on_the_trigger_bar_when_the_gap_stops_exactly_at_the_limit() -> None:
    v = venue()
    await v.submit(order(trigger="105", limit="106"), NOW)

    (fill,) = fills(await feed(v, bar(1, "106", high="107", low="106")))
    assert (fill.last_px, fill.liquidity) == (Decimal("106"), Liquidity.TAKER)


async def test_buy_stop_limit_gapping_past_its_limit_does_not_fill_on_the_trigger_bar_then_rests() -> None:
    v = venue(fee_bps=10.0, maker_fee_bps=2.0)
    await v.submit(order(trigger="105", limit="106", quantity="1"), NOW)

    assert await feed(v, bar(1, "106.5", high="108", low="106.01")) == []  # triggered, never at 106
    assert v.open_orders() == ["tw-1"]
    assert await feed(v, bar(2, "107", high="107", low="106.01")) == []
    (fill,) = fills(await feed(v, bar(3, "107", high="107", low="105")))
    assert (fill.last_px, fill.liquidity, fill.fee) == (Decimal("106"), Liquidity.MAKER, Decimal("0.0212"))


async def test_sell_stop_limit_fills_at_the_trigger_on_its_trigger_bar() -> None:
    v = venue(slippage_bps=50.0)
    await v.submit(order(side=Side.SELL, trigger="95", limit="94"), NOW)

    assert await feed(v, bar(1, "96", low="95.01")) == []
    (fill,) = fills(await feed(v, bar(2, "96", low="90")))
    assert (fill.last_px, fill.liquidity) == (Decimal("95"), Liquidity.TAKER)


async def test_sell_stop_limit_gapping_below_its_limit_rests_as_a_limit() -> None:
    v = venue()
    await v.submit(order(side=Side.SELL, trigger="95", limit="94"), NOW)

    assert await feed(v, bar(1, "93", high="93.99", low="90")) == []
    (fill,) = fills(await feed(v, bar(2, "93", high="94.5", low="92")))
    assert (fill.last_px, fill.liquidity) == (Decimal("94"), Liquidity.MAKER)


async def test_a_triggered_stop_limit_stays_triggered_across_a_restore() -> None:
    v = venue()
    await v.submit(order(trigger="105", limit="106"), NOW)
    assert await feed(v, bar(1, "107", high="108", low="106.5")) == []

    again = venue()
    again.restore_state(v.export_state())
    # this bar does not reach the trigger; a triggered order rests as a limit at 106 and takes the open
    (fill,) = fills(await feed(again, bar(2, "104", high="104.5", low="103")))
    assert (fill.last_px, fill.liquidity) == (Decimal("104"), Liquidity.TAKER)


# --- time in force --------------------------------------------------------------------------------


async def test_an_ioc_stop_waits_for_its_trigger_then_cancels_what_that_bar_did_not_fill() -> None:
    v = venue(max_volume_share=0.5)
    await v.submit(order(trigger="105", quantity="3", tif=TimeInForce.IOC), NOW)

    assert await feed(v, bar(1, "100", high="104")) == []
    fill, canceled = await feed(v, bar(2, "100", high="106", volume="2"))
    assert isinstance(fill, OrderFilled) and fill.last_qty == Decimal("1")
    assert isinstance(canceled, OrderCanceled) and canceled.filled_qty == Decimal("1")
    assert v.open_orders() == []


async def test_an_ioc_stop_limit_not_fillable_on_its_trigger_bar_is_canceled() -> None:
    v = venue()
    await v.submit(order(trigger="105", limit="106", tif=TimeInForce.IOC), NOW)

    (canceled,) = await feed(v, bar(1, "107", high="108", low="106.5"))
    assert isinstance(canceled, OrderCanceled)
    assert canceled.filled_qty == 0


async def test_a_fok_stop_is_canceled_when_the_trigger_bar_cannot_fill_it_all() -> None:
    v = venue(max_volume_share=0.5)
    await v.submit(order(trigger="105", quantity="3", tif=TimeInForce.FOK), NOW)

    assert await feed(v, bar(1, "100", high="104", volume="100")) == []
    (canceled,) = await feed(v, bar(2, "100", high="106", volume="2"))
    assert isinstance(canceled, OrderCanceled)
    assert canceled.filled_qty == 0


async def test_an_untriggered_day_stop_expires_at_the_end_of_its_first_day() -> None:
    v = venue()
    day = 86_400 * 1_000_000_000
    start = (T0 // day) * day + day - 2 * MINUTE
    await v.submit(order(trigger="200", tif=TimeInForce.DAY), NOW)

    first = bar(0, "100")
    assert await feed(v, Bar(**{**_fields(first), "ts_event": start, "seq": 1})) == []
    (expired,) = await feed(v, Bar(**{**_fields(first), "ts_event": start + 2 * MINUTE, "high": Decimal(300),
                                      "seq": 2}))
    assert isinstance(expired, OrderExpired)


def test_the_paper_venue_declares_stop_stop_limit_and_bracket() -> None:
    assert {"stop", "stop_limit", "bracket"} <= venue().capabilities
