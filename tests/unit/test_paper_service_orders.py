"""The execution service with paper venues: replacements, per-venue native brackets (and the trailing/time parts a
venue cannot hold), and prediction-market resolutions."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tests.unit.test_exit_emulator import PAPER, PBTC, Run, exit_id
from tests.unit.test_exit_emulator import order as market_order
from tests.unit.test_paper_venue import MINUTE, T0, bar, order
from tradewire_common import subjects
from tradewire_common.config import Config, ExecutionConfig, InstrumentSpec, PaperConfig, RiskConfig, VenueConfig
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    MarketResolved,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OutcomePayout,
    ReplaceOrder,
)
from tradewire_execution.paper import PaperVenue
from tradewire_execution.service import emulated_exits
from tradewire_execution.venue import CAP_BRACKET_TIME, CAP_BRACKET_TRAILING

D = Decimal


def config(*, native: bool = True, venue_native: bool = True, instruments: tuple[InstrumentSpec, ...] = (),
           venue: str = PAPER) -> Config:
    return Config(execution=ExecutionConfig(venues=(VenueConfig(name=venue, native_brackets=venue_native),),
                                            paper=PaperConfig(fee_bps=0.0, native_brackets=native)),
                  risk=RiskConfig(instruments=instruments))


def replace(old: str, new: str, **kw: D) -> ReplaceOrder:
    return ReplaceOrder(id=derive_id("r", old, new), ts_event=T0 + MINUTE, ts_init=T0 + MINUTE, strategy_id="sma",
                        instrument_id=PBTC, client_order_id=old, new_client_order_id=new, **kw)


async def test_a_replace_order_command_amends_the_paper_order_and_the_state_is_saved() -> None:
    run = Run()
    await run.listen()
    service = await run.start(config())
    await run.send(bar(0, "100"), order("tw-1", limit="90", quantity="2"))
    await run.probe.publish(subjects.order_command(PAPER), replace("tw-1", "tw-2", quantity=D(3), limit_price=D(95)))
    assert await run.probe.wait_idle(5)
    await service.stop()
    (replaced,) = [e for e in run.events if isinstance(e, OrderReplaced)]
    assert (replaced.new_client_order_id, replaced.quantity, replaced.limit_price) == ("tw-2", D(3), D(95))
    restored = PaperVenue(PAPER, PaperConfig())
    restored.restore_state(run.broker.kv["paper.PAPER.state"])
    assert restored.open_orders() == ["tw-2"]


async def test_venue_native_brackets_false_makes_the_emulator_keep_the_exits_of_a_paper_venue() -> None:
    run = Run()
    await run.listen()
    service = await run.start(config(venue_native=False))
    assert list(service.exits) == [PAPER]
    await run.send(bar(0, "100"), market_order(instrument=PBTC, stop_loss="0.02"), bar(1, "100"),
                   bar(2, "99", low="97"), bar(3, "96"))
    await service.stop()
    sl = exit_id("tw-1", "sl", 2)  # the emulator's exit: fired on bar 2's close, filled at bar 3's open
    assert [(f.client_order_id, f.last_px) for f in run.events if isinstance(f, OrderFilled)] == [
        ("tw-1", D(100)), (sl, D(96))]


class SlTpOnly(PaperVenue):
    """A venue whose brackets hold a stop loss and a take profit only (as Alpaca's)."""

    capabilities = PaperVenue.capabilities - {CAP_BRACKET_TRAILING, CAP_BRACKET_TIME}


def test_an_entry_with_a_trailing_or_time_stop_goes_whole_to_the_emulator_where_the_venue_cannot_hold_it() -> None:
    venue = SlTpOnly(PAPER, PaperConfig())
    assert not emulated_exits(venue, True, market_order(instrument=PBTC, stop_loss="0.02", take_profit="0.05"))
    assert emulated_exits(venue, True, market_order(instrument=PBTC, stop_loss="0.02", trailing="0.03"))
    assert emulated_exits(venue, True, market_order(instrument=PBTC, time_stop_s=600))
    assert emulated_exits(venue, False, market_order(instrument=PBTC, stop_loss="0.02"))
    full = PaperVenue(PAPER, PaperConfig())
    assert not emulated_exits(full, True, market_order(instrument=PBTC, trailing="0.03", time_stop_s=600))
    reducing = msgspec.structs.replace(market_order(instrument=PBTC, trailing="0.03"), reduce_only=True)
    assert not emulated_exits(venue, True, reducing)  # a reduce-only trailing stop is the venue's own order


async def test_the_emulator_follows_an_emulated_order_through_its_replacement() -> None:
    run = Run()
    await run.listen()
    service = await run.start(config(venue_native=False))
    limit_entry = msgspec.structs.replace(order("tw-1", limit="90", quantity="2"), stop_loss_pct=D("0.02"))
    await run.send(bar(0, "100"), limit_entry)
    await run.probe.publish(subjects.order_command(PAPER), replace("tw-1", "tw-2", limit_price=D(100)))
    assert await run.probe.wait_idle(5)
    await run.send(bar(1, "100"), bar(2, "99", low="97"), bar(3, "96"))
    await service.stop()
    fills = [(f.client_order_id, f.last_px) for f in run.events if isinstance(f, OrderFilled)]
    assert fills == [("tw-2", D(100)), (exit_id("tw-2", "sl", 2), D(96))]


KALSHI = "KXTEST-25-YES.KALSHI"


async def test_a_market_resolution_on_the_bus_cancels_the_paper_orders_of_that_market() -> None:
    spec = InstrumentSpec(id=KALSHI, kind="binary", market_id="KXTEST-25", price_tick=D("0.01"))
    run = Run()
    await run.listen()
    service = await run.start(config(instruments=(spec,), venue="KALSHI"))
    await run.probe.publish(subjects.order_command("KALSHI"), order("tw-k", limit="0.40", instrument=KALSHI))
    assert await run.probe.wait_idle(5)
    assert service.venues["KALSHI"].open_orders() == ["tw-k"]
    resolved = MarketResolved(id=derive_id("res", 1), ts_event=T0 + 9 * MINUTE, ts_init=T0, venue="KALSHI",
                              market_id="KXTEST-25",
                              payouts=(OutcomePayout(instrument_id=KALSHI, payout=D(0)),), resolution="NO")
    await run.probe.publish(subjects.resolution("KALSHI"), resolved)
    assert await run.probe.wait_idle(5)
    await service.stop()
    (canceled,) = [e for e in run.events if isinstance(e, OrderCanceled)]
    assert (canceled.client_order_id, canceled.reason) == ("tw-k", "market resolved")
    assert not [e for e in run.events if isinstance(e, OrderRejected)]
