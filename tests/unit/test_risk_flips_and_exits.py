"""Risk's flips (``reverse_on_opposite``) and the exits it attaches to entries (brackets).

Numbers as in test_risk_engine: equity 10000, price 100, fixed fraction 10% (10 units), position
limit 10%, exposure limit 25%, quantity step 0.01.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from tests.unit.test_risk_engine import (
    BTC,
    NOW,
    REDUCING,
    evaluate,
    make_config,
    make_portfolio,
    make_signal,
    position,
    submitted,
)
from tradewire_common.schemas import DenyReason, OrderDenied, OrderType, Side, Signal, TimeInForce
from tradewire_common.schemas.base import TradingState
from tradewire_risk.engine import RiskEngine
from tradewire_risk.sizing import all_in_flip_quantity

D = Decimal


def with_exits(signal: Signal, stop: str | None, take: str | None) -> Signal:
    return msgspec.structs.replace(
        signal, stop_loss_pct=None if stop is None else D(stop), take_profit_pct=None if take is None else D(take)
    )


# -- flips ---------------------------------------------------------------------------------------


def test_sell_against_a_long_flips_to_a_short_in_one_order_when_reversing_is_on() -> None:
    # long 4 (400): close 4, then open a 10-unit short (10% of 10000 at 100) -> one SELL of 14
    portfolio = make_portfolio(position(BTC, "4"))
    order = submitted(evaluate(make_signal(Side.SELL), portfolio, allow_short=True, reverse_on_opposite=True))
    assert (order.side, order.quantity, order.reduce_only) == (Side.SELL, D("14"), False)


def test_buy_against_a_short_flips_to_a_long_in_one_order_when_reversing_is_on() -> None:
    portfolio = make_portfolio(position(BTC, "-3"), cash="10300")
    order = submitted(evaluate(make_signal(Side.BUY), portfolio, allow_short=True, reverse_on_opposite=True))
    assert (order.side, order.quantity, order.reduce_only) == (Side.BUY, D("13"), False)


def test_sell_against_a_long_only_closes_it_when_reversing_is_off() -> None:
    portfolio = make_portfolio(position(BTC, "4"))
    order = submitted(evaluate(make_signal(Side.SELL), portfolio, allow_short=True))
    assert (order.side, order.quantity, order.reduce_only) == (Side.SELL, D("4"), True)


def test_reversing_needs_shorting_allowed() -> None:
    portfolio = make_portfolio(position(BTC, "4"))
    order = submitted(evaluate(make_signal(Side.SELL), portfolio, reverse_on_opposite=True))
    assert (order.quantity, order.reduce_only) == (D("4"), True)


def test_a_flip_in_reducing_state_sends_only_its_closing_part() -> None:
    portfolio = make_portfolio(position(BTC, "4"))
    order = submitted(evaluate(make_signal(Side.SELL), portfolio, REDUCING, allow_short=True,
                               reverse_on_opposite=True))
    assert (order.side, order.quantity, order.reduce_only) == (Side.SELL, D("4"), True)


def test_all_in_flip_opens_with_the_cash_the_close_leaves_paying_one_fixed_fee() -> None:
    # long 50 at 100, cash 5000, fee 10 bps, slippage 0, fixed fee 2:
    # close: 5000 + 50*100 - 50*100*0.001 - 2 = 9993; open: 9993 / (100 * 1.001) = 99.83016...
    config = make_config(sizing="all_in", cost_fee_bps=10.0, cost_fixed_fee=D(2), allow_short=True,
                         reverse_on_opposite=True)
    portfolio = make_portfolio(position(BTC, "50"), cash="5000")
    order = submitted(RiskEngine(config).evaluate(make_signal(Side.SELL), portfolio, TradingState.ACTIVE, now_ns=NOW))
    assert order.quantity == D("50") + D("99.83")


def test_all_in_flip_quantity_closing_a_short_pays_the_buy_back_first() -> None:
    config = make_config(cost_fee_bps=0.0, cost_slippage_bps=100.0)
    # short 10 at 100 with slippage 1%: buy back at 101 -> cash 2000 - 1010 = 990; open 990 / 101 = 9.80...
    qty, note = all_in_flip_quantity(D(2000), D(10), Side.BUY, D(100), config, D("0.01"))
    assert qty == D("9.80")
    assert "flip" in note


def test_all_in_flip_with_nothing_left_opens_nothing() -> None:
    config = make_config(cost_fixed_fee=D(5000))
    qty, _ = all_in_flip_quantity(D(1000), D(10), Side.SELL, D(100), config, D("0.01"))
    assert qty == 0


# -- exits ---------------------------------------------------------------------------------------


def test_entries_carry_the_configured_default_exits() -> None:
    order = submitted(evaluate(make_signal(Side.BUY), stop_loss_pct=0.02, take_profit_pct=0.05))
    assert (order.stop_loss_pct, order.take_profit_pct) == (D("0.02"), D("0.05"))


def test_a_signal_overrides_the_default_exits() -> None:
    signal = with_exits(make_signal(Side.BUY), "0.01", None)
    order = submitted(evaluate(signal, stop_loss_pct=0.02, take_profit_pct=0.05))
    assert (order.stop_loss_pct, order.take_profit_pct) == (D("0.01"), D("0.05"))


def test_entries_carry_no_exits_by_default() -> None:
    order = submitted(evaluate(make_signal(Side.BUY)))
    assert (order.stop_loss_pct, order.take_profit_pct) == (None, None)


def test_closing_orders_carry_no_exits() -> None:
    portfolio = make_portfolio(position(BTC, "4"))
    order = submitted(evaluate(make_signal(Side.SELL), portfolio, stop_loss_pct=0.02, take_profit_pct=0.05))
    assert order.reduce_only
    assert (order.stop_loss_pct, order.take_profit_pct) == (None, None)


def test_a_flip_carries_exits_for_its_new_position() -> None:
    portfolio = make_portfolio(position(BTC, "4"))
    order = submitted(evaluate(make_signal(Side.SELL), portfolio, allow_short=True, reverse_on_opposite=True,
                               stop_loss_pct=0.03))
    assert (order.reduce_only, order.stop_loss_pct) == (False, D("0.03"))


# -- order types ---------------------------------------------------------------------------------


def test_a_limit_signal_becomes_a_limit_order_sized_at_the_signal_price() -> None:
    signal = msgspec.structs.replace(make_signal(Side.BUY), order_type=OrderType.LIMIT, limit_price=D("99"),
                                     time_in_force=TimeInForce.DAY)
    order = submitted(evaluate(signal))
    assert (order.order_type, order.limit_price, order.time_in_force, order.quantity) == (
        OrderType.LIMIT, D("99"), TimeInForce.DAY, D("10"))


def test_a_stop_signal_becomes_a_stop_order() -> None:
    signal = msgspec.structs.replace(make_signal(Side.BUY), order_type=OrderType.STOP_MARKET,
                                     trigger_price=D("105"))
    order = submitted(evaluate(signal))
    assert (order.order_type, order.trigger_price, order.limit_price) == (OrderType.STOP_MARKET, D("105"), None)


@pytest.mark.parametrize(
    ("order_type", "prices", "message"),
    [
        (OrderType.LIMIT, {}, "needs limit_price"),
        (OrderType.STOP_MARKET, {}, "needs trigger_price"),
        (OrderType.STOP_LIMIT, {"trigger_price": "105"}, "needs limit_price"),
        (OrderType.MARKET, {"limit_price": "99"}, "must not carry limit_price"),
        (OrderType.LIMIT, {"limit_price": "-1"}, "limit_price"),
    ],
)
def test_a_signal_with_prices_that_do_not_fit_its_order_type_is_invalid(
    order_type: OrderType, prices: dict[str, str], message: str
) -> None:
    raw = msgspec.json.encode(make_signal(Side.BUY))
    data = msgspec.json.decode(raw)
    data.update({"order_type": order_type.value, **prices})
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.json.decode(msgspec.json.encode(data), type=Signal)


def test_all_in_refuses_to_add_to_the_position_it_holds() -> None:
    config = make_config(sizing="all_in", allow_short=True)
    long = make_portfolio(position(BTC, "50"), cash="5000")
    decision = RiskEngine(config).evaluate(make_signal(Side.BUY), long, TradingState.ACTIVE, now_ns=NOW)
    assert isinstance(decision, OrderDenied) and decision.reason_code is DenyReason.ALREADY_IN_POSITION
    short = make_portfolio(position(BTC, "-5"), cash="10500")
    decision = RiskEngine(config).evaluate(make_signal(Side.SELL), short, TradingState.ACTIVE, now_ns=NOW)
    assert isinstance(decision, OrderDenied) and decision.reason_code is DenyReason.ALREADY_IN_POSITION
