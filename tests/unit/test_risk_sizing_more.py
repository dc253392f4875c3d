"""Sizing beyond fixed fraction: capped Kelly, Kelly from the live record, binary-contract Kelly,
volatility targeting (ATR) and the ramp-up schedule of new strategies.

Engine cases start from test_risk_engine's numbers (equity 10000, price 100, step 0.01) and raise the
position and exposure limits where they would get in the way. Expected values are worked out by hand.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from tests.unit.test_risk_checks import DAY, HOUR, T0, decide, fill, open_order, sig, snapshot
from tests.unit.test_risk_engine import BTC, denied, position, submitted
from tradewire_common.config import InstrumentSpec
from tradewire_common.ids import derive_id
from tradewire_common.schemas import Bar, DenyReason, Side, Signal
from tradewire_risk.book import Fill, StrategyBook
from tradewire_risk.context import RiskContext
from tradewire_risk.sizing import (
    binary_kelly_fraction,
    capped,
    kelly_fraction,
    ramp_up_scale,
    volatility_target_quantity,
)

D = Decimal
WIDE: dict[str, Any] = {"max_position_pct": 1.0, "max_exposure_pct": 1.0}
CONTRACT = "WILL-IT-RAIN.POLYMARKET"


def with_edge(signal: Signal, p: float | None, b: str | None = None) -> Signal:
    import msgspec

    return msgspec.structs.replace(signal, win_probability=p, payoff_ratio=None if b is None else D(b))


# -- capped Kelly ---------------------------------------------------------------------------------------


def test_the_cap_limits_the_kelly_fraction() -> None:
    # p=0.6, b=1: full Kelly 0.2
    assert capped(kelly_fraction(D("0.6"), D("1"), D("1")), D("0.15")) == D("0.15")
    assert capped(kelly_fraction(D("0.6"), D("1"), D("1")), D("0.2")) == D("0.2")


def test_kelly_sizing_exactly_at_the_cap_is_unchanged_and_above_it_is_capped() -> None:
    signal = with_edge(sig(), 0.6, "1")
    # full Kelly 0.2 of 10000 = 2000 -> 20 units; cap 0.2 changes nothing, cap 0.15 gives 15
    assert submitted(decide(signal, sizing="kelly", kelly_fraction=1.0, kelly_cap=0.2, **WIDE)).quantity == D("20")
    signal = with_edge(sig(), 0.6, "1")
    assert submitted(decide(signal, sizing="kelly", kelly_fraction=1.0, kelly_cap=0.15, **WIDE)).quantity == D("15")


# -- Kelly from the live record -------------------------------------------------------------------------


def trade(ctx: RiskContext, buy: str, sell: str, quantity: str = "1", strategy: str = "sma_cross") -> None:
    """One round trip of the strategy: buy, then sell everything."""
    coid = open_order(ctx, Side.BUY, quantity, strategy=strategy)
    fill(ctx, coid, Side.BUY, quantity, buy, strategy=strategy)
    coid = open_order(ctx, Side.SELL, quantity, strategy=strategy, reduce_only=True)
    fill(ctx, coid, Side.SELL, quantity, sell, strategy=strategy)


def record_context() -> RiskContext:
    # two wins of +100 and one loss of -50: p = 2/3, b = 100 / 50 = 2
    ctx = RiskContext()
    trade(ctx, "100", "200")
    trade(ctx, "100", "200")
    trade(ctx, "100", "50")
    return ctx


def test_kelly_uses_the_live_record_once_the_strategy_has_enough_round_trips() -> None:
    # f* = (2 * 2/3 - 1/3) / 2 = 1/2, half Kelly 1/4 of 10000 = 2500 -> 25 units
    full = (Fraction(2) * Fraction(2, 3) - Fraction(1, 3)) / 2
    assert full * Fraction(1, 2) * 10000 / 100 == 25
    order = submitted(decide(sig(), ctx=record_context(), sizing="kelly", kelly_min_trades=3, **WIDE))
    assert order.quantity == D("25")


def test_kelly_keeps_the_signals_estimate_until_the_record_is_long_enough() -> None:
    # 3 round trips < 4: the defaults p=0.55, b=1 give 0.1 full, 0.05 half -> 5 units
    order = submitted(decide(sig(), ctx=record_context(), sizing="kelly", kelly_min_trades=4, **WIDE))
    assert order.quantity == D("5")


def test_a_record_without_a_loss_is_not_used() -> None:
    ctx = RiskContext()
    for _ in range(3):
        trade(ctx, "100", "110")
    assert submitted(decide(sig(), ctx=ctx, sizing="kelly", kelly_min_trades=3, **WIDE)).quantity == D("5")


def test_a_losing_record_gives_no_kelly_edge() -> None:
    # one win +10, two losses -50: p = 1/3, b = 10 / 50 = 0.2 -> negative edge
    ctx = RiskContext()
    trade(ctx, "100", "110")
    trade(ctx, "100", "50")
    trade(ctx, "100", "50")
    decision = denied(decide(sig(), ctx=ctx, sizing="kelly", kelly_min_trades=3), DenyReason.SIZE_ZERO)
    assert "live record of 3 round trips" in decision.reason


def test_round_trips_count_fees_and_split_a_flip() -> None:
    book = StrategyBook()
    fills = [("BUY", "2", "100", "1"), ("SELL", "2", "101", "1"),  # +2 - 2 fees = 0: neither
             ("BUY", "1", "100", "0"), ("SELL", "3", "90", "0.5"),  # -10 - 0.5 = loss; flips short 2 at 90
             ("BUY", "2", "80", "0")]  # short 2 from 90 to 80: +20
    for n, (side, qty, px, fee) in enumerate(fills):
        book.apply(Fill(f"c{n}", "t", "s", BTC, Side(side), D(qty), D(px), D(fee), n))
    record = book.record("s")
    assert (record.wins, record.losses, record.win_sum, record.loss_sum) == (1, 1, D("20"), D("10.5"))
    assert (record.first_fill_ts, record.filled_orders) == (0, 5)
    assert book.position("s", BTC) == 0


def test_a_repeated_fill_is_applied_once() -> None:
    book = StrategyBook()
    f = Fill("c", "t1", "s", BTC, Side.BUY, D("1"), D("100"), D("0"), 1)
    assert book.apply(f) and not book.apply(f)
    assert book.position("s", BTC) == D("1")


# -- binary-contract Kelly ------------------------------------------------------------------------------


def test_binary_kelly_is_the_edge_over_the_price_scaled_by_the_fraction() -> None:
    # (0.6 - 0.5) / (1 - 0.5) = 0.2; halved 0.1
    assert binary_kelly_fraction(D("0.6"), D("0.5"), D("1")) == D("0.2")
    assert binary_kelly_fraction(D("0.6"), D("0.5"), D("0.5")) == D("0.1")
    # (0.9 - 0.8) / 0.2 = 0.5
    assert binary_kelly_fraction(D("0.9"), D("0.8"), D("1")) == D("0.5")


@pytest.mark.parametrize(("p", "price"), [("0.5", "0.5"), ("0.4", "0.5"), ("0", "0.01")])
def test_binary_kelly_without_an_edge_is_zero(p: str, price: str) -> None:
    assert binary_kelly_fraction(D(p), D(price), D("1")) == 0


@pytest.mark.parametrize("price", ["0", "1", "1.5", "-0.1"])
def test_binary_kelly_needs_a_price_within_zero_and_one(price: str) -> None:
    with pytest.raises(ValueError, match=r"within \(0, 1\)"):
        binary_kelly_fraction(D("0.5"), D(price), D("1"))


def contract_config(**extra: Any) -> dict[str, Any]:
    return {"sizing": "binary_kelly", "kelly_fraction": 0.5,
            "instruments": (InstrumentSpec(id=CONTRACT, quantity_step=D("1"), min_quantity=D("1")),), **extra}


def test_binary_kelly_sizes_contracts_at_their_price() -> None:
    # 0.1 of 10000 = 1000 at 0.5 -> 2000 contracts; 2000 * 0.5 = 1000 is exactly the 10% position limit
    signal = with_edge(sig(price="0.5", instrument=CONTRACT), 0.6)
    assert submitted(decide(signal, **contract_config())).quantity == D("2000")


def test_binary_kelly_is_capped() -> None:
    signal = with_edge(sig(price="0.5", instrument=CONTRACT), 0.6)
    # cap 0.05: 500 at 0.5 -> 1000 contracts
    assert submitted(decide(signal, **contract_config(kelly_cap=0.05))).quantity == D("1000")


def test_selling_a_contract_short_bets_on_no() -> None:
    # p(YES) 0.3 at 0.5: NO has p 0.7 at 0.5 -> (0.7 - 0.5) / 0.5 = 0.4, halved 0.2 of 10000 at 0.5 -> 4000
    signal = with_edge(sig(Side.SELL, price="0.5", instrument=CONTRACT), 0.3)
    order = submitted(decide(signal, **contract_config(allow_short=True, **WIDE)))
    assert (order.side, order.quantity) == (Side.SELL, D("4000"))


def test_binary_kelly_without_an_edge_is_size_zero() -> None:
    signal = with_edge(sig(price="0.5", instrument=CONTRACT), 0.45)
    decision = denied(decide(signal, **contract_config()), DenyReason.SIZE_ZERO)
    assert "no positive binary Kelly edge" in decision.reason


def test_binary_kelly_needs_the_signals_probability_and_a_contract_price() -> None:
    no_p = sig(price="0.5", instrument=CONTRACT)
    assert "win_probability" in denied(decide(no_p, **contract_config()), DenyReason.INVALID_ORDER).reason
    not_a_contract = with_edge(sig(price="1", instrument=CONTRACT), 0.9)
    assert "(0, 1)" in denied(decide(not_a_contract, **contract_config()), DenyReason.INVALID_ORDER).reason


# -- volatility targeting -------------------------------------------------------------------------------
# ATR window 3 (4 bars); 1% of equity at risk over 2 ATRs


def bar(i: int, high: str, low: str, close: str, interval: str = "1h") -> Bar:
    ts = T0 - (10 - i) * HOUR
    return Bar(id=derive_id("atr-bar", i, interval), ts_event=ts, ts_init=ts, instrument_id=BTC, interval=interval,
               open=D(close), high=D(high), low=D(low), close=D(close), volume=D(1), seq=i)


def vol_config(**extra: Any) -> dict[str, Any]:
    return {"sizing": "volatility_target", "target_risk_fraction": 0.01, "atr_window": 3, "atr_multiple": 2.0,
            **WIDE, **extra}


def test_the_volatility_target_formula() -> None:
    # 1% of 10000 = 100 at risk over 2 * 2.5 = 5 per unit -> 20 units
    assert volatility_target_quantity(D("10000"), D("2.5"), D("0.01"), D("2"), D("0.01")) == D("20")
    assert volatility_target_quantity(D("0"), D("2.5"), D("0.01"), D("2"), D("0.01")) == 0
    with pytest.raises(ValueError, match="ATR"):
        volatility_target_quantity(D("10000"), D("0"), D("0.01"), D("2"), D("0.01"))


def test_volatility_target_sizes_with_the_true_range_including_gaps() -> None:
    # true ranges: 2, max(2, |106 - 100|, |104 - 100|) = 6, max(2, |103 - 105|, |101 - 105|) = 4 -> ATR 4
    # 100 / (2 * 4) = 12.5 units
    ctx = RiskContext(atr_window=3)
    for b in (bar(0, "101", "99", "100"), bar(1, "101", "99", "100"), bar(2, "106", "104", "105"),
              bar(3, "103", "101", "102")):
        ctx.apply(b)
    order = submitted(decide(sig(), ctx=ctx, **vol_config()))
    assert order.quantity == D("12.5")


def test_volatility_target_without_enough_bars_is_unknown_price() -> None:
    ctx = RiskContext(atr_window=3)
    for i in range(3):
        ctx.apply(bar(i, "101", "99", "100"))
    decision = denied(decide(sig(), ctx=ctx, **vol_config()), DenyReason.UNKNOWN_PRICE)
    assert "3 bars up to the signal's time, 4 needed" in decision.reason


def test_bars_after_the_signal_do_not_count() -> None:
    ctx = RiskContext(atr_window=3)
    for i in range(4):
        ctx.apply(bar(i, "101", "99", "100"))
    early = sig(ts=T0 - 7 * HOUR - 1)  # before bar 3 (T0 - 7 h): only 3 bars
    denied(decide(early, ctx=ctx, **vol_config()), DenyReason.UNKNOWN_PRICE)
    # ATR 2 -> 100 / 4 = 25 units
    assert submitted(decide(sig(ts=T0 - 7 * HOUR), ctx=ctx, **vol_config())).quantity == D("25")


def test_bars_of_several_intervals_need_atr_interval() -> None:
    ctx = RiskContext(atr_window=3)
    for i in range(4):
        ctx.apply(bar(i, "101", "99", "100"))
        ctx.apply(bar(i, "102", "98", "100", interval="1d"))
    assert "atr_interval" in denied(decide(sig(), ctx=ctx, **vol_config()), DenyReason.INVALID_ORDER).reason
    # 1d: true range 4 -> 100 / 8 = 12.5
    assert submitted(decide(sig(), ctx=ctx, **vol_config(atr_interval="1d"))).quantity == D("12.5")


def test_volatility_target_is_still_held_to_the_position_limit() -> None:
    ctx = RiskContext(atr_window=3)
    for i in range(4):
        ctx.apply(bar(i, "101", "99", "100"))
    # 25 units wanted, the 10% limit allows 10
    order = submitted(decide(sig(), ctx=ctx, **vol_config(max_position_pct=0.10, max_exposure_pct=0.25)))
    assert order.quantity == D("10")


# -- ramp-up -------------------------------------------------------------------------------------------


def test_the_ramp_up_scale_formula() -> None:
    start = D("0.25")
    # 4 of 10 days: 0.25 + 0.75 * 0.4 = 0.55
    assert ramp_up_scale(start, days=D(10), trades=0, elapsed_ns=4 * DAY, filled_orders=0) == D("0.55")
    # 2 of 10 trades: 0.25 + 0.75 * 0.2 = 0.4
    assert ramp_up_scale(start, days=D(0), trades=10, elapsed_ns=None, filled_orders=2) == D("0.4")
    # whichever ends first: 1 of 10 days (0.1) vs 2 of 4 trades (0.5) -> 0.25 + 0.75 * 0.5 = 0.625
    assert ramp_up_scale(start, days=D(10), trades=4, elapsed_ns=DAY, filled_orders=2) == D("0.625")
    assert ramp_up_scale(start, days=D(10), trades=4, elapsed_ns=None, filled_orders=0) == start
    assert ramp_up_scale(start, days=D(10), trades=4, elapsed_ns=20 * DAY, filled_orders=0) == 1
    assert ramp_up_scale(start, days=D(0), trades=0, elapsed_ns=None, filled_orders=0) == 1


def ramp_context(trades: int, first_fill: int = T0) -> RiskContext:
    ctx = RiskContext()
    for _ in range(trades):
        coid = open_order(ctx, Side.BUY, "0.01", instrument="ETHUSDT.BINANCE")
        fill(ctx, coid, Side.BUY, "0.01", instrument="ETHUSDT.BINANCE", ts=first_fill)
    return ctx


def test_a_new_strategy_starts_at_the_start_fraction() -> None:
    # sized 10, a quarter: 2.5
    order = submitted(decide(sig(), ctx=RiskContext(), ramp_up_trades=4, ramp_up_start_fraction=0.25))
    assert order.quantity == D("2.5")


def test_the_size_grows_with_the_strategys_filled_orders() -> None:
    # 2 of 4: 0.625 -> 6.25; 4 of 4: full size
    assert submitted(decide(sig(), ctx=ramp_context(2), ramp_up_trades=4)).quantity == D("6.25")
    assert submitted(decide(sig(), ctx=ramp_context(4), ramp_up_trades=4)).quantity == D("10")


def test_the_day_ramp_ends_exactly_n_days_after_the_first_fill() -> None:
    ctx = ramp_context(1, first_fill=T0)
    end = T0 + 10 * DAY
    assert submitted(decide(sig(ts=end), ctx=ctx, ramp_up_days=10)).quantity == D("10")
    # 1 ns earlier the scale is just under 1: 9.99... rounds down to 9.99
    assert submitted(decide(sig(ts=end - 1), ctx=ctx, ramp_up_days=10)).quantity == D("9.99")
    # 4 days in: 0.55 -> 5.5
    assert submitted(decide(sig(ts=T0 + 4 * DAY), ctx=ctx, ramp_up_days=10)).quantity == D("5.5")


def test_the_ramp_counts_only_the_strategys_own_fills() -> None:
    ctx = RiskContext()
    coid = open_order(ctx, Side.BUY, "1", strategy="veteran")
    fill(ctx, coid, Side.BUY, "1", strategy="veteran")
    assert submitted(decide(sig(), ctx=ctx, ramp_up_trades=1)).quantity == D("2.5")


def test_a_ramped_size_below_the_minimum_is_size_zero_naming_the_ramp() -> None:
    # fraction 0.0003 of 10000 = 3 at 100 = 0.03 units; a quarter: 0.0075 -> 0 < 0.01
    decision = denied(decide(sig(), ctx=RiskContext(), fraction=0.0003, ramp_up_trades=4), DenyReason.SIZE_ZERO)
    assert "ramp-up x0.25" in decision.reason


def test_the_ramp_scales_a_targets_opening_part_but_never_a_close() -> None:
    # target 10% from flat: 10 units, a quarter -> 2.5
    assert submitted(decide(sig(target="0.1"), ctx=RiskContext(), ramp_up_trades=4)).quantity == D("2.5")
    close = submitted(decide(sig(Side.SELL), snapshot(position(BTC, "8")), ctx=RiskContext(), ramp_up_trades=4))
    assert close.quantity == D("8")


def test_all_in_sizing_is_not_ramped() -> None:
    order = submitted(decide(sig(), ctx=RiskContext(), sizing="all_in", ramp_up_trades=4))
    assert order.quantity == D("100")
