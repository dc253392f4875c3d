"""Risk's pre-trade checks, each at its boundary: just under (or exactly at) passes, just over is denied.

Unless a test says otherwise, numbers as in test_risk_engine: equity 10000, price 100, fixed fraction 10%
(10 units = 1000), position limit 10% (1000), exposure limit 25% (2500), quantity step and minimum 0.01.
Time is event time (``T0`` plus whole seconds); the context is a :class:`RiskContext` fed by hand with
the messages the service would feed it. Expected numbers are worked out by hand in the comments.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest

from tests.unit.test_risk_engine import BTC, ETH, SOL, denied, make_config, position, submitted
from tradewire_common.config import InstrumentSpec
from tradewire_common.ids import client_order_id, derive_id
from tradewire_common.schemas import (
    DenyReason,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderType,
    PortfolioSnapshot,
    PositionSnapshot,
    Side,
    Signal,
    SubmitOrder,
    TradingState,
)
from tradewire_common.schemas.base import Liquidity
from tradewire_risk.context import RiskContext
from tradewire_risk.engine import RiskEngine
from tradewire_risk.limits import close_quantity
from tradewire_risk.plans import Plan

D = Decimal
NS = 1_000_000_000
SECOND = NS
MINUTE = 60 * NS
HOUR = 3600 * NS
DAY = 86_400 * NS
#: 2023-11-15 00:00 UTC, the start of a UTC day.
DAY0 = 1_700_006_400 * NS
T0 = DAY0 + 10 * HOUR
ACTIVE = TradingState.ACTIVE

_ids = itertools.count(1)


def sig(
    side: Side = Side.BUY,
    price: str = "100",
    *,
    ts: int = T0,
    strategy: str = "sma_cross",
    instrument: str = BTC,
    order_type: OrderType = OrderType.MARKET,
    limit: str | None = None,
    trigger: str | None = None,
    target: str | None = None,
) -> Signal:
    n = next(_ids)
    return Signal(id=derive_id("checks-signal", n), ts_event=ts, ts_init=ts, strategy_id=strategy,
                  instrument_id=instrument, side=side, price=D(price), confidence=1.0, reason="test",
                  target=None if target is None else D(target), order_type=order_type,
                  limit_price=None if limit is None else D(limit),
                  trigger_price=None if trigger is None else D(trigger))


def snapshot(*positions: PositionSnapshot, equity: str = "10000", cash: str | None = None,
             as_of: int = T0) -> PortfolioSnapshot:
    value = sum((p.quantity * p.last_price for p in positions), D(0))
    return PortfolioSnapshot(id=derive_id("checks-pf", next(_ids)), ts_event=as_of, ts_init=as_of, account="paper",
                             cash=D(equity) - value if cash is None else D(cash), equity=D(equity),
                             realized_pnl=D(0), unrealized_pnl=D(0),
                             gross_exposure=sum((abs(p.quantity * p.last_price) for p in positions), D(0)),
                             positions=positions, as_of=as_of)


def decide(signal: Signal, portfolio: PortfolioSnapshot | None = None, *, ctx: RiskContext | None = None,
           **config: Any) -> SubmitOrder | OrderDenied:
    engine = RiskEngine(make_config(**config))
    return engine.evaluate(signal, portfolio or snapshot(), ACTIVE, now_ns=signal.ts_event,
                           context=ctx if ctx is not None else RiskContext())


def open_order(ctx: RiskContext, side: Side, quantity: str, *, price: str = "100", strategy: str = "sma_cross",
               instrument: str = BTC, reduce_only: bool = False, limit: str | None = None, ts: int = T0) -> str:
    """An order risk sent earlier and that is still working; returns its client order id."""
    coid = client_order_id(strategy, derive_id("earlier", next(_ids)))
    order = SubmitOrder(id=derive_id("submit", coid), ts_event=ts, ts_init=ts, strategy_id=strategy,
                        instrument_id=instrument, client_order_id=coid, side=side,
                        order_type=OrderType.LIMIT if limit else OrderType.MARKET, quantity=D(quantity),
                        limit_price=None if limit is None else D(limit), reduce_only=reduce_only)
    ctx.record_submit(order, D(price))
    return coid


def fill(ctx: RiskContext, coid: str, side: Side, quantity: str, price: str = "100", *,
         strategy: str = "sma_cross", instrument: str = BTC, partial: bool = False, ts: int = T0) -> None:
    ctx.apply(OrderFilled(id=derive_id("fill", coid, next(_ids)), ts_event=ts, ts_init=ts, strategy_id=strategy,
                          instrument_id=instrument, client_order_id=coid, venue_order_id="v-" + coid,
                          trade_id=derive_id("trade", next(_ids)), side=side, last_qty=D(quantity),
                          last_px=D(price), fee=D(0), fee_currency="USD", liquidity=Liquidity.TAKER,
                          partial=partial))


def spec(**fields: Any) -> tuple[InstrumentSpec, ...]:
    return (InstrumentSpec(id=BTC, quantity_step=D("0.01"), min_quantity=D("0.01"), **fields),)


# -- instrument known and tradable -------------------------------------------------------------------


def test_an_unlisted_instrument_trades_with_default_rules_unless_known_instruments_are_required() -> None:
    submitted(decide(sig(instrument=SOL)))
    decision = denied(decide(sig(instrument=SOL), require_known_instruments=True), DenyReason.UNKNOWN_INSTRUMENT)
    assert SOL in decision.reason


def test_a_listed_instrument_passes_when_known_instruments_are_required() -> None:
    submitted(decide(sig(instrument=ETH), require_known_instruments=True))


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_an_instrument_configured_not_tradable_is_denied_even_for_a_close(side: Side) -> None:
    decision = decide(sig(side), snapshot(position(BTC, "4")), instruments=spec(tradable=False))
    assert "not tradable" in denied(decision, DenyReason.INSTRUMENT_NOT_TRADABLE).reason


# -- price precision ---------------------------------------------------------------------------------


def test_a_limit_price_on_the_tick_grid_passes() -> None:
    signal = sig(order_type=OrderType.LIMIT, limit="99.99")
    assert submitted(decide(signal, instruments=spec(price_tick=D("0.01")))).limit_price == D("99.99")


def test_a_limit_price_off_the_tick_grid_is_denied_not_rounded() -> None:
    signal = sig(order_type=OrderType.LIMIT, limit="99.995")
    decision = denied(decide(signal, instruments=spec(price_tick=D("0.01"))), DenyReason.INVALID_ORDER)
    assert "limit price 99.995 is not a multiple of the price tick 0.01" in decision.reason


def test_a_trigger_price_off_the_tick_grid_is_denied() -> None:
    signal = sig(order_type=OrderType.STOP_MARKET, trigger="100.5")
    denied(decide(signal, instruments=spec(price_tick=D("1"))), DenyReason.INVALID_ORDER)
    submitted(decide(sig(order_type=OrderType.STOP_MARKET, trigger="101"), instruments=spec(price_tick=D("1"))))


# -- price band (fat finger) -------------------------------------------------------------------------
# band 10% around the last bar close 100: 90 and 110 are exactly at the band


@pytest.mark.parametrize("limit", ["110", "90"])
def test_a_limit_price_exactly_at_the_band_passes(limit: str) -> None:
    ctx = RiskContext()
    ctx.observe_price(BTC, T0, D("100"))
    submitted(decide(sig(order_type=OrderType.LIMIT, limit=limit), ctx=ctx, price_band_pct=0.10))


@pytest.mark.parametrize("limit", ["110.01", "89.99"])
def test_a_limit_price_just_outside_the_band_is_denied_price_band(limit: str) -> None:
    ctx = RiskContext()
    ctx.observe_price(BTC, T0, D("100"))
    decision = denied(decide(sig(order_type=OrderType.LIMIT, limit=limit), ctx=ctx, price_band_pct=0.10),
                      DenyReason.PRICE_BAND)
    assert f"limit price {limit} is 10.01% from the last bar close 100" in decision.reason
    assert "band 10%" in decision.reason


def test_without_a_bar_close_the_band_is_around_the_signal_price() -> None:
    submitted(decide(sig(price="100", order_type=OrderType.LIMIT, limit="110"), price_band_pct=0.10))
    denied(decide(sig(price="100", order_type=OrderType.LIMIT, limit="110.01"), price_band_pct=0.10),
           DenyReason.PRICE_BAND)


def test_a_signal_price_outside_the_band_of_the_last_bar_close_is_denied() -> None:
    ctx = RiskContext()
    ctx.observe_price(BTC, T0, D("100"))
    submitted(decide(sig(price="110"), ctx=ctx, price_band_pct=0.10, max_position_pct=0.5))
    decision = denied(decide(sig(price="110.01"), ctx=ctx, price_band_pct=0.10), DenyReason.PRICE_BAND)
    assert "signal price 110.01" in decision.reason


def test_a_market_exit_is_never_stopped_by_its_signal_price() -> None:
    ctx = RiskContext()
    ctx.observe_price(BTC, T0, D("100"))
    order = submitted(decide(sig(Side.SELL, price="150"), snapshot(position(BTC, "4")), ctx=ctx, price_band_pct=0.10))
    assert (order.quantity, order.reduce_only) == (D("4"), True)


def test_a_stop_trigger_outside_the_band_is_denied() -> None:
    ctx = RiskContext()
    ctx.observe_price(BTC, T0, D("100"))
    denied(decide(sig(order_type=OrderType.STOP_MARKET, trigger="111"), ctx=ctx, price_band_pct=0.10),
           DenyReason.PRICE_BAND)


def test_the_band_checks_closing_orders_too() -> None:
    ctx = RiskContext()
    ctx.observe_price(BTC, T0, D("100"))
    exit_at_50 = sig(Side.SELL, order_type=OrderType.LIMIT, limit="50")
    denied(decide(exit_at_50, snapshot(position(BTC, "4")), ctx=ctx, price_band_pct=0.10), DenyReason.PRICE_BAND)


def test_the_band_is_off_by_default() -> None:
    ctx = RiskContext()
    ctx.observe_price(BTC, T0, D("100"))
    submitted(decide(sig(order_type=OrderType.LIMIT, limit="150"), ctx=ctx))


# -- the venue's quantity and notional limits --------------------------------------------------------


def test_an_entry_exactly_at_the_venue_max_quantity_passes_unchanged() -> None:
    assert submitted(decide(sig(), instruments=spec(max_quantity=D("10")))).quantity == D("10")


def test_an_entry_over_the_venue_max_quantity_is_clipped_to_it() -> None:
    # sized 10 > 9.99
    assert submitted(decide(sig(), instruments=spec(max_quantity=D("9.99")))).quantity == D("9.99")


def test_a_close_over_the_venue_max_quantity_is_trimmed_to_a_partial_close() -> None:
    order = submitted(decide(sig(Side.SELL), snapshot(position(BTC, "50")), instruments=spec(max_quantity=D("20"))))
    assert (order.quantity, order.reduce_only) == (D("20"), True)


def test_an_entry_exactly_at_the_venue_max_notional_passes_unchanged() -> None:
    # 10 units at 100 = 1000
    assert submitted(decide(sig(), instruments=spec(max_notional=D("1000")))).quantity == D("10")


def test_an_entry_over_the_venue_max_notional_is_clipped() -> None:
    # 999.99 / 100 = 9.9999 -> 9.99
    assert submitted(decide(sig(), instruments=spec(max_notional=D("999.99")))).quantity == D("9.99")


def test_the_notional_of_a_limit_order_is_counted_at_its_limit_price() -> None:
    # sized 10 at the signal price 100; at the limit 101 that is 1010 > 1000: 1000 / 101 = 9.90
    signal = sig(order_type=OrderType.LIMIT, limit="101")
    assert submitted(decide(signal, instruments=spec(max_notional=D("1000")))).quantity == D("9.90")


def test_a_venue_max_notional_below_one_step_is_denied_invalid_order() -> None:
    # 0.5 / 100 = 0.005 < min quantity 0.01
    decision = denied(decide(sig(), instruments=spec(max_notional=D("0.5"))), DenyReason.INVALID_ORDER)
    assert "max notional 0.5" in decision.reason


def test_an_entry_exactly_at_the_venue_min_notional_passes() -> None:
    submitted(decide(sig(), instruments=spec(min_notional=D("1000"))))


def test_an_entry_just_under_the_venue_min_notional_is_denied_size_zero() -> None:
    decision = denied(decide(sig(), instruments=spec(min_notional=D("1000.01"))), DenyReason.SIZE_ZERO)
    assert "order notional 1000.00 < min notional 1000.01" in decision.reason


def test_a_full_close_below_the_min_notional_is_still_sent() -> None:
    # 0.05 at 100 = 5 < 10: a position must always be exitable
    order = submitted(decide(sig(Side.SELL), snapshot(position(BTC, "0.05")), instruments=spec(min_notional=D("10"))))
    assert order.quantity == D("0.05")


def test_a_partial_reduction_below_the_min_notional_is_denied_size_zero() -> None:
    # target 0.099 of 10000 = 990 vs 1000 held: sell 0.1 (10) < min notional 20
    decision = decide(sig(Side.SELL, target="0.099"), snapshot(position(BTC, "10")),
                      instruments=spec(min_notional=D("20")))
    assert "reduction notional 10.00 < min notional 20" in denied(decision, DenyReason.SIZE_ZERO).reason


def test_venue_limits_are_validated_at_start() -> None:
    with pytest.raises(ValueError, match="max_quantity"):
        InstrumentSpec(id=BTC, min_quantity=D("1"), max_quantity=D("0.5"))
    with pytest.raises(ValueError, match="max_notional"):
        InstrumentSpec(id=BTC, min_notional=D("10"), max_notional=D("5"))
    with pytest.raises(ValueError, match="min_notional"):
        InstrumentSpec(id=BTC, min_notional=D("0"))


# -- max notional per order ----------------------------------------------------------------------------


def test_an_order_exactly_at_the_max_order_notional_passes_unchanged() -> None:
    assert submitted(decide(sig(), max_order_notional=D("1000"))).quantity == D("10")


def test_an_order_over_the_max_order_notional_is_clipped() -> None:
    assert submitted(decide(sig(), max_order_notional=D("999.99"))).quantity == D("9.99")


def test_a_max_order_notional_below_one_step_is_denied_max_order_notional() -> None:
    decision = denied(decide(sig(), max_order_notional=D("0.99")), DenyReason.MAX_ORDER_NOTIONAL)
    assert "max order notional 0.99" in decision.reason


def test_the_max_order_notional_counts_a_flips_closing_part() -> None:
    # long 4 (400) then a flip: 1000 - 400 leaves 600 for the short: one SELL of 4 + 6
    order = submitted(decide(sig(Side.SELL), snapshot(position(BTC, "4")), allow_short=True,
                             reverse_on_opposite=True, max_order_notional=D("1000")))
    assert (order.quantity, order.reduce_only) == (D("10"), False)


def test_a_close_is_not_held_to_the_max_order_notional() -> None:
    order = submitted(decide(sig(Side.SELL), snapshot(position(BTC, "50")), max_order_notional=D("1000")))
    assert order.quantity == D("50")


# -- free balance including open orders ------------------------------------------------------------
# cash 10000, an entry of 10 at 100 costs 1000


def test_open_buy_orders_leaving_exactly_the_cost_free_pass() -> None:
    ctx = RiskContext()
    open_order(ctx, Side.BUY, "90", limit="100")  # 9000 reserved, 1000 free
    submitted(decide(sig(instrument=BTC), ctx=ctx, reserve_open_orders=True))


def test_open_buy_orders_leaving_less_than_the_cost_free_deny_insufficient_cash() -> None:
    ctx = RiskContext()
    open_order(ctx, Side.BUY, "90.01", limit="100", instrument=ETH)  # 9001 reserved, 999 free
    decision = denied(decide(sig(), ctx=ctx, reserve_open_orders=True), DenyReason.INSUFFICIENT_CASH)
    assert decision.reason.startswith("cost 1000.00 (")
    assert "> free cash 999.00 (cash 10000.00 - open BUY orders 9001.00)" in decision.reason


def test_open_orders_are_not_reserved_by_default() -> None:
    ctx = RiskContext()
    open_order(ctx, Side.BUY, "95", limit="100", instrument=ETH)
    submitted(decide(sig(), ctx=ctx))


def test_open_sell_orders_and_filled_buys_reserve_nothing() -> None:
    ctx = RiskContext()
    open_order(ctx, Side.SELL, "95", limit="100", instrument=ETH)
    bought = open_order(ctx, Side.BUY, "95", limit="100", instrument=ETH)
    fill(ctx, bought, Side.BUY, "95", instrument=ETH)
    submitted(decide(sig(), ctx=ctx, reserve_open_orders=True))


def test_a_partially_filled_buy_reserves_only_what_is_left() -> None:
    ctx = RiskContext()
    coid = open_order(ctx, Side.BUY, "95", limit="100", instrument=ETH)
    fill(ctx, coid, Side.BUY, "5", instrument=ETH, partial=True)  # 90 left: 9000 reserved
    submitted(decide(sig(), ctx=ctx, reserve_open_orders=True))


def test_an_open_market_order_is_reserved_at_its_signal_price() -> None:
    ctx = RiskContext()
    open_order(ctx, Side.BUY, "90.01", price="100", instrument=ETH)
    denied(decide(sig(), ctx=ctx, reserve_open_orders=True), DenyReason.INSUFFICIENT_CASH)


def test_an_open_order_without_any_known_price_is_unknown_price() -> None:
    ctx = RiskContext()
    ctx.restore_orders([{"client_order_id": "tw-rebuilt-0001", "strategy_id": "sma_cross", "instrument_id": ETH,
                         "side": "BUY", "quantity": "5", "limit_price": None, "status": "ACCEPTED",
                         "filled_qty": "0", "created_ts": T0}])
    decision = denied(decide(sig(), ctx=ctx, reserve_open_orders=True), DenyReason.UNKNOWN_PRICE)
    assert "tw-rebuilt-0001" in decision.reason
    ctx.observe_price(ETH, T0, D("100"))
    submitted(decide(sig(), ctx=ctx, reserve_open_orders=True))


# -- max open orders ---------------------------------------------------------------------------------


def test_an_entry_that_reaches_exactly_the_max_open_orders_passes() -> None:
    ctx = RiskContext()
    open_order(ctx, Side.BUY, "1", instrument=ETH)
    submitted(decide(sig(), ctx=ctx, max_open_orders=2))


def test_an_entry_beyond_the_max_open_orders_is_denied() -> None:
    ctx = RiskContext()
    open_order(ctx, Side.BUY, "1", instrument=ETH)
    open_order(ctx, Side.BUY, "1", instrument=ETH, strategy="other")
    decision = denied(decide(sig(), ctx=ctx, max_open_orders=2), DenyReason.MAX_OPEN_ORDERS)
    assert "2 open orders: one more would exceed max_open_orders 2" in decision.reason


def test_the_per_strategy_limit_counts_only_the_strategys_own_orders() -> None:
    ctx = RiskContext()
    open_order(ctx, Side.BUY, "1", instrument=ETH, strategy="other")
    submitted(decide(sig(), ctx=ctx, max_open_orders_per_strategy=1))  # now sma_cross has one open order
    decision = denied(decide(sig(), ctx=ctx, max_open_orders_per_strategy=1), DenyReason.MAX_OPEN_ORDERS)
    assert "1 open orders of sma_cross" in decision.reason


def test_a_cancelled_order_no_longer_counts_as_open() -> None:
    ctx = RiskContext()
    coid = open_order(ctx, Side.BUY, "1", instrument=ETH)
    denied(decide(sig(), ctx=ctx, max_open_orders=1), DenyReason.MAX_OPEN_ORDERS)
    ctx.apply(OrderCanceled(id=derive_id("cxl", coid), ts_event=T0, ts_init=T0, strategy_id="sma_cross",
                            instrument_id=ETH, client_order_id=coid))
    submitted(decide(sig(), ctx=ctx, max_open_orders=1))


def test_a_close_passes_at_the_max_open_orders() -> None:
    ctx = RiskContext()
    open_order(ctx, Side.BUY, "1", instrument=ETH)
    order = submitted(decide(sig(Side.SELL), snapshot(position(BTC, "4")), ctx=ctx, max_open_orders=1))
    assert order.reduce_only


def test_the_engines_own_orders_count_as_open_until_they_fill() -> None:
    engine = RiskEngine(make_config(max_open_orders=1))
    ctx = RiskContext()
    first = submitted(engine.evaluate(sig(instrument=ETH), snapshot(), ACTIVE, now_ns=T0, context=ctx))
    denied(engine.evaluate(sig(), snapshot(), ACTIVE, now_ns=T0, context=ctx), DenyReason.MAX_OPEN_ORDERS)
    fill(ctx, first.client_order_id, Side.BUY, "10", instrument=ETH)
    submitted(engine.evaluate(sig(), snapshot(), ACTIVE, now_ns=T0, context=ctx))


# -- submit rate per strategy and per venue ----------------------------------------------------------
# 2 orders per minute: the window at time t holds the orders with event time in (t - 60 s, t]


def rate_engine(**config: Any) -> tuple[RiskEngine, RiskContext]:
    return RiskEngine(make_config(max_position_pct=1.0, max_exposure_pct=1.0, **config)), RiskContext()


def test_the_last_order_the_per_strategy_rate_allows_passes_and_the_next_is_denied() -> None:
    engine, ctx = rate_engine(max_orders_per_minute_per_strategy=2)
    submitted(engine.evaluate(sig(ts=T0), snapshot(), ACTIVE, now_ns=T0, context=ctx))
    submitted(engine.evaluate(sig(ts=T0 + SECOND), snapshot(), ACTIVE, now_ns=T0, context=ctx))
    late = sig(ts=T0 + MINUTE - 1)  # the first order is 1 ns short of a minute old: still in the window
    decision = denied(engine.evaluate(late, snapshot(), ACTIVE, now_ns=T0, context=ctx), DenyReason.RATE_LIMIT)
    assert "2 orders of sma_cross in the minute" in decision.reason
    assert "max_orders_per_minute_per_strategy 2" in decision.reason


def test_an_order_exactly_a_minute_old_leaves_the_rate_window() -> None:
    engine, ctx = rate_engine(max_orders_per_minute_per_strategy=2)
    for ts in (T0, T0 + SECOND):
        submitted(engine.evaluate(sig(ts=ts), snapshot(), ACTIVE, now_ns=T0, context=ctx))
    submitted(engine.evaluate(sig(ts=T0 + MINUTE), snapshot(), ACTIVE, now_ns=T0, context=ctx))


def test_the_strategy_rate_counts_only_that_strategy() -> None:
    engine, ctx = rate_engine(max_orders_per_minute_per_strategy=1)
    submitted(engine.evaluate(sig(strategy="other"), snapshot(), ACTIVE, now_ns=T0, context=ctx))
    submitted(engine.evaluate(sig(), snapshot(), ACTIVE, now_ns=T0, context=ctx))


def test_the_venue_rate_counts_every_strategy_on_the_venue() -> None:
    engine, ctx = rate_engine(max_orders_per_minute_per_venue=2)
    submitted(engine.evaluate(sig(strategy="one"), snapshot(), ACTIVE, now_ns=T0, context=ctx))
    submitted(engine.evaluate(sig(strategy="two", instrument=ETH), snapshot(), ACTIVE, now_ns=T0, context=ctx))
    decision = denied(engine.evaluate(sig(strategy="three"), snapshot(), ACTIVE, now_ns=T0, context=ctx),
                      DenyReason.RATE_LIMIT)
    assert "2 orders on BINANCE" in decision.reason


def test_denied_signals_do_not_count_towards_the_rate() -> None:
    engine, ctx = rate_engine(max_orders_per_minute_per_strategy=1)
    denied(engine.evaluate(sig(Side.SELL), snapshot(), ACTIVE, now_ns=T0, context=ctx), DenyReason.NO_POSITION)
    submitted(engine.evaluate(sig(), snapshot(), ACTIVE, now_ns=T0, context=ctx))


def test_a_close_passes_beyond_the_rate() -> None:
    engine, ctx = rate_engine(max_orders_per_minute_per_strategy=1)
    submitted(engine.evaluate(sig(instrument=ETH), snapshot(), ACTIVE, now_ns=T0, context=ctx))
    close = engine.evaluate(sig(Side.SELL), snapshot(position(BTC, "4")), ACTIVE, now_ns=T0, context=ctx)
    assert submitted(close).reduce_only


# -- duplicate client order id --------------------------------------------------------------------------


def test_a_signal_whose_client_order_id_the_ledger_already_has_is_denied_under_an_id_of_its_own() -> None:
    signal = sig()
    coid = client_order_id(signal.strategy_id, signal.id)
    ctx = RiskContext()  # a restarted risk: its signal memory is empty, the ledger knows the order
    ctx.restore_orders([{"client_order_id": coid, "strategy_id": "sma_cross", "instrument_id": BTC, "side": "BUY",
                         "quantity": "10", "limit_price": None, "status": "FILLED", "filled_qty": "10",
                         "created_ts": T0}])
    decision = denied(decide(signal, ctx=ctx), DenyReason.DUPLICATE_ORDER)
    assert coid in decision.reason
    assert decision.client_order_id != coid  # the original order's record stays as it is


def test_a_repeated_signal_is_denied_under_an_id_of_its_own() -> None:
    engine, ctx = RiskEngine(make_config()), RiskContext()
    signal = sig()
    order = submitted(engine.evaluate(signal, snapshot(), ACTIVE, now_ns=T0, context=ctx))
    again = denied(engine.evaluate(signal, snapshot(), ACTIVE, now_ns=T0, context=ctx), DenyReason.DUPLICATE_ORDER)
    assert again.client_order_id != order.client_order_id


# -- reduce-only orders ----------------------------------------------------------------------------------


def close_plan(side: Side, quantity: str) -> Plan:
    return Plan(side, D(quantity), D(0), opening=False, full_close=True)


@pytest.mark.parametrize(("side", "quantity", "held"), [
    (Side.SELL, "4.01", "4"),  # larger than the long
    (Side.SELL, "1", "-4"),  # same side as the short: would increase it
    (Side.BUY, "1", "4"),  # same side as the long
    (Side.SELL, "1", "0"),  # nothing to reduce
])
def test_a_reduce_only_order_that_would_increase_or_open_a_position_is_denied(side: Side, quantity: str,
                                                                               held: str) -> None:
    (btc,) = spec()
    result = close_quantity(make_config(), close_plan(side, quantity), sig(side), D(held), btc, RiskContext())
    assert not isinstance(result, tuple) and result.code is DenyReason.REDUCE_ONLY


def test_a_reduce_only_order_of_exactly_the_position_passes() -> None:
    (btc,) = spec()
    assert close_quantity(make_config(), close_plan(Side.SELL, "4"), sig(Side.SELL), D("4"), btc,
                          RiskContext()) == (D("4"), True)


def test_open_reduce_only_orders_are_not_netted_by_default() -> None:
    ctx = RiskContext()
    open_order(ctx, Side.SELL, "3", reduce_only=True, limit="120")
    assert submitted(decide(sig(Side.SELL), snapshot(position(BTC, "4")), ctx=ctx)).quantity == D("4")


def test_a_close_is_trimmed_to_what_open_reduce_only_orders_leave() -> None:
    # long 4, a resting reduce-only SELL of 3: the exit sells the last 1
    ctx = RiskContext()
    open_order(ctx, Side.SELL, "3", reduce_only=True, limit="120")
    order = submitted(decide(sig(Side.SELL), snapshot(position(BTC, "4")), ctx=ctx, reduce_only_nets_open_orders=True))
    assert (order.quantity, order.reduce_only) == (D("1"), True)


def test_a_close_with_the_whole_position_already_being_closed_is_denied_reduce_only() -> None:
    ctx = RiskContext()
    open_order(ctx, Side.SELL, "4", reduce_only=True, limit="120")
    decision = decide(sig(Side.SELL), snapshot(position(BTC, "4")), ctx=ctx, reduce_only_nets_open_orders=True)
    assert "already close 4" in denied(decision, DenyReason.REDUCE_ONLY).reason


def test_netting_ignores_other_instruments_sides_and_entry_orders() -> None:
    ctx = RiskContext()
    open_order(ctx, Side.SELL, "4", reduce_only=True, instrument=ETH, limit="120")
    open_order(ctx, Side.BUY, "4", reduce_only=True, limit="80")
    open_order(ctx, Side.SELL, "4", limit="120")
    order = submitted(decide(sig(Side.SELL), snapshot(position(BTC, "4")), ctx=ctx, reduce_only_nets_open_orders=True))
    assert order.quantity == D("4")


# -- daily loss limit ----------------------------------------------------------------------------------
# 5%: the day started at equity 10000 (the last equity seen before 00:00 UTC), so 9500 is exactly at it


def day_context(start: str = "10000") -> RiskContext:
    ctx = RiskContext()
    ctx.observe_equity(DAY0 - HOUR, D("12000"))  # yesterday's peak
    ctx.observe_equity(DAY0 - MINUTE, D(start))  # yesterday's close: today's reference
    return ctx


def test_a_loss_exactly_at_the_daily_limit_still_allows_entries() -> None:
    submitted(decide(sig(), snapshot(equity="9500"), ctx=day_context(), daily_loss_limit_pct=0.05))


def test_a_loss_just_over_the_daily_limit_denies_entries() -> None:
    decision = denied(decide(sig(), snapshot(equity="9499.99"), ctx=day_context(), daily_loss_limit_pct=0.05),
                      DenyReason.DAILY_LOSS_LIMIT)
    assert "equity 9499.99 is 500.01 below the start-of-day equity 10000" in decision.reason


def test_a_daily_loss_over_the_limit_still_allows_closing() -> None:
    order = submitted(decide(sig(Side.SELL), snapshot(position(BTC, "4"), equity="9000"), ctx=day_context(),
                             daily_loss_limit_pct=0.05))
    assert order.reduce_only


def test_a_flip_after_the_daily_loss_limit_sends_only_its_close() -> None:
    order = submitted(decide(sig(Side.SELL), snapshot(position(BTC, "4"), equity="9000"), ctx=day_context(),
                             daily_loss_limit_pct=0.05, allow_short=True, reverse_on_opposite=True))
    assert (order.quantity, order.reduce_only) == (D("4"), True)


def test_the_next_utc_day_starts_from_the_equity_the_day_before_ended_with() -> None:
    ctx = day_context()
    denied(decide(sig(), snapshot(equity="9000"), ctx=ctx, daily_loss_limit_pct=0.05), DenyReason.DAILY_LOSS_LIMIT)
    tomorrow = DAY0 + DAY + SECOND
    submitted(decide(sig(ts=tomorrow), snapshot(equity="9000", as_of=tomorrow), ctx=ctx, daily_loss_limit_pct=0.05))
    assert ctx.day_start_equity == D("9000")


def test_the_first_equity_seen_is_the_first_days_reference() -> None:
    ctx = RiskContext()
    ctx.observe_equity(T0, D("10000"))
    denied(decide(sig(), snapshot(equity="9499.99", as_of=T0 + HOUR), ctx=ctx, daily_loss_limit_pct=0.05),
           DenyReason.DAILY_LOSS_LIMIT)


# -- max drawdown ---------------------------------------------------------------------------------------
# 10% below the peak 12000 (day_context's): 10800 is exactly at it


def test_a_drawdown_exactly_at_the_limit_still_allows_entries() -> None:
    submitted(decide(sig(), snapshot(equity="10800"), ctx=day_context(), max_drawdown_pct=0.10))


def test_a_drawdown_just_over_the_limit_denies_entries_but_not_closes() -> None:
    decision = denied(decide(sig(), snapshot(equity="10799.99"), ctx=day_context(), max_drawdown_pct=0.10),
                      DenyReason.MAX_DRAWDOWN)
    assert "below its peak 12000" in decision.reason
    assert submitted(decide(sig(Side.SELL), snapshot(position(BTC, "4"), equity="10799.99"), ctx=day_context(),
                            max_drawdown_pct=0.10)).reduce_only


def test_a_new_high_raises_the_peak() -> None:
    ctx = day_context()
    submitted(decide(sig(), snapshot(equity="13000"), ctx=ctx, max_drawdown_pct=0.10))
    denied(decide(sig(), snapshot(equity="11699.99", as_of=T0 + 1), ctx=ctx, max_drawdown_pct=0.10),
           DenyReason.MAX_DRAWDOWN)


# -- per-strategy capital allocation --------------------------------------------------------------------
# sma_cross may use 5% of 10000 = 500: positions from its own fills (at the signal price) plus open entries


def allocation_context(held: str) -> RiskContext:
    ctx = RiskContext()
    coid = open_order(ctx, Side.BUY, held)
    fill(ctx, coid, Side.BUY, held)
    return ctx


def test_an_entry_filling_exactly_the_allocation_passes() -> None:
    # 4 held (400): room 100 -> 1 unit
    order = submitted(decide(sig(), snapshot(position(BTC, "4")), ctx=allocation_context("4"),
                             strategy_allocations={"sma_cross": 0.05}))
    assert order.quantity == D("1")


def test_an_entry_over_the_allocation_is_clipped() -> None:
    # 3 held (300): room 200 -> 2 units instead of 10
    order = submitted(decide(sig(), snapshot(position(BTC, "3")), ctx=allocation_context("3"),
                             strategy_allocations={"sma_cross": 0.05}))
    assert order.quantity == D("2")


def test_a_used_up_allocation_denies_strategy_allocation() -> None:
    decision = denied(decide(sig(), snapshot(position(BTC, "5")), ctx=allocation_context("5"),
                             strategy_allocations={"sma_cross": 0.05}), DenyReason.STRATEGY_ALLOCATION)
    assert "strategy sma_cross would use 1500.00 > allocation 500.00 (5% of equity 10000)" in decision.reason


def test_open_entry_orders_count_against_the_allocation() -> None:
    ctx = allocation_context("3")
    open_order(ctx, Side.BUY, "1.5", instrument=ETH, limit="100")  # 300 + 150 used: room 50
    order = submitted(decide(sig(), snapshot(position(BTC, "3")), ctx=ctx, strategy_allocations={"sma_cross": 0.05}))
    assert order.quantity == D("0.5")


def test_other_strategies_positions_and_unlisted_strategies_are_not_limited() -> None:
    ctx = RiskContext()
    coid = open_order(ctx, Side.BUY, "5", strategy="other", instrument=ETH)
    fill(ctx, coid, Side.BUY, "5", strategy="other", instrument=ETH)
    allocations = {"sma_cross": 0.05, "other": 0.01}
    assert submitted(decide(sig(), ctx=ctx, strategy_allocations=allocations)).quantity == D("5")
    assert submitted(decide(sig(strategy="third"), ctx=ctx, strategy_allocations=allocations)).quantity == D("10")


# -- unknown account ----------------------------------------------------------------------------------


def test_a_context_not_yet_rebuilt_from_the_ledger_denies_entries_but_passes_closes() -> None:
    ctx = RiskContext()
    ctx.complete = False
    decision = denied(decide(sig(), ctx=ctx), DenyReason.UNKNOWN_PORTFOLIO)
    assert "rebuilt from the ledger" in decision.reason
    assert submitted(decide(sig(Side.SELL), snapshot(position(BTC, "4")), ctx=ctx)).reduce_only


# -- defaults keep today's behaviour ----------------------------------------------------------------------


def test_with_default_checks_a_busy_context_changes_nothing() -> None:
    ctx = day_context()
    for _ in range(5):
        open_order(ctx, Side.BUY, "95", limit="100", instrument=ETH)
    ctx.observe_price(BTC, T0, D("200"))
    assert submitted(decide(sig(order_type=OrderType.LIMIT, limit="99"), snapshot(equity="5000"),
                            ctx=ctx)).quantity == D("5")
