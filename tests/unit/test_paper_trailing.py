"""Paper venue brackets: trailing stops and time stops, with the vectorized backtester's rules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from tests.unit.test_paper_brackets import exit_id, summary
from tests.unit.test_paper_venue import INSTRUMENT, MINUTE, NOW, T0, bar, feed, fills, order, venue
from tradewire_common.schemas import OrderEvent, Side, SubmitOrder
from tradewire_execution.paper import PaperVenue
from tradewire_execution.paper_brackets import is_exit_order
from tradewire_execution.venue import CAP_BRACKET

D = Decimal


def exits_order(coid: str = "tw-1", *, trailing: str | None = None, time_stop_s: int | None = None,
                **kwargs: Any) -> SubmitOrder:
    """``order(...)`` with a trailing stop and/or a time stop attached."""
    return msgspec.structs.replace(order(coid, **kwargs), trailing_stop_pct=None if trailing is None else D(trailing),
                                   time_stop_s=time_stop_s)


async def entered(*, side: Side = Side.BUY, **kwargs: Any) -> PaperVenue:
    """A venue that saw bar 0 and a bracketed market order (signal on bar 0, filling at bar 1's open)."""
    config = {k: kwargs.pop(k) for k in list(kwargs) if k in ("fill_at", "slippage_bps", "max_volume_share")}
    v = venue(**config)
    await feed(v, bar(0, "100"))
    await v.submit(exits_order(side=side, **kwargs), NOW)
    return v


# --- trailing stops -------------------------------------------------------------------------------


async def test_a_long_trailing_stop_follows_the_highest_high_and_fires_at_the_trail() -> None:
    v = await entered(trailing="0.1")
    assert summary(await feed(v, bar(1, "100", high="110", low="95"))) == [("tw-1", 1, Side.BUY, D(2), D(100))]
    assert await feed(v, bar(2, "110", high="120", low="99.01")) == []  # stop 110 * 0.9 = 99 (bar 1's high)

    # the stop is now 120 * 0.9 = 108 (bar 2's high)
    assert summary(await feed(v, bar(3, "115", high="116", low="108"))) == [
        (exit_id("tw-1", "tr", 3), 3, Side.SELL, D(2), D(108))
    ]
    assert v.position("sma", INSTRUMENT) == 0


async def test_a_low_one_tick_above_the_trail_does_not_fire() -> None:
    v = await entered(trailing="0.1")
    await feed(v, bar(1, "100", high="120"))
    assert await feed(v, bar(2, "115", low="108.01")) == []
    assert len(fills(await feed(v, bar(3, "115", low="108")))) == 1


async def test_a_bars_own_high_does_not_raise_the_stop_its_low_is_tested_against() -> None:
    v = await entered(trailing="0.1")
    await feed(v, bar(1, "100"))  # peak 100: stop 90
    # with its own high of 130 counted the stop would be 117; only bar 1's high counts: 90
    assert await feed(v, bar(2, "120", high="130", low="110")) == []
    assert summary(await feed(v, bar(3, "120", low="117")))[0][1:] == (3, Side.SELL, D(2), D(117))


async def test_the_first_check_trails_the_entry_price() -> None:
    v = await entered(trailing="0.02")
    # the bar the entry filled on: checked after its open against 100 * 0.98, its high not yet counted
    assert summary(await feed(v, bar(1, "100", high="150", low="98"))) == [
        ("tw-1", 1, Side.BUY, D(2), D(100)),
        (exit_id("tw-1", "tr", 1), 1, Side.SELL, D(2), D(98)),
    ]


async def test_a_lower_high_never_lowers_the_trail() -> None:
    v = await entered(trailing="0.1")
    await feed(v, bar(1, "100", high="120"), bar(2, "110", high="111", low="108.5"))
    assert summary(await feed(v, bar(3, "109", low="108")))[0][4] == D(108)  # still 120 * 0.9


async def test_a_gap_through_the_trail_exits_at_the_open() -> None:
    v = await entered(trailing="0.1")
    await feed(v, bar(1, "100", high="120"))
    assert summary(await feed(v, bar(2, "101", high="102", low="100")))[0][4] == D(101)


async def test_the_trail_is_relative_to_the_entry_with_slippage_until_a_high_passes_it() -> None:
    v = await entered(trailing="0.1", slippage_bps=100.0)  # entry 100 * 1.01 = 101
    await feed(v, bar(1, "100", high="100.5"))  # 100.5 < entry: the trail stays at 101 * 0.9 = 90.9
    (exit_fill,) = fills(await feed(v, bar(2, "95", low="90.9")))
    assert exit_fill.last_px == D("90.9") * D("0.99")  # slippage against the seller


async def test_a_short_trailing_stop_follows_the_lowest_low() -> None:
    v = await entered(side=Side.SELL, trailing="0.1")
    await feed(v, bar(1, "100", low="80", high="105"))  # peak 80: stop 88
    assert await feed(v, bar(2, "85", high="87.99", low="82")) == []
    assert summary(await feed(v, bar(3, "86", high="88"))) == [
        (exit_id("tw-1", "tr", 3), 3, Side.BUY, D(2), D(88))
    ]


async def test_a_short_gap_up_through_the_trail_exits_at_the_open() -> None:
    v = await entered(side=Side.SELL, trailing="0.1")
    await feed(v, bar(1, "100", low="80"))
    assert summary(await feed(v, bar(2, "95", low="94")))[0][4] == D(95)


async def test_with_a_stop_loss_too_the_tighter_stop_fires_and_names_itself() -> None:
    tight_trail = await entered(trailing="0.05", stop_loss="0.1")  # trail 95 > stop loss 90
    await feed(tight_trail, bar(1, "100"))
    assert summary(await feed(tight_trail, bar(2, "99", low="95")))[0][0] == exit_id("tw-1", "tr", 2)

    tight_stop = await entered(trailing="0.1", stop_loss="0.05")  # stop loss 95 > trail 90 (until a high of 105.56)
    await feed(tight_stop, bar(1, "100"))
    assert summary(await feed(tight_stop, bar(2, "99", low="95")))[0][0] == exit_id("tw-1", "sl", 2)


async def test_a_trail_equal_to_the_stop_loss_is_reported_as_the_stop_loss() -> None:
    v = await entered(trailing="0.05", stop_loss="0.05")
    await feed(v, bar(1, "100"))
    assert summary(await feed(v, bar(2, "99", low="95")))[0][0] == exit_id("tw-1", "sl", 2)


async def test_the_trailing_stop_wins_over_the_take_profit_in_the_same_bar() -> None:
    v = await entered(trailing="0.05", take_profit="0.1")
    await feed(v, bar(1, "100"))
    assert summary(await feed(v, bar(2, "100", high="111", low="94")))[0][0::4] == (exit_id("tw-1", "tr", 2), D(95))


async def test_after_a_fill_at_the_close_the_trail_starts_from_the_next_bar() -> None:
    v = venue(fill_at="close")
    await feed(v, bar(0, "100", high="130", low="80", close="100"))
    await v.submit(exits_order(trailing="0.1"), NOW)  # fills at bar 0's close: its high and low predate it

    assert await feed(v, bar(1, "100", high="105", low="90.01")) == []  # stop 100 * 0.9
    assert summary(await feed(v, bar(2, "100", low="94.5")))[0][1:] == (2, Side.SELL, D(2), D("94.5"))  # 105 * 0.9


# --- time stops -----------------------------------------------------------------------------------


async def test_a_time_stop_exits_at_the_open_of_the_first_bar_at_the_deadline() -> None:
    v = await entered(time_stop_s=120)  # entry fill on bar 1 (T0 + 1 min): deadline T0 + 3 min
    await feed(v, bar(1, "100"))
    assert await feed(v, bar(2, "101")) == []
    assert summary(await feed(v, bar(3, "102", high="110", low="90"))) == [
        (exit_id("tw-1", "tm", 3), 3, Side.SELL, D(2), D(102))
    ]


async def test_a_time_stop_between_two_bars_fires_on_the_first_bar_after_it() -> None:
    v = await entered(time_stop_s=61)  # deadline T0 + 2 min + 1 s
    await feed(v, bar(1, "100"))
    assert await feed(v, bar(2, "101")) == []
    assert summary(await feed(v, bar(3, "102")))[0][1] == 3


async def test_a_gap_in_the_bars_fires_the_time_stop_on_the_next_bar_that_comes() -> None:
    v = await entered(time_stop_s=60)
    await feed(v, bar(1, "100"))
    assert summary(await feed(v, bar(5, "104")))[0][1:] == (5, Side.SELL, D(2), D(104))


async def test_the_time_stop_fires_at_the_open_before_a_stop_in_the_same_bar() -> None:
    v = await entered(time_stop_s=60, stop_loss="0.02")
    await feed(v, bar(1, "100"))
    assert summary(await feed(v, bar(2, "99", low="90"))) == [(exit_id("tw-1", "tm", 2), 2, Side.SELL, D(2), D(99))]


async def test_a_time_stop_after_a_fill_at_the_close_counts_from_the_signal_bars_open() -> None:
    v = venue(fill_at="close")
    await feed(v, bar(0, "100", close="100"))
    await v.submit(exits_order(time_stop_s=60), NOW)
    assert summary(await feed(v, bar(1, "103")))[0][1:] == (1, Side.SELL, D(2), D(103))


async def test_a_short_time_stop_buys_back_at_the_open() -> None:
    v = await entered(side=Side.SELL, time_stop_s=60)
    await feed(v, bar(1, "100"))
    assert summary(await feed(v, bar(2, "97")))[0][1:] == (2, Side.BUY, D(2), D(97))


async def test_a_price_exit_before_the_deadline_leaves_nothing_for_the_time_stop() -> None:
    v = await entered(time_stop_s=120, trailing="0.02")
    await feed(v, bar(1, "100"))
    assert summary(await feed(v, bar(2, "99", low="98")))[0][0] == exit_id("tw-1", "tr", 2)
    assert await feed(v, bar(3, "99")) == []


# --- ids, state, restarts -------------------------------------------------------------------------


def test_exit_order_ids_are_recognised_by_their_prefix() -> None:
    assert all(is_exit_order(exit_id("tw-1", kind, 1)) for kind in ("sl", "tp", "tr", "tm"))
    assert not any(is_exit_order(c) for c in ("tw-0123456789abcdef01234567", "tw-fl-0123456789abcdef", "tw-xx-1"))


BARS = [bar(0, "100"), bar(1, "100", high="110"), bar(2, "105", high="120", low="104"),
        bar(3, "118", high="119", low="110"), bar(4, "112", high="113", low="107"), bar(5, "106", low="100")]


async def uninterrupted_and_restored(split: int, **exits: Any) -> tuple[list[OrderEvent], list[OrderEvent], bytes]:
    kept = venue(slippage_bps=1.0, fee_per_order=D(1))
    await feed(kept, BARS[0])
    await kept.submit(exits_order(quantity="4", **exits), NOW)
    await feed(kept, *BARS[1:split])
    state = kept.export_state()
    again = venue(slippage_bps=1.0, fee_per_order=D(1))
    again.restore_state(state)
    assert again.export_state() == state
    return await feed(kept, *BARS[split:]), await feed(again, *BARS[split:]), state


async def test_a_venue_restored_mid_trail_fires_exactly_as_an_uninterrupted_one() -> None:
    kept, again, state = await uninterrupted_and_restored(3, trailing="0.1")
    assert again == kept
    (bracket,) = msgspec.json.decode(state)["brackets"]
    assert D(bracket["peak"]) == D(120)  # bars 1 and 2 were checked: the peak is saved
    # stop 120 * 0.9 = 108 hit on bar 4 (low 107), sold with 1 bp slippage
    assert [(f.client_order_id, f.last_qty, f.last_px) for f in fills(again)] == [
        (exit_id("tw-1", "tr", 4), D(4), D(108) * D("0.9999"))
    ]


async def test_a_venue_restored_before_the_deadline_fires_the_time_stop_as_an_uninterrupted_one() -> None:
    kept, again, _ = await uninterrupted_and_restored(3, time_stop_s=180)
    assert again == kept
    assert [(f.client_order_id, f.ts_event) for f in fills(again)] == [(exit_id("tw-1", "tm", 4), T0 + 4 * MINUTE)]


async def test_a_new_peak_moves_the_state_revision_and_a_bar_below_it_does_not() -> None:
    v = await entered(trailing="0.1")
    await feed(v, bar(1, "100", high="110"))
    before = v.state_revision
    assert await feed(v, bar(2, "105", high="109", low="104")) == []
    assert v.state_revision == before
    await feed(v, bar(3, "105", high="111", low="104"))
    assert v.state_revision > before


async def test_a_state_saved_before_trailing_stops_existed_still_loads() -> None:
    v = await entered(stop_loss="0.02")
    await feed(v, bar(1, "100"))
    state = msgspec.json.decode(v.export_state())
    for b in state["brackets"]:
        for key in ("trailing_stop_pct", "time_stop_s", "entry_ts", "peak"):
            del b[key]
    again = venue()
    again.restore_state(msgspec.json.encode(state))
    assert summary(await feed(again, bar(2, "99", low="98")))[0][0] == exit_id("tw-1", "sl", 2)


# --- without native brackets ----------------------------------------------------------------------


async def test_a_venue_without_native_brackets_lists_no_bracket_capability_and_fires_nothing() -> None:
    v = venue(native_brackets=False)
    assert CAP_BRACKET not in v.capabilities
    assert CAP_BRACKET in venue().capabilities
    await feed(v, bar(0, "100"))
    await v.submit(exits_order(trailing="0.01", time_stop_s=60, stop_loss="0.01", take_profit="0.01"), NOW)
    events = await feed(v, bar(1, "100"), bar(2, "100", high="150", low="50"), bar(3, "100"))
    assert summary(events) == [("tw-1", 1, Side.BUY, D(2), D(100))]
    assert msgspec.json.decode(v.export_state())["brackets"] == []
