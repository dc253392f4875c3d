"""The paper venue: event-time fills from bars, deterministic ids, partial fills, time in force."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

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
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    Side,
    SubmitOrder,
    TimeInForce,
)
from tradewire_execution.paper import PaperVenue
from tradewire_execution.service import ExecutionService, state_key
from tradewire_execution.venue import VenueAdapter

VENUE = "PAPER"
INSTRUMENT = "BTCUSDT.PAPER"
MINUTE = 60 * 1_000_000_000
T0 = 1_700_000_040 * 1_000_000_000  # a minute boundary, not near midnight UTC
NOW = 42


def bar(
    i: int,
    open: str,
    high: str | None = None,
    low: str | None = None,
    close: str | None = None,
    volume: str = "1000",
    instrument: str = INSTRUMENT,
    interval: str = "1m",
) -> Bar:
    """The ``i``-th one-minute bar after T0; high/low/close default to the open."""
    o = Decimal(open)
    c = Decimal(close) if close is not None else o
    return Bar(
        id=derive_id("bar", instrument, interval, i),
        ts_event=T0 + i * MINUTE,
        ts_init=T0 + (i + 1) * MINUTE,
        instrument_id=instrument,
        interval=interval,
        open=o,
        high=Decimal(high) if high is not None else max(o, c),
        low=Decimal(low) if low is not None else min(o, c),
        close=c,
        volume=Decimal(volume),
        seq=i,
    )


def order(
    coid: str = "tw-1",
    *,
    signal_bar: int = 0,
    side: Side = Side.BUY,
    quantity: str = "2",
    limit: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    instrument: str = INSTRUMENT,
    trigger: str | None = None,
    stop_loss: str | None = None,
    take_profit: str | None = None,
    strategy: str = "sma",
) -> SubmitOrder:
    """A market order, a limit order with ``limit``, a stop with ``trigger`` (stop-limit with both)."""
    if trigger is not None:
        kind = OrderType.STOP_MARKET if limit is None else OrderType.STOP_LIMIT
    else:
        kind = OrderType.MARKET if limit is None else OrderType.LIMIT
    return SubmitOrder(
        id=derive_id("order", coid),
        ts_event=T0 + signal_bar * MINUTE,
        ts_init=T0 + (signal_bar + 1) * MINUTE,
        correlation_id=f"corr-{coid}",
        strategy_id=strategy,
        instrument_id=instrument,
        client_order_id=coid,
        side=side,
        order_type=kind,
        quantity=Decimal(quantity),
        limit_price=Decimal(limit) if limit is not None else None,
        time_in_force=tif,
        trigger_price=Decimal(trigger) if trigger is not None else None,
        stop_loss_pct=Decimal(stop_loss) if stop_loss is not None else None,
        take_profit_pct=Decimal(take_profit) if take_profit is not None else None,
    )


def cancel(coid: str = "tw-1", at_bar: int = 1) -> CancelOrder:
    return CancelOrder(
        id=derive_id("cancel", coid),
        ts_event=T0 + at_bar * MINUTE,
        ts_init=T0 + at_bar * MINUTE,
        strategy_id="sma",
        instrument_id=INSTRUMENT,
        client_order_id=coid,
        reason="operator",
    )


def venue(**config: Any) -> PaperVenue:
    config.setdefault("fee_bps", 0.0)
    return PaperVenue(VENUE, PaperConfig(**config))


def fills(events: list[OrderEvent]) -> list[OrderFilled]:
    return [e for e in events if isinstance(e, OrderFilled)]


async def feed(v: PaperVenue, *bars: Bar) -> list[OrderEvent]:
    events: list[OrderEvent] = []
    for b in bars:
        events.extend(await v.on_bar(b, NOW))
    return events


# --- market orders --------------------------------------------------------------------------------


async def test_market_buy_fills_at_next_open_with_slippage_and_fee() -> None:
    v = venue(slippage_bps=5.0, fee_bps=10.0, fee_currency="USDT")
    await v.on_bar(bar(0, "99", close="100"), NOW)

    submitted = await v.submit(order(quantity="2"), NOW)
    assert [type(e) for e in submitted] == [OrderAccepted]
    accepted = submitted[0]
    assert isinstance(accepted, OrderAccepted)
    assert accepted.venue_order_id == derive_id("vo", "tw-1")[:16]
    assert v.open_orders() == ["tw-1"]

    (fill,) = await v.on_bar(bar(1, "101", high="103", low="100", close="102"), NOW)
    assert isinstance(fill, OrderFilled)
    assert fill.last_px == Decimal("101.0505")  # 101 * (1 + 5/1e4)
    assert fill.last_qty == Decimal("2")
    assert fill.fee == Decimal("0.202101")  # 2 * 101.0505 * 10/1e4
    assert fill.fee_currency == "USDT"
    assert fill.liquidity is Liquidity.TAKER
    assert fill.partial is False
    assert fill.leaves_qty == 0
    assert fill.side is Side.BUY
    assert fill.ts_event == T0 + MINUTE
    assert fill.ts_init == NOW
    assert fill.correlation_id == "corr-tw-1"
    assert fill.venue_order_id == accepted.venue_order_id
    assert fill.trade_id == derive_id("trade", "tw-1", T0 + MINUTE)[:20]
    assert fill.id == derive_id("OrderFilled", "tw-1", fill.trade_id)
    assert v.open_orders() == []


async def test_market_sell_receives_open_less_slippage() -> None:
    v = venue(slippage_bps=10.0)
    await v.submit(order(side=Side.SELL, quantity="1"), NOW)

    (fill,) = fills(await feed(v, bar(0, "100"), bar(1, "200")))
    assert fill.last_px == Decimal("199.8")
    assert fill.side is Side.SELL
    assert fill.fee == 0


async def test_close_mode_fills_at_signal_bar_close() -> None:
    v = venue(fill_at="close", slippage_bps=10.0)
    await v.on_bar(bar(0, "100", close="110"), NOW)

    accepted, fill = await v.submit(order(signal_bar=0), NOW)
    assert isinstance(accepted, OrderAccepted)
    assert isinstance(fill, OrderFilled)
    assert fill.last_px == Decimal("110.11")
    assert fill.ts_event == T0


async def test_close_mode_falls_back_to_next_open_when_signal_bar_unknown() -> None:
    v = venue(fill_at="close")
    await v.on_bar(bar(1, "120", close="125"), NOW)

    _, fill = await v.submit(order(signal_bar=0), NOW)
    assert isinstance(fill, OrderFilled)
    assert fill.last_px == Decimal("120")
    assert fill.ts_event == T0 + MINUTE


async def test_late_order_fills_on_the_right_historical_bar_same_as_in_time() -> None:
    bars = [bar(0, "100"), bar(1, "101"), bar(2, "102"), bar(3, "103")]

    in_time = venue(slippage_bps=3.0, fee_bps=7.0)
    await feed(in_time, bars[0])
    events_in_time = await in_time.submit(order(signal_bar=0), NOW)
    events_in_time += await feed(in_time, *bars[1:])

    late = venue(slippage_bps=3.0, fee_bps=7.0)
    await feed(late, *bars)
    events_late = await late.submit(order(signal_bar=0), NOW)

    assert events_late == events_in_time
    (fill,) = fills(events_late)
    assert fill.ts_event == bars[1].ts_event
    assert fill.last_px == Decimal("101") * Decimal("1.0003")


async def test_order_for_a_future_bar_rests_until_that_bar() -> None:
    v = venue()
    await feed(v, bar(0, "100"), bar(1, "101"), bar(2, "102"))

    assert [type(e) for e in await v.submit(order(signal_bar=2), NOW)] == [OrderAccepted]
    (fill,) = fills(await feed(v, bar(3, "103")))
    assert fill.last_px == Decimal("103")


# --- volume cap -----------------------------------------------------------------------------------


async def test_volume_cap_splits_fills_across_bars_with_leaves_qty_until_a_final_fill() -> None:
    v = venue(max_volume_share=0.5, quantity_step=Decimal("0.1"))
    await v.submit(order(quantity="4"), NOW)

    events = await feed(
        v, bar(0, "100"), bar(1, "100", volume="3"), bar(2, "101", volume="3.3"), bar(3, "102")
    )
    got = [(f.last_qty, f.last_px, f.partial, f.leaves_qty) for f in fills(events)]
    assert got == [
        (Decimal("1.5"), Decimal("100"), True, Decimal("2.5")),
        (Decimal("1.6"), Decimal("101"), True, Decimal("0.9")),  # 1.65 rounded down to the step
        (Decimal("0.9"), Decimal("102"), False, Decimal("0")),
    ]
    assert len({f.trade_id for f in fills(events)}) == 3
    assert v.open_orders() == []


async def test_volume_cap_fills_nothing_on_a_zero_volume_bar() -> None:
    v = venue(max_volume_share=0.1)
    await v.submit(order(quantity="1"), NOW)

    assert await feed(v, bar(1, "100", volume="0")) == []
    assert v.open_orders() == ["tw-1"]


async def test_full_volume_share_disables_the_cap() -> None:
    v = venue(max_volume_share=1.0)
    await v.submit(order(quantity="5"), NOW)

    (fill,) = fills(await feed(v, bar(1, "100", volume="0")))
    assert fill.last_qty == Decimal("5")
    assert fill.partial is False


# --- limit orders ---------------------------------------------------------------------------------


async def test_limit_buy_fills_only_when_low_trades_through_at_the_limit_without_slippage() -> None:
    v = venue(slippage_bps=50.0, fee_bps=10.0)
    await v.submit(order(limit="95", quantity="1"), NOW)

    assert await feed(v, bar(1, "100", high="101", low="95.01", close="100")) == []
    (fill,) = fills(await feed(v, bar(2, "99", high="99", low="94", close="96")))
    assert fill.last_px == Decimal("95")
    assert fill.liquidity is Liquidity.MAKER
    assert fill.fee == Decimal("0.095")


async def test_limit_buy_gap_down_fills_at_the_better_open() -> None:
    v = venue()
    await v.submit(order(limit="95"), NOW)

    (fill,) = fills(await feed(v, bar(1, "90", high="92", low="89", close="91")))
    assert fill.last_px == Decimal("90")
    assert fill.liquidity is Liquidity.TAKER


async def test_limit_sell_fills_only_when_high_trades_through() -> None:
    v = venue(slippage_bps=50.0)
    await v.submit(order(side=Side.SELL, limit="105"), NOW)

    assert await feed(v, bar(1, "100", high="104.99", low="99")) == []
    (fill,) = fills(await feed(v, bar(2, "101", high="106", low="100", close="104")))
    assert fill.last_px == Decimal("105")
    assert fill.liquidity is Liquidity.MAKER


async def test_limit_sell_gap_up_fills_at_the_better_open() -> None:
    v = venue()
    await v.submit(order(side=Side.SELL, limit="105"), NOW)

    (fill,) = fills(await feed(v, bar(1, "110", high="111", low="108", close="109")))
    assert fill.last_px == Decimal("110")


async def test_limit_never_fills_on_the_signal_bar_even_in_close_mode() -> None:
    v = venue(fill_at="close")
    await v.on_bar(bar(0, "100", low="90", close="100"), NOW)

    assert [type(e) for e in await v.submit(order(limit="95"), NOW)] == [OrderAccepted]
    (fill,) = fills(await feed(v, bar(1, "96", low="94", close="95")))
    assert fill.ts_event == T0 + MINUTE


# --- time in force --------------------------------------------------------------------------------


async def test_ioc_fills_what_the_next_bar_allows_and_cancels_the_rest() -> None:
    v = venue(max_volume_share=0.5, quantity_step=Decimal("0.01"))
    await v.submit(order(quantity="3", tif=TimeInForce.IOC), NOW)

    fill, canceled = await feed(v, bar(1, "100", volume="2"))
    assert isinstance(fill, OrderFilled)
    assert (fill.last_qty, fill.partial, fill.leaves_qty) == (Decimal("1"), True, Decimal("2"))
    assert isinstance(canceled, OrderCanceled)
    assert canceled.filled_qty == Decimal("1")
    assert canceled.ts_event == T0 + MINUTE
    assert v.open_orders() == []
    assert await feed(v, bar(2, "100")) == []


async def test_ioc_limit_not_reached_on_the_next_bar_cancels_everything() -> None:
    v = venue()
    await v.submit(order(limit="90", tif=TimeInForce.IOC), NOW)

    (canceled,) = await feed(v, bar(1, "100", low="95"))
    assert isinstance(canceled, OrderCanceled)
    assert canceled.filled_qty == 0


async def test_fok_cancels_when_the_cap_prevents_a_full_fill() -> None:
    v = venue(max_volume_share=0.5)
    await v.submit(order(quantity="3", tif=TimeInForce.FOK), NOW)

    (canceled,) = await feed(v, bar(1, "100", volume="2"))
    assert isinstance(canceled, OrderCanceled)
    assert canceled.filled_qty == 0


async def test_day_order_expires_at_the_end_of_its_first_utc_day() -> None:
    v = venue()
    day = 86_400 * 1_000_000_000
    start = (T0 // day) * day + day - 2 * MINUTE  # two minutes before midnight
    await v.submit(order(limit="50", tif=TimeInForce.DAY), NOW)

    first = bar(0, "100")
    last_of_day = Bar(**{**_fields(first), "ts_event": start, "seq": 1})
    next_day = Bar(**{**_fields(first), "ts_event": start + 2 * MINUTE, "seq": 2})
    assert await feed(v, last_of_day) == []
    (expired,) = await feed(v, next_day)
    assert isinstance(expired, OrderExpired)
    assert expired.ts_event == start + 2 * MINUTE
    assert v.open_orders() == []


def _fields(b: Bar) -> dict[str, Any]:
    return {name: getattr(b, name) for name in b.__struct_fields__}


# --- idempotency, cancels, rejections -------------------------------------------------------------


async def test_duplicate_client_order_id_is_ignored() -> None:
    v = venue()
    await v.on_bar(bar(0, "100"), NOW)
    assert len(await v.submit(order(quantity="1"), NOW)) == 1
    assert await v.submit(order(quantity="1"), NOW) == []

    (fill,) = fills(await feed(v, bar(1, "100")))
    assert fill.last_qty == Decimal("1")
    assert await v.submit(order(quantity="1"), NOW) == []  # also once closed


async def test_cancel_a_resting_order_reports_the_filled_quantity() -> None:
    v = venue(max_volume_share=0.5)
    await v.submit(order(quantity="3"), NOW)
    await feed(v, bar(1, "100", volume="2"))

    (canceled,) = await v.cancel(cancel(at_bar=2), NOW)
    assert isinstance(canceled, OrderCanceled)
    assert canceled.filled_qty == Decimal("1")
    assert canceled.reason == "operator"
    assert canceled.id == derive_id("OrderCanceled", "tw-1", "")
    assert canceled.correlation_id == "corr-tw-1"
    assert v.open_orders() == []
    assert await feed(v, bar(2, "100")) == []


async def test_cancel_of_an_unknown_or_closed_order_returns_nothing() -> None:
    v = venue()
    assert await v.cancel(cancel("tw-unknown"), NOW) == []
    await v.submit(order(), NOW)
    await v.on_bar(bar(1, "100"), NOW)
    assert await v.cancel(cancel(), NOW) == []


async def test_order_for_an_instrument_of_another_venue_is_rejected() -> None:
    v = venue()
    (rejected,) = await v.submit(order(instrument="BTCUSDT.BINANCE"), NOW)
    assert isinstance(rejected, OrderRejected)
    assert "BINANCE" in rejected.reason
    assert v.open_orders() == []


# --- bars -----------------------------------------------------------------------------------------


async def test_out_of_order_bars_are_matched_by_event_time() -> None:
    v = venue()
    await feed(v, bar(2, "102"), bar(0, "100"))
    assert v.last_bar_ts(INSTRUMENT) == T0 + 2 * MINUTE

    _, fill = await v.submit(order(signal_bar=0), NOW)
    assert isinstance(fill, OrderFilled)
    assert fill.last_px == Decimal("102")


async def test_duplicate_and_other_interval_bars_are_ignored() -> None:
    v = venue()
    await feed(v, bar(0, "100"), bar(1, "101"), bar(1, "999"), bar(2, "200", interval="5m"))
    assert v.last_bar_ts(INSTRUMENT) == T0 + MINUTE
    assert v.last_bar_ts("ETHUSDT.PAPER") is None

    _, fill = await v.submit(order(signal_bar=0), NOW)
    assert isinstance(fill, OrderFilled)
    assert fill.last_px == Decimal("101")


async def test_history_is_bounded() -> None:
    v = PaperVenue(VENUE, PaperConfig(), history=2)
    await feed(v, bar(0, "100"), bar(1, "101"), bar(2, "102"))
    _, fill = await v.submit(order(signal_bar=-5), NOW)
    assert isinstance(fill, OrderFilled)
    assert fill.ts_event == T0 + MINUTE  # the oldest bar kept


def test_paper_venue_is_a_venue_adapter_with_its_capabilities() -> None:
    v = venue()
    assert isinstance(v, VenueAdapter)
    assert v.name == VENUE
    assert {"market", "limit", "partial_fills", "ioc"} <= v.capabilities


async def test_start_and_close_are_harmless() -> None:
    v = venue()
    await v.start()
    await v.close()
    await v.close()


@pytest.mark.parametrize("fill_at", ["next_open", "close"])
async def test_same_inputs_give_identical_events(fill_at: str) -> None:
    async def run() -> list[OrderEvent]:
        v = venue(fill_at=fill_at, max_volume_share=0.25, slippage_bps=2.0, fee_bps=4.0)
        events: list[OrderEvent] = await v.on_bar(bar(0, "100", volume="4"), NOW)
        events += await v.submit(order(quantity="2"), NOW)
        events += await feed(v, *(bar(i, str(100 + i), volume="4") for i in range(1, 4)))
        return events

    assert await run() == await run()


# --- state across restarts ------------------------------------------------------------------------


def restored(v: PaperVenue, **config: Any) -> PaperVenue:
    """A fresh venue (as after a restart) loaded with ``v``'s exported state."""
    again = venue(**config)
    again.restore_state(v.export_state())
    return again


async def test_a_partially_filled_order_continues_identically_after_export_and_restore() -> None:
    config: dict[str, Any] = {"max_volume_share": 0.5, "quantity_step": Decimal("0.1"), "fee_bps": 10.0}
    later = [bar(2, "101", volume="3"), bar(3, "102", volume="1"), bar(4, "103")]
    kept = venue(**config)
    await kept.submit(order(quantity="4"), NOW)
    (first,) = fills(await feed(kept, bar(0, "100"), bar(1, "100", volume="3")))
    assert (first.last_qty, first.leaves_qty) == (Decimal("1.5"), Decimal("2.5"))

    again = restored(kept, **config)
    assert again.open_orders() == kept.open_orders() == ["tw-1"]
    assert again.export_state() == kept.export_state()

    continued = await feed(again, *later)
    assert continued == await feed(kept, *later)
    got = [(f.last_qty, f.partial, f.leaves_qty, f.trade_id) for f in fills(continued)]
    assert [g[:3] for g in got] == [
        (Decimal("1.5"), True, Decimal("1.0")),
        (Decimal("0.5"), True, Decimal("0.5")),
        (Decimal("0.5"), False, Decimal("0")),
    ]
    assert first.trade_id not in {g[3] for g in got}
    assert again.open_orders() == []


async def test_an_order_waiting_for_its_next_bar_survives_a_restore() -> None:
    v = venue(slippage_bps=2.0)
    await feed(v, bar(0, "100"))
    await v.submit(order(signal_bar=0), NOW)

    again = restored(v, slippage_bps=2.0)
    assert again.open_orders() == ["tw-1"]
    assert await feed(again, bar(0, "100")) == []  # a bar already seen is still a duplicate
    (fill,) = fills(await feed(again, bar(1, "110")))
    assert (fill.last_qty, fill.last_px, fill.partial) == (Decimal("2"), Decimal("110.022"), False)


async def test_a_duplicate_client_order_id_after_restore_is_still_ignored() -> None:
    v = venue(max_volume_share=0.5)
    await v.submit(order("tw-open", quantity="3"), NOW)
    await v.submit(order("tw-done", quantity="0.5"), NOW)
    await feed(v, bar(1, "100", volume="2"))
    assert v.open_orders() == ["tw-open"]

    again = restored(v, max_volume_share=0.5)
    assert await again.submit(order("tw-open", quantity="3"), NOW) == []
    assert await again.submit(order("tw-done", quantity="0.5"), NOW) == []
    assert again.open_orders() == ["tw-open"]
    (fill,) = fills(await feed(again, bar(2, "100", volume="2")))
    assert (fill.client_order_id, fill.last_qty, fill.leaves_qty) == ("tw-open", Decimal("1"), Decimal("1"))


async def test_a_late_order_after_restore_fills_on_the_restored_bars_as_before() -> None:
    v = venue(slippage_bps=3.0)
    await feed(v, bar(0, "100"), bar(1, "101"), bar(2, "102"))

    late = await restored(v, slippage_bps=3.0).submit(order(signal_bar=0), NOW)
    assert late == await v.submit(order(signal_bar=0), NOW)
    (fill,) = fills(late)
    assert (fill.ts_event, fill.last_px) == (T0 + MINUTE, Decimal("101") * Decimal("1.0003"))


async def test_a_day_order_keeps_its_expiry_across_a_restore() -> None:
    v = venue()
    day = 86_400 * 1_000_000_000
    start = (T0 // day) * day + day - 2 * MINUTE
    first = bar(0, "100")
    await v.submit(order(limit="50", tif=TimeInForce.DAY), NOW)
    revision = v.state_revision
    assert await feed(v, Bar(**{**_fields(first), "ts_event": start, "seq": 1})) == []
    assert v.state_revision > revision  # the first eligible bar fixed the expiry

    again = restored(v)
    (expired,) = await feed(again, Bar(**{**_fields(first), "ts_event": start + 2 * MINUTE, "seq": 2}))
    assert isinstance(expired, OrderExpired)


async def test_exported_state_is_bounded() -> None:
    v = PaperVenue(VENUE, PaperConfig(fee_bps=0.0), export_bars=2, export_ids=2)
    await feed(v, *(bar(i, str(100 + i)) for i in range(5)))
    await v.submit(order("tw-open", signal_bar=4), NOW)
    for i in range(3):
        await v.submit(order(f"tw-{i}", signal_bar=0), NOW)  # filled at once from the history

    again = PaperVenue(VENUE, PaperConfig(fee_bps=0.0))
    again.restore_state(v.export_state())
    assert again.last_bar_ts(INSTRUMENT) == T0 + 4 * MINUTE
    assert again.open_orders() == ["tw-open"]
    # the two newest ids and the open order's are remembered; the oldest closed one is not
    assert await again.submit(order("tw-open", signal_bar=4), NOW) == []
    assert await again.submit(order("tw-2", signal_bar=0), NOW) == []
    assert await again.submit(order("tw-1", signal_bar=0), NOW) == []
    # an order older than the bars kept matches the oldest kept bar (as with a bounded history)
    _, fill = await again.submit(order("tw-0", signal_bar=0), NOW)
    assert isinstance(fill, OrderFilled)
    assert fill.ts_event == T0 + 3 * MINUTE


async def test_state_revision_moves_only_when_orders_change() -> None:
    v = venue(max_volume_share=0.5)
    await feed(v, bar(0, "100"))
    assert v.state_revision == 0  # bars alone do not move it
    await v.submit(order(quantity="3"), NOW)
    accepted = v.state_revision
    assert accepted > 0
    await v.submit(order(quantity="3"), NOW)
    assert v.state_revision == accepted  # a duplicate changes nothing
    await feed(v, bar(1, "100", volume="2"))
    partly = v.state_revision
    assert partly > accepted
    await feed(v, bar(2, "100", volume="0"))
    assert v.state_revision == partly  # no fill on this bar
    await v.cancel(cancel(at_bar=3), NOW)
    assert v.state_revision > partly


def test_restore_refuses_foreign_or_unknown_state() -> None:
    state = msgspec.json.decode(venue().export_state())
    with pytest.raises(ValueError, match="OTHER"):
        PaperVenue("OTHER", PaperConfig()).restore_state(venue().export_state())
    with pytest.raises(ValueError, match="version"):
        venue().restore_state(msgspec.json.encode({**state, "version": 99}))
    with pytest.raises(ValueError):
        venue().restore_state(b"not json")


def test_venue_adapters_have_no_state_by_default() -> None:
    class Remote(VenueAdapter):
        name = "REMOTE"

        async def submit(self, order: SubmitOrder, now_ns: int) -> list[OrderEvent]:
            return []

        async def cancel(self, command: CancelOrder, now_ns: int) -> list[OrderEvent]:
            return []

        async def on_bar(self, bar: Bar, now_ns: int) -> list[OrderEvent]:
            return []

        def open_orders(self) -> list[str]:
            return []

    remote = Remote()
    assert remote.export_state() == b""
    remote.restore_state(b"")
    assert remote.state_revision == 0


# --- the execution service keeps the paper venue's state in the KV bucket -------------------------


class FlakyKvBus(MemoryBus):
    """A memory bus whose first KV put fails (a broker hiccup)."""

    failures = 1

    async def kv_put(self, key: str, value: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("kv unavailable")
        await super().kv_put(key, value)


async def test_execution_service_saves_before_the_ack_and_a_restarted_one_resumes() -> None:
    broker = MemoryBroker()
    config = Config(
        execution=ExecutionConfig(venues=(VenueConfig(name=VENUE),), paper=PaperConfig(max_volume_share=0.5))
    )
    events: list[OrderEvent] = []

    async def collect(envelope: Envelope) -> None:
        assert isinstance(envelope.message, OrderEvent)
        events.append(envelope.message)

    probe = MemoryBus("probe", broker)
    await probe.subscribe(subjects.order_event("sma"), collect, durable="probe")
    flaky = FlakyKvBus("execution", broker)
    first = ExecutionService(config, flaky)
    await first.start()
    await probe.publish(subjects.order_command(VENUE), order(quantity="3"))
    assert await probe.wait_idle(5)
    # the failed save left the command unacknowledged; its redelivery saved the state
    assert flaky.failures == 0
    assert state_key(VENUE) in broker.kv
    await probe.publish(subjects.bar(VENUE, "BTCUSDT", "1m"), bar(1, "100", volume="2"))
    assert await probe.wait_idle(5)
    await first.stop()

    second = ExecutionService(config, MemoryBus("execution", broker))
    await second.start()
    assert second.venues[VENUE].open_orders() == ["tw-1"]
    await probe.publish(subjects.order_command(VENUE), order(quantity="3"))  # a duplicate
    await probe.publish(subjects.bar(VENUE, "BTCUSDT", "1m"), bar(2, "100", volume="4"))
    assert await probe.wait_idle(5)
    await second.stop()

    got = [(f.last_qty, f.leaves_qty) for f in fills(events)]
    assert got == [(Decimal("1"), Decimal("2")), (Decimal("2"), Decimal("0"))]
    assert [type(e).__name__ for e in events if not isinstance(e, OrderFilled)] == [
        "OrderSubmitted", "OrderAccepted"
    ]


def test_state_keys_are_valid_kv_keys() -> None:
    assert state_key("BINANCE") == "paper.BINANCE.state"
    assert state_key("my venue.x") == "paper.my=20venue=2Ex.state"
