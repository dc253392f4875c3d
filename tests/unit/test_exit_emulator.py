"""Execution's exit emulator: the brackets of venues without native ones, kept by execution.

A minimal venue without ``CAP_BRACKET`` (market orders fill whole at the open of the first bar after
their event time) shows the emulator's own rules; the execution service is tested with the paper venue
with ``native_brackets = false``.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.unit.test_paper_venue import MINUTE, NOW, T0, bar
from tradewire_common import subjects
from tradewire_common.bus import Envelope, MemoryBroker, MemoryBus
from tradewire_common.config import Config, ExecutionConfig, PaperConfig, VenueConfig
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    Bar,
    CancelOrder,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    Side,
    SubmitOrder,
)
from tradewire_execution.exits import ExitEmulator
from tradewire_execution.paper import PaperVenue
from tradewire_execution.service import ExecutionService, exits_key, state_key
from tradewire_execution.venue import CAP_MARKET, CAP_REDUCE_ONLY, VenueAdapter

D = Decimal
VENUE = "FAKE"
BTC = "BTCUSDT.FAKE"


def exit_id(parent: str, kind: str, bar_index: int) -> str:
    return f"tw-{kind}-" + derive_id("exit", parent, kind, T0 + bar_index * MINUTE)[:24]


def order(coid: str = "tw-1", *, signal_bar: int = 0, side: Side = Side.BUY, quantity: str = "2",
          instrument: str = BTC, strategy: str = "sma", stop_loss: str | None = None, take_profit: str | None = None,
          trailing: str | None = None, time_stop_s: int | None = None) -> SubmitOrder:
    def dec(value: str | None) -> Decimal | None:
        return None if value is None else D(value)

    return SubmitOrder(
        id=derive_id("order", coid), ts_event=T0 + signal_bar * MINUTE, ts_init=T0 + (signal_bar + 1) * MINUTE,
        correlation_id=f"corr-{coid}", strategy_id=strategy, instrument_id=instrument, client_order_id=coid,
        side=side, order_type=OrderType.MARKET, quantity=D(quantity), stop_loss_pct=dec(stop_loss),
        take_profit_pct=dec(take_profit), trailing_stop_pct=dec(trailing), time_stop_s=time_stop_s,
    )


def fake_bar(i: int, open_: str, **kwargs: Any) -> Bar:
    return bar(i, open_, instrument=BTC, **kwargs)


class OpenFillVenue(VenueAdapter):
    """A venue without brackets: market orders fill whole at the open of the first bar after their event time."""

    capabilities = frozenset({CAP_MARKET, CAP_REDUCE_ONLY})

    def __init__(self, name: str = VENUE, *, reject: bool = False) -> None:
        self.name = name
        self.reject = reject
        self.working: dict[str, SubmitOrder] = {}
        self.seen: set[str] = set()
        self.received: list[SubmitOrder] = []

    async def submit(self, order: SubmitOrder, now_ns: int) -> list[OrderEvent]:
        coid = order.client_order_id
        if coid in self.seen:
            return []
        self.seen.add(coid)
        self.received.append(order)
        if self.reject:
            return [OrderRejected(id=derive_id("rej", coid), ts_event=order.ts_event, ts_init=now_ns,
                                  strategy_id=order.strategy_id, instrument_id=order.instrument_id,
                                  client_order_id=coid, reason="no")]
        self.working[coid] = order
        return [OrderAccepted(id=derive_id("acc", coid), ts_event=order.ts_event, ts_init=now_ns,
                              strategy_id=order.strategy_id, instrument_id=order.instrument_id, client_order_id=coid,
                              venue_order_id=coid[-16:])]

    async def cancel(self, command: CancelOrder, now_ns: int) -> list[OrderEvent]:
        order = self.working.pop(command.client_order_id, None)
        if order is None:
            return []
        return [OrderCanceled(id=derive_id("cxl", order.client_order_id), ts_event=command.ts_event, ts_init=now_ns,
                              strategy_id=order.strategy_id, instrument_id=order.instrument_id,
                              client_order_id=order.client_order_id)]

    async def on_bar(self, bar: Bar, now_ns: int) -> list[OrderEvent]:
        events: list[OrderEvent] = []
        for coid, o in sorted(self.working.items()):
            if o.instrument_id == bar.instrument_id and o.ts_event < bar.ts_event:
                del self.working[coid]
                events.append(OrderFilled(
                    id=derive_id("fill", coid), ts_event=bar.ts_event, ts_init=now_ns, correlation_id=o.correlation_id,
                    strategy_id=o.strategy_id, instrument_id=o.instrument_id, client_order_id=coid,
                    venue_order_id=coid[-16:], trade_id=derive_id("trade", coid)[:20], side=o.side,
                    last_qty=o.quantity, last_px=bar.open, fee=D(0), fee_currency="USD", liquidity=Liquidity.TAKER,
                    partial=False))
        return events

    def open_orders(self) -> list[str]:
        return sorted(self.working)


class Harness:
    """What the execution service does with an emulator and its venue, without the bus."""

    def __init__(self, emulator: ExitEmulator | None = None, venue: OpenFillVenue | None = None) -> None:
        self.venue = venue or OpenFillVenue()
        self.emulator = emulator or ExitEmulator(VENUE)
        self.events: list[OrderEvent] = []

    def observe(self, events: list[OrderEvent]) -> None:
        self.emulator.observe(events)
        self.events += events

    async def submit(self, o: SubmitOrder) -> None:
        self.emulator.track(o)
        self.observe(await self.venue.submit(o, NOW))

    async def bars(self, *bars: Bar) -> list[SubmitOrder]:
        sent = []
        for b in bars:
            self.observe(await self.venue.on_bar(b, NOW))
            for exit_order in self.emulator.on_bar(b):
                answer = await self.venue.submit(exit_order, NOW)
                self.emulator.sent(exit_order.client_order_id)
                self.observe(answer)
                sent.append(exit_order)
        return sent

    def fills(self) -> list[tuple[str, int, Side, Decimal, Decimal]]:
        return [(f.client_order_id, (f.ts_event - T0) // MINUTE, f.side, f.last_qty, f.last_px)
                for f in self.events if isinstance(f, OrderFilled)]


async def entered(**exits: Any) -> Harness:
    """Bar 0 seen, a bracketed BUY of 2 sent on it, filled at bar 1's open (100)."""
    side = exits.pop("side", Side.BUY)
    h = Harness()
    await h.bars(fake_bar(0, "100"))
    await h.submit(order(side=side, **exits))
    await h.bars(fake_bar(1, "100"))
    return h


# --- the rules ------------------------------------------------------------------------------------


async def test_a_crossed_stop_sends_a_reduce_only_market_order_for_the_whole_position() -> None:
    h = await entered(stop_loss="0.02")
    assert h.emulator.position("sma", BTC) == 2

    (sent,) = await h.bars(fake_bar(2, "99", low="98"))
    assert (sent.client_order_id, sent.side, sent.quantity, sent.order_type, sent.reduce_only) == (
        exit_id("tw-1", "sl", 2), Side.SELL, D(2), OrderType.MARKET, True)
    assert (sent.ts_event, sent.strategy_id, sent.correlation_id) == (T0 + 2 * MINUTE, "sma", "corr-tw-1")
    assert sent.stop_loss_pct is None and sent.time_stop_s is None

    await h.bars(fake_bar(3, "97"))  # the venue fills it at its next price
    assert h.fills()[-1] == (exit_id("tw-1", "sl", 2), 3, Side.SELL, D(2), D(97))
    assert h.emulator.position("sma", BTC) == 0 and h.emulator.armed() == []


async def test_a_low_one_tick_above_the_stop_sends_nothing() -> None:
    h = await entered(stop_loss="0.02")
    assert await h.bars(fake_bar(2, "99", low="98.01")) == []
    assert h.emulator.armed() == [("sma", BTC)]


async def test_take_profit_and_a_short_stop_mirror_the_paper_venues_levels() -> None:
    long_tp = await entered(take_profit="0.05")
    assert [o.client_order_id for o in await long_tp.bars(fake_bar(2, "101", high="105"))] == [
        exit_id("tw-1", "tp", 2)]
    short = await entered(side=Side.SELL, stop_loss="0.02")
    assert await short.bars(fake_bar(2, "100", high="101.99")) == []
    (sent,) = await short.bars(fake_bar(3, "100", high="102"))
    assert (sent.side, sent.quantity) == (Side.BUY, D(2))


async def test_a_trailing_stop_trails_the_previous_bars_highs() -> None:
    h = await entered(trailing="0.1")
    assert await h.bars(fake_bar(2, "120", high="130", low="110")) == []  # its own high does not count yet
    (sent,) = await h.bars(fake_bar(3, "120", low="117"))  # 130 * 0.9
    assert sent.client_order_id == exit_id("tw-1", "tr", 3)


async def test_the_time_stop_is_sent_when_the_bar_ending_at_the_deadline_completes() -> None:
    h = await entered(time_stop_s=120)  # entry at bar 1's open: deadline = bar 3's open
    # bar 2 ends at the deadline: the exit goes out then and fills at bar 3's open, where the paper
    # venue's own time stop exits too
    assert [o.client_order_id for o in await h.bars(fake_bar(2, "101"))] == [exit_id("tw-1", "tm", 2)]
    await h.bars(fake_bar(3, "104"))
    assert h.fills()[-1] == (exit_id("tw-1", "tm", 2), 3, Side.SELL, D(2), D(104))

    native = PaperVenue("PAPER", PaperConfig(fee_bps=0.0))
    await native.on_bar(bar(0, "100"), NOW)
    await native.submit(msgspec.structs.replace(order(instrument="BTCUSDT.PAPER"), time_stop_s=120), NOW)
    for i, price in ((1, "100"), (2, "101")):
        await native.on_bar(bar(i, price), NOW)
    (exit_fill,) = [e for e in await native.on_bar(bar(3, "104"), NOW) if isinstance(e, OrderFilled)]
    assert (exit_fill.ts_event, exit_fill.last_px) == (T0 + 3 * MINUTE, D(104))


async def test_a_time_stop_one_second_past_the_bar_end_waits_for_the_next_bar() -> None:
    h = await entered(time_stop_s=121)
    assert await h.bars(fake_bar(2, "101")) == []
    assert [o.client_order_id for o in await h.bars(fake_bar(3, "102"))] == [exit_id("tw-1", "tm", 3)]


async def test_orders_without_exits_are_not_tracked_but_move_the_position() -> None:
    h = Harness()
    await h.bars(fake_bar(0, "100"))
    await h.submit(order("tw-1", quantity="3"))
    await h.bars(fake_bar(1, "100"), fake_bar(2, "50", low="1"))
    assert h.emulator.position("sma", BTC) == 3 and h.emulator.armed() == []
    assert msgspec.json.decode(h.emulator.export_state())["orders"] == []


async def test_the_bracket_is_cancelled_when_the_strategy_closes_the_position_itself() -> None:
    h = await entered(stop_loss="0.02")
    await h.submit(order("tw-2", signal_bar=1, side=Side.SELL))
    await h.bars(fake_bar(2, "101"))
    assert h.emulator.armed() == []
    assert await h.bars(fake_bar(3, "90", low="80")) == []


async def test_the_exit_closes_the_whole_position_of_the_strategy_and_instrument_only() -> None:
    h = Harness()
    await h.bars(fake_bar(0, "100"))
    await h.submit(order("tw-1", quantity="2", stop_loss="0.02"))
    await h.submit(order("tw-2", quantity="1"))
    await h.submit(order("tw-3", quantity="5", strategy="other"))
    (sent,) = await h.bars(fake_bar(1, "100", low="97"))  # checked on the bar its parent filled at the open
    assert (sent.strategy_id, sent.quantity) == ("sma", D(3))


# --- redeliveries, restarts -----------------------------------------------------------------------


async def test_a_redelivered_command_or_fill_is_not_counted_twice() -> None:
    h = await entered(stop_loss="0.02")
    h.emulator.track(order(stop_loss="0.02"))  # the command again, after its order finished
    fill = next(e for e in h.events if isinstance(e, OrderFilled))
    h.emulator.observe([fill])  # the fill again
    assert h.emulator.position("sma", BTC) == 2
    assert msgspec.json.decode(h.emulator.export_state())["orders"] == []


async def test_a_restored_emulator_fires_a_trailing_stop_exactly_as_an_uninterrupted_one() -> None:
    later = [fake_bar(3, "118", high="119", low="110"), fake_bar(4, "112", high="113", low="107"),
             fake_bar(5, "106")]
    kept = await entered(trailing="0.1")
    await kept.bars(fake_bar(2, "105", high="120", low="104"))
    again = Harness(ExitEmulator(VENUE), kept.venue)
    again.emulator.restore_state(kept.emulator.export_state())
    assert again.emulator.export_state() == kept.emulator.export_state()
    peak = msgspec.json.decode(kept.emulator.export_state())["brackets"][0]["peak"]
    assert D(peak) == D(120)

    sent = await again.bars(*later)
    assert [(o.client_order_id, o.quantity) for o in sent] == [(exit_id("tw-1", "tr", 4), D(2))]  # 120 * 0.9 = 108


async def test_an_exit_decided_but_not_sent_is_pending_in_the_saved_state() -> None:
    h = await entered(stop_loss="0.02")
    (decided,) = h.emulator.on_bar(fake_bar(2, "99", low="97"))  # execution died before sending it
    again = ExitEmulator(VENUE)
    again.restore_state(h.emulator.export_state())
    assert again.pending() == [decided]
    again.sent(decided.client_order_id)
    assert again.pending() == []


async def test_an_exit_the_venue_rejects_is_logged_and_no_longer_pending(caplog: pytest.LogCaptureFixture) -> None:
    h = await entered(stop_loss="0.02")
    h.venue.reject = True
    with caplog.at_level(logging.ERROR):
        (sent,) = await h.bars(fake_bar(2, "99", low="97"))
    assert h.emulator.pending() == []
    assert f"rejected the exit {sent.client_order_id}" in caplog.text and "unprotected" in caplog.text


async def test_bars_of_a_second_interval_are_ignored() -> None:
    h = await entered(stop_loss="0.02")
    assert h.emulator.on_bar(fake_bar(2, "99", low="90", interval="5m")) == []
    assert h.emulator.armed() == [("sma", BTC)]


def test_a_state_of_another_venue_or_version_is_refused() -> None:
    state = ExitEmulator("OTHER").export_state()
    with pytest.raises(ValueError, match="OTHER"):
        ExitEmulator(VENUE).restore_state(state)
    with pytest.raises(ValueError, match="version"):
        ExitEmulator(VENUE).restore_state(state.replace(b'"version":1', b'"version":2'))


# --- in the execution service ---------------------------------------------------------------------

PAPER = "PAPER"
PBTC = "BTCUSDT.PAPER"


def paper_config(native: bool = False) -> Config:
    return Config(execution=ExecutionConfig(venues=(VenueConfig(name=PAPER),),
                                            paper=PaperConfig(fee_bps=0.0, native_brackets=native)))


class Run:
    """An execution service on a memory broker, with a probe publishing commands and bars."""

    def __init__(self, broker: MemoryBroker | None = None) -> None:
        self.broker = broker or MemoryBroker()
        self.probe = MemoryBus("probe", self.broker)
        self.events: list[OrderEvent] = []

    async def listen(self) -> None:
        async def collect(envelope: Envelope) -> None:
            assert isinstance(envelope.message, OrderEvent)
            self.events.append(envelope.message)

        await self.probe.subscribe(subjects.order_event("sma"), collect, durable="probe")

    async def start(self, config: Config) -> ExecutionService:
        service = ExecutionService(config, MemoryBus("execution", self.broker))
        await service.start()
        return service

    async def send(self, *messages: SubmitOrder | Bar) -> None:
        for m in messages:
            subject = subjects.order_command(PAPER) if isinstance(m, SubmitOrder) else subjects.bar(PAPER, "BTCUSDT",
                                                                                                     "1m")
            await self.probe.publish(subject, m)
            assert await self.probe.wait_idle(5)

    def fills(self) -> list[tuple[str, int, Decimal]]:
        return [(f.client_order_id, (f.ts_event - T0) // MINUTE, f.last_px) for f in self.events
                if isinstance(f, OrderFilled)]


async def test_the_service_emulates_exits_for_a_venue_without_native_brackets_and_saves_them() -> None:
    run = Run()
    await run.listen()
    native = await run.start(paper_config(native=True))
    assert native.exits == {}
    await native.stop()

    service = await run.start(paper_config())
    assert list(service.exits) == [PAPER]
    await run.send(bar(0, "100"), order(instrument=PBTC, stop_loss="0.02"), bar(1, "100"), bar(2, "99", low="98"),
                   bar(3, "97"))
    await service.stop()

    sl = exit_id("tw-1", "sl", 2)
    assert run.fills() == [("tw-1", 1, D(100)), (sl, 3, D(97))]
    assert [type(e) for e in run.events if e.client_order_id == sl] == [OrderSubmitted, OrderAccepted, OrderFilled]
    assert exits_key(PAPER) in run.broker.kv and state_key(PAPER) in run.broker.kv
    assert exits_key(PAPER) == "paper.PAPER.exits"


async def test_an_armed_stop_fires_after_the_service_restarts() -> None:
    run = Run()
    await run.listen()
    first = await run.start(paper_config())
    await run.send(bar(0, "100"), order(instrument=PBTC, trailing="0.1"), bar(1, "100", high="120"))
    assert first.exits[PAPER].armed() == [("sma", PBTC)]
    await first.stop()

    second = await run.start(paper_config())
    assert second.exits[PAPER].armed() == [("sma", PBTC)]
    await run.send(bar(2, "115", low="108"), bar(3, "107"))  # the trail kept its peak of 120: stop 108
    await second.stop()
    assert run.fills()[-1] == (exit_id("tw-1", "tr", 2), 3, D(107))


async def test_exits_pending_at_start_are_sent_to_the_venue() -> None:
    run = Run()
    first = await run.start(paper_config())
    await run.send(bar(0, "100"), order(instrument=PBTC, stop_loss="0.02"), bar(1, "100"))
    await first.stop()
    emulator = ExitEmulator(PAPER)
    emulator.restore_state(run.broker.kv[exits_key(PAPER)])
    (decided,) = emulator.on_bar(bar(2, "99", low="97"))  # decided and saved, then execution died
    run.broker.kv[exits_key(PAPER)] = emulator.export_state()

    second = await run.start(paper_config())
    assert decided.client_order_id in second.venues[PAPER].open_orders()
    assert second.exits[PAPER].pending() == []
    await second.stop()


async def test_a_halt_leaves_an_emulated_exit_working() -> None:
    run = Run()
    await run.listen()
    service = await run.start(paper_config())
    await run.send(bar(0, "100"), order(instrument=PBTC, stop_loss="0.02"), bar(1, "100"), bar(2, "99", low="97"))
    sl = exit_id("tw-1", "sl", 2)
    assert service.venues[PAPER].open_orders() == [sl]
    assert await service.cancel_for_halt("global", "test", "corr") == 0
    await run.send(bar(3, "96"))
    await service.stop()
    assert run.fills()[-1] == (sl, 3, D(96))
