"""Paper venue brackets: attached stop loss / take profit emulated with the vectorized backtester's rules."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import msgspec

from tests.unit.test_paper_venue import INSTRUMENT, MINUTE, NOW, T0, bar, feed, fills, order, venue
from tradewire_common.ids import ClientOrderId, derive_id
from tradewire_common.schemas import Liquidity, OrderAccepted, OrderCanceled, OrderEvent, OrderFilled, Side
from tradewire_execution.paper import PaperVenue
from tradewire_ledger.store_orders import FILLED, updated_order


def exit_id(parent: str, kind: str, bar_index: int) -> str:
    return f"tw-{kind}-" + derive_id("exit", parent, kind, T0 + bar_index * MINUTE)[:24]


async def entered(*, side: Side = Side.BUY, qty: str = "2", **config: Any) -> PaperVenue:
    """A venue with bar 0 seen and a bracketed order sent on it (``stop_loss``/``take_profit`` in config)."""
    brackets = {k: config.pop(k) for k in ("stop_loss", "take_profit") if k in config}
    v = venue(**config)
    await feed(v, bar(0, "100"))
    await v.submit(order(side=side, quantity=qty, **brackets), NOW)
    return v


def summary(events: list[OrderEvent]) -> list[tuple[str, int, Side, Decimal, Decimal]]:
    """``(client order id, bar index, side, qty, price)`` of each fill."""
    return [(f.client_order_id, (f.ts_event - T0) // MINUTE, f.side, f.last_qty, f.last_px) for f in fills(events)]


# --- levels and triggers --------------------------------------------------------------------------


async def test_a_long_stop_loss_fires_when_the_low_reaches_the_stop_and_exits_at_it() -> None:
    v = await entered(stop_loss="0.02")

    assert summary(await feed(v, bar(1, "100", low="98.01"))) == [("tw-1", 1, Side.BUY, Decimal(2), Decimal(100))]
    assert v.position("sma", INSTRUMENT) == 2
    events = await feed(v, bar(2, "99", low="98"))
    assert summary(events) == [(exit_id("tw-1", "sl", 2), 2, Side.SELL, Decimal(2), Decimal(98))]
    assert v.position("sma", INSTRUMENT) == 0
    assert v.open_orders() == []


async def test_a_long_take_profit_fires_when_the_high_reaches_the_target() -> None:
    v = await entered(take_profit="0.05")

    assert len(fills(await feed(v, bar(1, "100", high="104.99")))) == 1
    assert summary(await feed(v, bar(2, "101", high="105"))) == [
        (exit_id("tw-1", "tp", 2), 2, Side.SELL, Decimal(2), Decimal(105))
    ]


async def test_gaps_through_a_level_exit_at_the_open() -> None:
    stop = await entered(stop_loss="0.02", take_profit="0.05")
    target = await entered(stop_loss="0.02", take_profit="0.05")
    await feed(stop, bar(1, "100"))
    await feed(target, bar(1, "100"))

    assert summary(await feed(stop, bar(2, "95", high="99")))[0][4] == Decimal(95)
    assert summary(await feed(target, bar(2, "107", low="101")))[0][4] == Decimal(107)


async def test_the_stop_wins_when_both_levels_are_in_the_bars_range() -> None:
    v = await entered(stop_loss="0.02", take_profit="0.02")
    await feed(v, bar(1, "100"))

    assert summary(await feed(v, bar(2, "100", high="103", low="97"))) == [
        (exit_id("tw-1", "sl", 2), 2, Side.SELL, Decimal(2), Decimal(98))
    ]


async def test_a_short_bracket_mirrors_the_long_one() -> None:
    v = await entered(side=Side.SELL, stop_loss="0.02", take_profit="0.05")
    await feed(v, bar(1, "100"))
    assert v.position("sma", INSTRUMENT) == -2

    assert await feed(v, bar(2, "100", high="101.99", low="95.01")) == []
    assert summary(await feed(v, bar(3, "101", high="102", low="95"))) == [  # both in range: the stop
        (exit_id("tw-1", "sl", 3), 3, Side.BUY, Decimal(2), Decimal(102))
    ]


async def test_a_short_take_profit_exits_at_the_lower_of_open_and_target() -> None:
    v = await entered(side=Side.SELL, take_profit="0.05")
    await feed(v, bar(1, "100"))

    assert summary(await feed(v, bar(2, "94", high="96")))[0][1:] == (2, Side.BUY, Decimal(2), Decimal(94))


async def test_a_bracket_fires_on_the_same_bar_as_its_next_open_entry() -> None:
    v = await entered(stop_loss="0.02")

    assert summary(await feed(v, bar(1, "100", low="97"))) == [
        ("tw-1", 1, Side.BUY, Decimal(2), Decimal(100)),
        (exit_id("tw-1", "sl", 1), 1, Side.SELL, Decimal(2), Decimal(98)),
    ]


async def test_bracket_exits_have_no_latency() -> None:
    v = await entered(stop_loss="0.02", latency_ms=1)

    assert await feed(v, bar(1, "100", low="90")) == []  # the entry has not arrived yet
    assert summary(await feed(v, bar(2, "100", low="97"))) == [
        ("tw-1", 2, Side.BUY, Decimal(2), Decimal(100)),
        (exit_id("tw-1", "sl", 2), 2, Side.SELL, Decimal(2), Decimal(98)),
    ]


async def test_after_a_fill_at_the_close_the_bracket_is_checked_from_the_next_bar() -> None:
    v = venue(fill_at="close")
    await feed(v, bar(0, "100", low="90", close="100"))

    events = await v.submit(order(stop_loss="0.02"), NOW)
    assert summary(events) == [("tw-1", 0, Side.BUY, Decimal(2), Decimal(100))]  # bar 0's low is not checked
    assert summary(await feed(v, bar(1, "99", low="97")))[0][1:] == (1, Side.SELL, Decimal(2), Decimal(98))


async def test_levels_are_relative_to_the_fill_price_with_slippage() -> None:
    v = await entered(take_profit="0.1", slippage_bps=10.0)
    (entry,) = fills(await feed(v, bar(1, "100")))
    assert entry.last_px == Decimal("100.1")

    assert await feed(v, bar(2, "101", high="110.1")) == []
    (exit_fill,) = fills(await feed(v, bar(3, "101", high="110.11")))
    assert exit_fill.last_px == Decimal("110.11") * Decimal("0.999")  # slippage against the seller


async def test_levels_follow_the_parents_average_fill_price_so_far() -> None:
    v = await entered(stop_loss="0.02", qty="4", max_volume_share=0.5)
    await feed(v, bar(1, "100", volume="4"), bar(2, "110", low="108", volume="4"))  # 2 @ 100, 2 @ 110: avg 105

    assert await feed(v, bar(3, "104", low="102.91", volume="8")) == []
    assert summary(await feed(v, bar(4, "104", low="102.9", volume="8")))[0][3:] == (Decimal(4), Decimal("102.9"))


async def test_a_bracket_on_a_limit_entry_starts_at_its_fill() -> None:
    v = venue()
    await v.submit(order(limit="95", stop_loss="0.02"), NOW)

    assert summary(await feed(v, bar(1, "99", low="94"))) == [("tw-1", 1, Side.BUY, Decimal(2), Decimal(95))]
    assert await feed(v, bar(2, "94", low="93.11")) == []  # stop = 95 * 0.98 = 93.1
    assert summary(await feed(v, bar(3, "94", low="93.1")))[0][4] == Decimal("93.1")


# --- the exit fill --------------------------------------------------------------------------------


async def test_the_exit_is_a_taker_fill_with_a_derived_id_fee_and_per_order_fee() -> None:
    v = await entered(stop_loss="0.02", fee_bps=10.0, maker_fee_bps=0.0, fee_per_order=Decimal(1))
    await feed(v, bar(1, "100"))

    events = await feed(v, bar(2, "99", low="97"))
    assert not any(isinstance(e, OrderAccepted) for e in events)  # the ledger needs only the fills
    (fill,) = fills(events)
    coid = exit_id("tw-1", "sl", 2)
    assert re.fullmatch(r"tw-sl-[0-9a-f]{24}", fill.client_order_id) and fill.client_order_id == coid
    assert msgspec.convert(coid, ClientOrderId) == coid
    assert (fill.strategy_id, fill.instrument_id, fill.correlation_id) == ("sma", INSTRUMENT, "corr-tw-1")
    assert (fill.liquidity, fill.partial, fill.leaves_qty) == (Liquidity.TAKER, False, Decimal(0))
    assert fill.fee == Decimal("1.196")  # 2 * 98 * 0.001 + 1
    assert fill.trade_id == derive_id("trade", coid, T0 + 2 * MINUTE)[:20]
    assert fill.id == derive_id("OrderFilled", coid, fill.trade_id)
    assert fill.venue_order_id == derive_id("vo", coid)[:16]
    assert fill.ts_event == T0 + 2 * MINUTE


def test_the_ledger_records_an_exit_fill_of_an_order_it_never_saw() -> None:
    fill = OrderFilled(id=derive_id("f"), ts_event=T0, ts_init=T0, strategy_id="sma", instrument_id=INSTRUMENT,
                       client_order_id=exit_id("tw-1", "sl", 2), venue_order_id="vo", trade_id="t", side=Side.SELL,
                       last_qty=Decimal(2), last_px=Decimal(98), fee=Decimal(0), fee_currency="USD",
                       liquidity=Liquidity.TAKER, partial=False)
    row = updated_order(None, fill)
    assert (row["status"], row["side"], row["filled_qty"], row["avg_fill_px"]) == (FILLED, "SELL", "2", "98")


async def test_the_exit_pays_sqrt_impact_on_its_own_size() -> None:
    v = await entered(stop_loss="0.02", qty="4", slippage_model="sqrt_impact", impact_coefficient=0.1)
    await feed(v, bar(1, "100", volume="1e12"))  # entry impact ~ 0

    (exit_fill,) = fills(await feed(v, bar(2, "95", low="94", volume="100")))  # a gap: exits at the open
    assert exit_fill.last_px == Decimal("93.1")  # 95 * (1 - 0.1 * sqrt(4 / 100))


async def test_the_exit_closes_the_whole_position_of_its_strategy_and_instrument() -> None:
    v = venue()
    await feed(v, bar(0, "100"))
    await v.submit(order("tw-1", quantity="2", stop_loss="0.02"), NOW)
    await v.submit(order("tw-2", quantity="1"), NOW)
    await v.submit(order("tw-other", quantity="5", strategy="other"), NOW)

    events = await feed(v, bar(1, "100", low="97"))
    assert summary(events)[-1] == (exit_id("tw-1", "sl", 1), 1, Side.SELL, Decimal(3), Decimal(98))
    assert (v.position("sma", INSTRUMENT), v.position("other", INSTRUMENT)) == (Decimal(0), Decimal(5))


async def test_a_capped_exit_fills_its_remainder_at_the_later_opens() -> None:
    v = await entered(stop_loss="0.02", qty="4", max_volume_share=0.5, fee_per_order=Decimal(1))
    await feed(v, bar(1, "100", volume="8"))

    first = fills(await feed(v, bar(2, "99", low="97", volume="4")))
    second = fills(await feed(v, bar(3, "96", volume="4")))
    got = [(f.last_qty, f.last_px, f.partial, f.leaves_qty, f.fee) for f in first + second]
    assert got == [
        (Decimal(2), Decimal(98), True, Decimal(2), Decimal(1)),
        (Decimal(2), Decimal(96), False, Decimal(0), Decimal(0)),
    ]
    assert first[0].client_order_id == second[0].client_order_id
    assert v.open_orders() == []


async def test_an_exit_remainder_is_canceled_once_the_position_is_flat() -> None:
    v = await entered(stop_loss="0.02", qty="4", max_volume_share=0.5)
    await feed(v, bar(1, "100", volume="8"), bar(2, "99", low="97", volume="4"))
    await v.submit(order("tw-2", signal_bar=2, side=Side.SELL, quantity="2"), NOW)

    events = await feed(v, bar(3, "96", volume="4"))
    assert summary(events) == [("tw-2", 3, Side.SELL, Decimal(2), Decimal(96))]
    canceled = events[-1]
    assert isinstance(canceled, OrderCanceled)
    assert (canceled.client_order_id, canceled.filled_qty) == (exit_id("tw-1", "sl", 2), Decimal(2))
    assert v.position("sma", INSTRUMENT) == 0


# --- one bracket per strategy and instrument ------------------------------------------------------


async def test_a_newer_bracketed_order_replaces_the_bracket() -> None:
    v = venue()
    await feed(v, bar(0, "100"))
    await v.submit(order("tw-1", quantity="1", stop_loss="0.5"), NOW)
    await feed(v, bar(1, "100"))
    await v.submit(order("tw-2", signal_bar=1, quantity="1", stop_loss="0.01"), NOW)

    assert summary(await feed(v, bar(2, "110", low="108.91"))) == [("tw-2", 2, Side.BUY, Decimal(1), Decimal(110))]
    assert summary(await feed(v, bar(3, "109", low="108.9"))) == [
        (exit_id("tw-2", "sl", 3), 3, Side.SELL, Decimal(2), Decimal("108.9"))
    ]


async def test_an_older_bracketed_order_filling_later_keeps_the_newer_bracket() -> None:
    v = venue()
    await feed(v, bar(0, "100"))
    await v.submit(order("tw-1", quantity="1", stop_loss="0.01"), NOW)  # newer: (t0, "tw-1")
    await v.submit(order("tw-0", quantity="1", limit="95", stop_loss="0.5"), NOW)  # older: (t0, "tw-0")
    await feed(v, bar(1, "100", low="99.5"))

    events = await feed(v, bar(2, "96", low="94"))  # tw-0 fills at 95, then tw-1's stop (99) fires
    assert summary(events) == [
        ("tw-0", 2, Side.BUY, Decimal(1), Decimal(95)),
        (exit_id("tw-1", "sl", 2), 2, Side.SELL, Decimal(2), Decimal(96)),
    ]


async def test_the_bracket_is_canceled_when_the_strategy_goes_flat() -> None:
    v = await entered(stop_loss="0.02")
    await feed(v, bar(1, "100"))
    await v.submit(order("tw-2", signal_bar=1, side=Side.SELL, quantity="2"), NOW)

    assert summary(await feed(v, bar(2, "101"))) == [("tw-2", 2, Side.SELL, Decimal(2), Decimal(101))]
    await v.submit(order("tw-3", signal_bar=2, quantity="1"), NOW)
    assert summary(await feed(v, bar(3, "100", low="90"))) == [("tw-3", 3, Side.BUY, Decimal(1), Decimal(100))]
    assert v.position("sma", INSTRUMENT) == 1


async def test_a_reversal_without_a_bracket_cancels_the_old_one() -> None:
    v = await entered(stop_loss="0.02", qty="1")
    await feed(v, bar(1, "100"))
    await v.submit(order("tw-2", signal_bar=1, side=Side.SELL, quantity="2"), NOW)

    await feed(v, bar(2, "100"))
    assert await feed(v, bar(3, "100", high="103", low="97")) == []
    assert v.position("sma", INSTRUMENT) == -1


async def test_a_reversal_with_its_own_bracket_replaces_the_old_one() -> None:
    v = await entered(stop_loss="0.02", qty="1")
    await feed(v, bar(1, "100"))
    await v.submit(order("tw-2", signal_bar=1, side=Side.SELL, quantity="2", stop_loss="0.02"), NOW)

    await feed(v, bar(2, "100"))
    assert await feed(v, bar(3, "100", high="101", low="97")) == []  # the long stop (98) is gone
    assert summary(await feed(v, bar(4, "100", high="102"))) == [
        (exit_id("tw-2", "sl", 4), 4, Side.BUY, Decimal(1), Decimal(102))
    ]


async def test_a_bracket_whose_order_only_reduced_the_other_side_is_dropped() -> None:
    v = venue()
    await feed(v, bar(0, "100"))
    await v.submit(order("tw-1", quantity="2"), NOW)
    await feed(v, bar(1, "100"))
    await v.submit(order("tw-2", signal_bar=1, side=Side.SELL, quantity="1", stop_loss="0.02"), NOW)

    await feed(v, bar(2, "100"))
    assert await feed(v, bar(3, "100", high="110", low="90")) == []
    assert v.position("sma", INSTRUMENT) == 1


# --- late orders and restarts ---------------------------------------------------------------------

BARS = [bar(0, "100"), bar(1, "100", volume="4"), bar(2, "101", high="103", volume="4"),
        bar(3, "99", low="97", volume="4"), bar(4, "96", volume="4"), bar(5, "95", volume="4")]


async def test_a_late_bracketed_order_fires_on_the_stored_bars_as_in_time() -> None:
    in_time = venue(max_volume_share=0.5)
    await feed(in_time, BARS[0])
    expected = await in_time.submit(order(stop_loss="0.02"), NOW)
    expected += await feed(in_time, *BARS[1:])

    late = venue(max_volume_share=0.5)
    await feed(late, *BARS)
    assert await late.submit(order(stop_loss="0.02"), NOW) == expected
    assert [f.last_px for f in fills(expected)] == [Decimal(100), Decimal(98)]


async def uninterrupted_and_restored(split: int, **config: Any) -> tuple[list[OrderEvent], list[OrderEvent]]:
    """Events from bar ``split`` on, of one venue and of a venue restored from its state before that bar."""
    kept = venue(**config)
    await feed(kept, BARS[0])
    await kept.submit(order(quantity="4", stop_loss="0.02", take_profit="0.05"), NOW)
    await feed(kept, *BARS[1:split])
    again = venue(**config)
    again.restore_state(kept.export_state())
    assert again.export_state() == kept.export_state()
    return await feed(kept, *BARS[split:]), await feed(again, *BARS[split:])


async def test_a_restored_venue_fires_an_armed_bracket_exactly_as_an_uninterrupted_one() -> None:
    kept, again = await uninterrupted_and_restored(2, fee_per_order=Decimal(1), slippage_bps=1.0)
    assert again == kept
    # entry 100 * 1.0001 = 100.01, stop 100.01 * 0.98 = 98.0098, hit on bar 3, sold with slippage
    assert [(f.last_qty, f.last_px, f.fee) for f in fills(again)] == [
        (Decimal(4), Decimal("98.0098") * Decimal("0.9999"), Decimal(1))
    ]


async def test_a_restored_venue_continues_a_capped_exit_exactly_as_an_uninterrupted_one() -> None:
    kept, again = await uninterrupted_and_restored(4, max_volume_share=0.5, fee_per_order=Decimal(1))
    assert again == kept
    assert [(f.last_qty, f.last_px, f.fee) for f in fills(again)] == [(Decimal(2), Decimal(96), Decimal(0))]


async def test_firing_a_bracket_moves_the_state_revision() -> None:
    v = await entered(stop_loss="0.02")
    await feed(v, bar(1, "100"))
    before = v.state_revision
    assert await feed(v, bar(2, "100", low="99")) == []
    assert v.state_revision == before  # a bar that fires nothing changes nothing to save
    await feed(v, bar(3, "99", low="97"))
    assert v.state_revision > before
