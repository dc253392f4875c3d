"""The risk engine's decisions: sizing, limits at their boundaries, trading states, ids.

Unless a test says otherwise: equity 10000, price 100, fixed fraction 10% (10 units), position
limit 10% (notional 1000), exposure limit 25% (notional 2500), quantity step and minimum 0.01.
Expected quantities are worked out by hand in the comments.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from tradewire_common.config import InstrumentSpec, RiskConfig
from tradewire_common.ids import client_order_id, derive_id
from tradewire_common.schemas import (
    DenyReason,
    OrderDenied,
    OrderType,
    PortfolioSnapshot,
    PositionSnapshot,
    Side,
    Signal,
    SubmitOrder,
    TimeInForce,
    TradingState,
)
from tradewire_risk.engine import RiskEngine

D = Decimal
BTC = "BTCUSDT.BINANCE"
ETH = "ETHUSDT.BINANCE"
SOL = "SOLUSDT.BINANCE"  # not in the config: default step 0.000001
NOW = 1_700_000_000_000_000_000
ACTIVE = TradingState.ACTIVE
REDUCING = TradingState.REDUCING
HALTED = TradingState.HALTED

_ids = itertools.count(1)


def make_config(**overrides: Any) -> RiskConfig:
    values: dict[str, Any] = {
        "fraction": 0.10,
        "max_position_pct": 0.10,
        "max_exposure_pct": 0.25,
        "instruments": (
            InstrumentSpec(id=BTC, quantity_step=D("0.01"), min_quantity=D("0.01")),
            InstrumentSpec(id=ETH, quantity_step=D("0.01"), min_quantity=D("0.01")),
        ),
    }
    values.update(overrides)
    return RiskConfig(**values)


def make_signal(
    side: Side = Side.BUY,
    price: str = "100",
    *,
    instrument: str = BTC,
    target: str | None = None,
    win_probability: float | None = None,
    payoff_ratio: str | None = None,
    signal_id: str | None = None,
    correlation_id: str = "",
) -> Signal:
    n = next(_ids)
    return Signal(
        id=signal_id or derive_id("test-signal", n),
        ts_event=1_000_000 + n,
        ts_init=2_000_000 + n,
        correlation_id=correlation_id,
        strategy_id="sma_cross",
        instrument_id=instrument,
        side=side,
        price=D(price),
        confidence=1.0,
        reason="test",
        target=None if target is None else D(target),
        win_probability=win_probability,
        payoff_ratio=None if payoff_ratio is None else D(payoff_ratio),
    )


def position(instrument: str, quantity: str, last_price: str = "100") -> PositionSnapshot:
    return PositionSnapshot(
        instrument_id=instrument,
        quantity=D(quantity),
        avg_price=D(last_price),
        last_price=D(last_price),
        realized_pnl=D(0),
        unrealized_pnl=D(0),
    )


def make_portfolio(
    *positions: PositionSnapshot, cash: str | None = None, equity: str = "10000"
) -> PortfolioSnapshot:
    """A snapshot with ``equity``; cash defaults to equity minus the positions' value."""
    value = sum((p.quantity * p.last_price for p in positions), D(0))
    gross = sum((abs(p.quantity * p.last_price) for p in positions), D(0))
    return PortfolioSnapshot(
        id=derive_id("test-portfolio", next(_ids)),
        ts_event=1,
        ts_init=1,
        account="paper",
        cash=D(equity) - value if cash is None else D(cash),
        equity=D(equity),
        realized_pnl=D(0),
        unrealized_pnl=D(0),
        gross_exposure=gross,
        positions=positions,
        as_of=10**18,
    )


def evaluate(
    signal: Signal,
    portfolio: PortfolioSnapshot | None = None,
    state: TradingState = ACTIVE,
    **config: Any,
) -> SubmitOrder | OrderDenied:
    engine = RiskEngine(make_config(**config))
    return engine.evaluate(
        signal, portfolio if portfolio is not None else make_portfolio(), state, now_ns=NOW
    )


def submitted(decision: SubmitOrder | OrderDenied) -> SubmitOrder:
    assert isinstance(decision, SubmitOrder), decision
    return decision


def denied(decision: SubmitOrder | OrderDenied, code: DenyReason) -> OrderDenied:
    assert isinstance(decision, OrderDenied), decision
    assert decision.reason_code is code, decision.reason
    return decision


# -- entries and fixed-fraction sizing --------------------------------------------------------


def test_buy_with_no_position_buys_the_configured_fraction_of_equity_at_market() -> None:
    order = submitted(evaluate(make_signal(Side.BUY, "100")))
    # 10000 * 10% / 100 = 10
    assert order.side is Side.BUY
    assert order.quantity == D("10")
    assert order.order_type is OrderType.MARKET
    assert order.time_in_force is TimeInForce.GTC
    assert order.limit_price is None
    assert order.reduce_only is False


def test_entry_quantity_is_rounded_down_to_the_instrument_step() -> None:
    # 10000 * 10% / 300 = 3.333.. -> 3.33 with step 0.01
    order = submitted(evaluate(make_signal(Side.BUY, "300")))
    assert order.quantity == D("3.33")


def test_unlisted_instrument_uses_the_default_step_of_one_millionth() -> None:
    # 10000 * 10% / 30000 = 0.0333.. -> 0.033333
    order = submitted(evaluate(make_signal(Side.BUY, "30000", instrument=SOL)))
    exact = Fraction(10000) * Fraction(1, 10) / 30000
    assert Fraction(order.quantity) == (exact // Fraction(1, 10**6)) * Fraction(1, 10**6)
    assert order.quantity == D("0.033333")


def test_entry_below_the_instrument_minimum_is_denied_size_zero() -> None:
    config: dict[str, Any] = {
        "instruments": (InstrumentSpec(id=BTC, quantity_step=D("0.01"), min_quantity=D("1")),)
    }
    # 1000 / 2000 = 0.5 < min quantity 1
    decision = denied(evaluate(make_signal(Side.BUY, "2000"), **config), DenyReason.SIZE_ZERO)
    assert "0.5" in decision.reason and "min quantity 1" in decision.reason


def test_entry_with_no_equity_is_denied_size_zero() -> None:
    decision = evaluate(make_signal(Side.BUY), make_portfolio(equity="0", cash="0"))
    assert "equity 0" in denied(decision, DenyReason.SIZE_ZERO).reason


# -- Kelly sizing -----------------------------------------------------------------------------


def test_kelly_sizing_uses_the_signal_edge_estimate() -> None:
    # p=0.6, b=1: full Kelly 0.2, half 0.1 -> 1000 / 100 = 10
    signal = make_signal(Side.BUY, win_probability=0.6, payoff_ratio="1")
    order = submitted(evaluate(signal, sizing="kelly", kelly_fraction=0.5, max_position_pct=0.5))
    assert order.quantity == D("10")


def test_kelly_sizing_falls_back_to_the_configured_edge() -> None:
    # p=0.55, b=1: full Kelly (0.55 - 0.45) / 1 = 0.1, half 0.05 -> 500 / 100 = 5
    order = submitted(
        evaluate(
            make_signal(Side.BUY),
            sizing="kelly",
            kelly_fraction=0.5,
            win_probability=0.55,
            payoff_ratio=1.0,
            max_position_pct=0.5,
        )
    )
    assert order.quantity == D("5")


def test_kelly_with_payoff_ratio_2() -> None:
    # p=0.4, b=2: (0.8 - 0.6) / 2 = 0.1 full Kelly -> 1000 / 100 = 10
    signal = make_signal(Side.BUY, win_probability=0.4, payoff_ratio="2")
    order = submitted(evaluate(signal, sizing="kelly", kelly_fraction=1.0, max_position_pct=0.5))
    assert order.quantity == D("10")


def test_negative_kelly_edge_is_denied_size_zero_saying_why() -> None:
    signal = make_signal(Side.BUY, win_probability=0.4, payoff_ratio="1")
    decision = denied(evaluate(signal, sizing="kelly"), DenyReason.SIZE_ZERO)
    assert "Kelly edge" in decision.reason


# -- closing longs, long-only -----------------------------------------------------------------


def test_sell_closes_the_whole_long_with_a_reduce_only_market_sell() -> None:
    order = submitted(evaluate(make_signal(Side.SELL), make_portfolio(position(BTC, "3.37"))))
    assert order.side is Side.SELL
    assert order.quantity == D("3.37")
    assert order.reduce_only is True
    assert order.order_type is OrderType.MARKET


def test_closing_sell_ignores_limits_even_when_the_position_is_over_them() -> None:
    # 50 units * 100 = 5000, far over the 1000 position limit: closing is always allowed
    order = submitted(evaluate(make_signal(Side.SELL), make_portfolio(position(BTC, "50"))))
    assert order.quantity == D("50")
    assert order.reduce_only is True


def test_sell_with_no_position_is_denied_no_position() -> None:
    denied(evaluate(make_signal(Side.SELL)), DenyReason.NO_POSITION)


def test_sell_with_only_another_instrument_held_is_denied_no_position() -> None:
    denied(evaluate(make_signal(Side.SELL), make_portfolio(position(ETH, "5"))), DenyReason.NO_POSITION)


# -- trading states and unknown portfolio -----------------------------------------------------


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_halted_denies_every_signal_even_a_closing_sell(side: Side) -> None:
    portfolio = make_portfolio(position(BTC, "2"))
    denied(evaluate(make_signal(side), portfolio, HALTED), DenyReason.TRADING_HALTED)


def test_halted_denies_a_target_signal() -> None:
    denied(
        evaluate(make_signal(target="0"), make_portfolio(position(BTC, "2")), HALTED),
        DenyReason.TRADING_HALTED,
    )


def test_reducing_allows_the_closing_sell() -> None:
    order = submitted(evaluate(make_signal(Side.SELL), make_portfolio(position(BTC, "4")), REDUCING))
    assert order.side is Side.SELL
    assert order.quantity == D("4")
    assert order.reduce_only is True


def test_reducing_denies_a_buy_that_would_increase_the_position() -> None:
    denied(
        evaluate(make_signal(Side.BUY), make_portfolio(position(BTC, "4")), REDUCING),
        DenyReason.TRADING_REDUCING,
    )


def test_reducing_denies_an_opening_buy_from_flat() -> None:
    denied(evaluate(make_signal(Side.BUY), make_portfolio(), REDUCING), DenyReason.TRADING_REDUCING)


@pytest.mark.parametrize("state", [ACTIVE, REDUCING])
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_unknown_portfolio_is_denied_never_passed(state: TradingState, side: Side) -> None:
    engine = RiskEngine(make_config())
    decision = engine.evaluate(make_signal(side), None, state, now_ns=NOW)
    denied(decision, DenyReason.UNKNOWN_PORTFOLIO)


# -- max position: just under, exactly at, just over ------------------------------------------


def test_entry_just_under_the_position_limit_is_allowed_unchanged() -> None:
    # 9.99% of 10000 = 999 -> 9.99 units; limit 1000
    order = submitted(evaluate(make_signal(Side.BUY), fraction=0.0999))
    assert order.quantity == D("9.99")


def test_entry_exactly_at_the_position_limit_is_allowed() -> None:
    # 10% sizing == 10% limit: 10 units * 100 = 1000 == limit
    order = submitted(evaluate(make_signal(Side.BUY), fraction=0.10))
    assert order.quantity == D("10")


def test_order_over_position_limit_is_clipped_to_the_limit() -> None:
    # 10.01% -> 10.01 units (1001 > 1000): clipped to 10 units
    order = submitted(evaluate(make_signal(Side.BUY), fraction=0.1001))
    assert order.quantity == D("10")


def test_increase_over_position_limit_is_clipped_to_the_remaining_room() -> None:
    # hold 6 (600); room 400 -> 4 units instead of the sized 10
    order = submitted(evaluate(make_signal(Side.BUY), make_portfolio(position(BTC, "6"))))
    assert order.quantity == D("4")


def test_increase_leaving_exactly_one_step_of_room_is_clipped_to_that_step() -> None:
    # hold 9.99 (999); room 1 -> 0.01 units == min quantity
    order = submitted(evaluate(make_signal(Side.BUY), make_portfolio(position(BTC, "9.99"))))
    assert order.quantity == D("0.01")


def test_increase_with_less_than_one_step_of_room_is_denied_max_position() -> None:
    # hold 9.995 (999.5); room 0.5 -> 0.005 units, rounds down to 0 < min 0.01
    decision = evaluate(make_signal(Side.BUY), make_portfolio(position(BTC, "9.995")))
    denied(decision, DenyReason.MAX_POSITION)


def test_entry_when_limit_already_used_is_denied_max_position() -> None:
    decision = denied(
        evaluate(make_signal(Side.BUY), make_portfolio(position(BTC, "10"))), DenyReason.MAX_POSITION
    )
    # 10 held + 10 sized = 20 units * 100 = 2000 against 10% of 10000
    assert "position 2000.00 > limit 1000.00 (10% of equity 10000)" in decision.reason
    assert decision.quantity == D("10")
    assert decision.side is Side.BUY


def test_position_limit_marks_the_held_position_at_the_signal_price() -> None:
    # 10 held, last marked at 50 (500), but the signal's close is 100: 1000 already used
    decision = evaluate(make_signal(Side.BUY, "100"), make_portfolio(position(BTC, "10", last_price="50")))
    denied(decision, DenyReason.MAX_POSITION)


# -- max exposure: just under, exactly at, just over ------------------------------------------


def test_entry_just_under_the_exposure_limit_is_allowed_unchanged() -> None:
    # ETH 14.99 * 100 = 1499 + 1000 new = 2499 < 2500
    order = submitted(evaluate(make_signal(Side.BUY), make_portfolio(position(ETH, "14.99"))))
    assert order.quantity == D("10")


def test_entry_exactly_at_the_exposure_limit_is_allowed() -> None:
    # ETH 1500 + 1000 new = 2500 == 25% of 10000
    order = submitted(evaluate(make_signal(Side.BUY), make_portfolio(position(ETH, "15"))))
    assert order.quantity == D("10")


def test_order_over_exposure_limit_is_clipped_to_the_limit() -> None:
    # ETH 1501: room 999 -> 9.99 units
    order = submitted(evaluate(make_signal(Side.BUY), make_portfolio(position(ETH, "15.01"))))
    assert order.quantity == D("9.99")


def test_entry_when_exposure_already_used_is_denied_max_exposure() -> None:
    decision = denied(
        evaluate(make_signal(Side.BUY), make_portfolio(position(ETH, "25"))), DenyReason.MAX_EXPOSURE
    )
    # ETH 2500 + 1000 = 3500 against 25% of 10000
    assert "gross exposure 3500.00 > limit 2500.00 (25% of equity 10000)" in decision.reason


def test_exposure_counts_short_positions_by_absolute_value() -> None:
    # short ETH -25 * 100 -> |2500| uses the whole exposure limit
    portfolio = make_portfolio(position(ETH, "-25"), equity="10000", cash="12500")
    denied(evaluate(make_signal(Side.BUY), portfolio), DenyReason.MAX_EXPOSURE)


def test_exposure_re_marks_the_signal_instrument_at_the_signal_price() -> None:
    # BTC 10 last marked 150 (1500) but the close is 100 (1000); 15% sizing adds 1500 -> 2500
    portfolio = make_portfolio(position(BTC, "10", last_price="150"))
    order = submitted(evaluate(make_signal(Side.BUY, "100"), portfolio, fraction=0.15, max_position_pct=0.5))
    assert order.quantity == D("15")


def test_binding_limit_is_the_tighter_of_position_and_exposure() -> None:
    # position room 1000 (10 units), exposure room 2500 - 2000 = 500 (5 units)
    order = submitted(evaluate(make_signal(Side.BUY), make_portfolio(position(ETH, "20"))))
    assert order.quantity == D("5")


# -- cash: just under, exactly at, just over --------------------------------------------------
# BTC 50 held, last marked at 100, the close is now 80: re-marked position 4000, gross 4000,
# so position and exposure limits (100%) leave 6000; 50% sizing wants 5000 / 80 = 62.5 units
# costing exactly 5000, and cash is what binds.

CASH_CONFIG: dict[str, Any] = {"fraction": 0.5, "max_position_pct": 1.0, "max_exposure_pct": 1.0}


def cash_portfolio(cash: str) -> PortfolioSnapshot:
    return make_portfolio(position(BTC, "50", last_price="100"), cash=cash, equity="10000")


def test_entry_cost_just_under_cash_is_allowed() -> None:
    order = submitted(evaluate(make_signal(Side.BUY, "80"), cash_portfolio("5000.01"), **CASH_CONFIG))
    assert order.quantity == D("62.5")


def test_entry_cost_exactly_equal_to_cash_is_allowed() -> None:
    order = submitted(evaluate(make_signal(Side.BUY, "80"), cash_portfolio("5000"), **CASH_CONFIG))
    assert order.quantity * D("80") == D("5000")


def test_entry_cost_just_over_cash_is_denied_insufficient_cash() -> None:
    decision = evaluate(make_signal(Side.BUY, "80"), cash_portfolio("4999.99"), **CASH_CONFIG)
    reason = denied(decision, DenyReason.INSUFFICIENT_CASH).reason
    assert "cost 5000.00" in reason and "cash 4999.99" in reason


# -- shorts -----------------------------------------------------------------------------------


def test_sell_with_no_position_opens_a_short_sized_like_an_entry_when_allowed() -> None:
    order = submitted(evaluate(make_signal(Side.SELL), allow_short=True))
    assert order.side is Side.SELL
    assert order.quantity == D("10")
    assert order.reduce_only is False


def test_buy_with_a_short_position_closes_the_whole_short() -> None:
    portfolio = make_portfolio(position(BTC, "-7"), cash="10700")
    order = submitted(evaluate(make_signal(Side.BUY), portfolio, allow_short=True))
    assert order.side is Side.BUY
    assert order.quantity == D("7")
    assert order.reduce_only is True


def test_short_increase_is_clipped_to_the_position_limit() -> None:
    # short 5 (|500|), room 500 -> 5 more
    portfolio = make_portfolio(position(BTC, "-5"), cash="10500")
    order = submitted(evaluate(make_signal(Side.SELL), portfolio, allow_short=True))
    assert order.side is Side.SELL
    assert order.quantity == D("5")
    assert order.reduce_only is False


def test_reducing_denies_opening_a_short() -> None:
    denied(evaluate(make_signal(Side.SELL), state=REDUCING, allow_short=True), DenyReason.TRADING_REDUCING)


def test_reducing_allows_buying_back_a_short() -> None:
    portfolio = make_portfolio(position(BTC, "-3"), cash="10300")
    order = submitted(evaluate(make_signal(Side.BUY), portfolio, REDUCING, allow_short=True))
    assert (order.side, order.quantity, order.reduce_only) == (Side.BUY, D("3"), True)


# -- target sizing ----------------------------------------------------------------------------


def test_target_from_flat_buys_the_target_notional() -> None:
    # 5% of 10000 = 500 -> 5 units
    order = submitted(evaluate(make_signal(target="0.05")))
    assert (order.side, order.quantity, order.reduce_only) == (Side.BUY, D("5"), False)


def test_target_sizes_the_difference_to_the_current_position() -> None:
    # want 800 (8 units), hold 3 -> buy 5
    order = submitted(evaluate(make_signal(target="0.08"), make_portfolio(position(BTC, "3"))))
    assert (order.side, order.quantity) == (Side.BUY, D("5"))


def test_target_below_the_current_position_sells_the_excess_reduce_only() -> None:
    # want 500 (5 units), hold 8 -> sell 3
    order = submitted(evaluate(make_signal(Side.BUY, target="0.05"), make_portfolio(position(BTC, "8"))))
    assert (order.side, order.quantity, order.reduce_only) == (Side.SELL, D("3"), True)


def test_target_zero_closes_exactly_the_position() -> None:
    order = submitted(evaluate(make_signal(target="0"), make_portfolio(position(BTC, "3.333"))))
    assert (order.side, order.quantity, order.reduce_only) == (Side.SELL, D("3.333"), True)


def test_target_over_the_position_limit_is_clipped_to_the_limit() -> None:
    # want 50% (5000) but the position limit is 1000 -> 10 units
    order = submitted(evaluate(make_signal(target="0.5")))
    assert order.quantity == D("10")


def test_target_already_reached_is_denied_size_zero() -> None:
    decision = evaluate(make_signal(target="0.05"), make_portfolio(position(BTC, "5")))
    assert "already at target" in denied(decision, DenyReason.SIZE_ZERO).reason


def test_negative_target_long_only_closes_the_long() -> None:
    order = submitted(evaluate(make_signal(target="-0.05"), make_portfolio(position(BTC, "4"))))
    assert (order.side, order.quantity, order.reduce_only) == (Side.SELL, D("4"), True)


def test_negative_target_long_only_with_no_position_is_denied_no_position() -> None:
    denied(evaluate(make_signal(target="-0.05")), DenyReason.NO_POSITION)


def test_negative_target_opens_a_short_when_allowed() -> None:
    order = submitted(evaluate(make_signal(target="-0.05"), allow_short=True))
    assert (order.side, order.quantity, order.reduce_only) == (Side.SELL, D("5"), False)


def test_target_across_zero_closes_and_reverses_in_one_order() -> None:
    # hold 4 long, want -5% (-500 = 5 short): sell 4 + 5 = 9
    order = submitted(
        evaluate(make_signal(target="-0.05"), make_portfolio(position(BTC, "4")), allow_short=True)
    )
    assert (order.side, order.quantity, order.reduce_only) == (Side.SELL, D("9"), False)


def test_target_across_zero_while_reducing_only_closes() -> None:
    portfolio = make_portfolio(position(BTC, "4"))
    order = submitted(evaluate(make_signal(target="-0.05"), portfolio, REDUCING, allow_short=True))
    assert (order.side, order.quantity, order.reduce_only) == (Side.SELL, D("4"), True)


def test_reducing_denies_a_target_that_increases_the_position() -> None:
    denied(evaluate(make_signal(target="0.05"), state=REDUCING), DenyReason.TRADING_REDUCING)


# -- invariants -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held_btc", "held_eth", "fraction"),
    [("0", "0", 0.3), ("3.7", "0", 0.1), ("0", "12.34", 0.2), ("6.66", "8.88", 0.5), ("9.5", "14", 1.0)],
)
def test_submitted_entries_never_exceed_either_limit(held_btc: str, held_eth: str, fraction: float) -> None:
    portfolio = make_portfolio(position(BTC, held_btc, "100"), position(ETH, held_eth, "100"))
    decision = evaluate(make_signal(Side.BUY, "100"), portfolio, fraction=fraction)
    if isinstance(decision, SubmitOrder):
        new_position = (Fraction(held_btc) + Fraction(decision.quantity)) * 100
        gross = (Fraction(held_btc) + Fraction(held_eth) + Fraction(decision.quantity)) * 100
        assert new_position <= Fraction(1000)
        assert gross <= Fraction(2500)
        assert Fraction(decision.quantity) * 100 <= Fraction(portfolio.cash)
    else:
        assert decision.reason_code in (DenyReason.MAX_POSITION, DenyReason.MAX_EXPOSURE)


# -- duplicates and deterministic ids ---------------------------------------------------------


def test_duplicate_signal_is_denied_duplicate_order() -> None:
    engine = RiskEngine(make_config())
    signal = make_signal(Side.BUY)
    submitted(engine.evaluate(signal, make_portfolio(), ACTIVE, now_ns=NOW))
    denied(engine.evaluate(signal, make_portfolio(), ACTIVE, now_ns=NOW + 1), DenyReason.DUPLICATE_ORDER)


def test_duplicate_of_a_denied_signal_is_denied_duplicate_order() -> None:
    engine = RiskEngine(make_config())
    signal = make_signal(Side.SELL)
    denied(engine.evaluate(signal, make_portfolio(), ACTIVE, now_ns=NOW), DenyReason.NO_POSITION)
    denied(engine.evaluate(signal, make_portfolio(), ACTIVE, now_ns=NOW), DenyReason.DUPLICATE_ORDER)


def test_duplicate_memory_is_bounded_and_forgets_the_oldest() -> None:
    engine = RiskEngine(make_config(), memory=2)
    first, second, third = make_signal(), make_signal(), make_signal()
    for signal in (first, second, third):
        engine.evaluate(signal, make_portfolio(), ACTIVE, now_ns=NOW)
    assert not engine.seen(first.id)
    assert engine.seen(second.id) and engine.seen(third.id)
    submitted(engine.evaluate(first, make_portfolio(), ACTIVE, now_ns=NOW))


def test_same_signal_gives_the_same_order_ids_in_a_fresh_engine() -> None:
    signal = make_signal(Side.BUY)
    one = submitted(RiskEngine(make_config()).evaluate(signal, make_portfolio(), ACTIVE, now_ns=NOW))
    two = submitted(RiskEngine(make_config()).evaluate(signal, make_portfolio(), ACTIVE, now_ns=NOW))
    assert one == two
    assert one.client_order_id == client_order_id("sma_cross", signal.id)
    assert one.id == derive_id("submit", signal.id)


def test_submit_order_carries_the_signal_times_and_correlation() -> None:
    signal = make_signal(Side.BUY, correlation_id="bar-123")
    order = submitted(evaluate(signal))
    assert order.ts_event == signal.ts_event
    assert order.ts_init == NOW
    assert order.correlation_id == "bar-123"
    assert order.signal_id == signal.id
    assert order.strategy_id == signal.strategy_id
    assert order.instrument_id == signal.instrument_id


def test_correlation_defaults_to_the_signal_id() -> None:
    signal = make_signal(Side.BUY)
    assert submitted(evaluate(signal)).correlation_id == signal.id


def test_denial_has_a_derived_id_and_the_same_client_order_id() -> None:
    signal = make_signal(Side.SELL)
    decision = denied(evaluate(signal), DenyReason.NO_POSITION)
    assert decision.id == derive_id("denied", signal.id)
    assert decision.client_order_id == client_order_id("sma_cross", signal.id)
    assert decision.signal_id == signal.id
    assert decision.ts_event == signal.ts_event
    assert decision.ts_init == NOW
    assert decision.correlation_id == signal.id
