"""Risk and binary (prediction-market) instruments, each rule at its boundary.

Numbers: equity 1000, fixed fraction 10% (100 of equity), position limit 10% (100), exposure limit 25% (250)
unless a test says otherwise. Outcomes ``YES``/``NO`` of one Kalshi market: step 1 contract, tick 0.01,
complements of each other. Expected quantities are worked out by hand in the comments.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest

from tests.unit.test_risk_engine import BTC, denied, make_config, position, submitted
from tradewire_common.config import InstrumentSpec
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    DenyReason,
    MarketResolved,
    OrderDenied,
    OrderType,
    OutcomePayout,
    PortfolioSnapshot,
    PositionSnapshot,
    Side,
    Signal,
    SubmitOrder,
    TradingState,
)
from tradewire_risk.context import RiskContext
from tradewire_risk.engine import RiskEngine

D = Decimal
T0 = 1_700_000_000_000_000_000
MARKET = "KXRAIN-25NOV"
YES = f"{MARKET}-YES.KALSHI"
NO = f"{MARKET}-NO.KALSHI"
OTHER = "KXSNOW-25DEC-YES.KALSHI"
_ids = itertools.count(1)


def outcome(iid: str, complement: str | None = None, market: str = MARKET) -> InstrumentSpec:
    return InstrumentSpec(id=iid, kind="binary", market_id=market, complement=complement, quantity_step=D(1),
                          min_quantity=D(1), price_tick=D("0.01"))


SPECS = (outcome(YES, NO), outcome(NO, YES), outcome(OTHER, market="KXSNOW-25DEC"),
         InstrumentSpec(id=BTC, quantity_step=D("0.01"), min_quantity=D("0.01")))


def sig(side: Side = Side.BUY, price: str = "0.40", *, instrument: str = YES, limit: str | None = None,
        trigger: str | None = None) -> Signal:
    order_type = (OrderType.STOP_LIMIT if trigger and limit else OrderType.LIMIT if limit else
                  OrderType.STOP_MARKET if trigger else OrderType.MARKET)
    return Signal(id=derive_id("binary-signal", next(_ids)), ts_event=T0, ts_init=T0, strategy_id="pm_edge",
                  instrument_id=instrument, side=side, price=D(price), confidence=1.0, reason="test",
                  order_type=order_type, limit_price=None if limit is None else D(limit),
                  trigger_price=None if trigger is None else D(trigger))


def held(instrument: str, quantity: str, price: str) -> PositionSnapshot:
    return position(instrument, quantity, price)


def snapshot(*positions: PositionSnapshot, equity: str = "1000") -> PortfolioSnapshot:
    value = sum((p.quantity * p.last_price for p in positions), D(0))
    return PortfolioSnapshot(id=derive_id("binary-pf", next(_ids)), ts_event=T0, ts_init=T0, account="paper",
                             cash=D(equity) - value, equity=D(equity), realized_pnl=D(0), unrealized_pnl=D(0),
                             gross_exposure=sum((abs(p.quantity * p.last_price) for p in positions), D(0)),
                             positions=positions, as_of=T0)


def decide(signal: Signal, portfolio: PortfolioSnapshot | None = None, *, ctx: RiskContext | None = None,
           **config: Any) -> SubmitOrder | OrderDenied:
    engine = RiskEngine(make_config(**{"instruments": SPECS, **config}))
    return engine.evaluate(signal, portfolio or snapshot(), TradingState.ACTIVE, now_ns=T0,
                           context=ctx if ctx is not None else RiskContext())


def resolution(*payouts: tuple[str, str], market: str = MARKET) -> MarketResolved:
    return MarketResolved(id=derive_id("binary-resolved", market), ts_event=T0 - 1, ts_init=T0 - 1,
                          venue="KALSHI", market_id=market, resolution="YES",
                          payouts=tuple(OutcomePayout(instrument_id=i, payout=D(p)) for i, p in payouts))


# -- prices: probabilities strictly within (0, 1), on the tick grid ------------------------------------


@pytest.mark.parametrize("limit", ["0.01", "0.99"])
def test_a_limit_price_just_inside_0_and_1_passes(limit: str) -> None:
    order = submitted(decide(sig(price=limit, limit=limit)))
    assert order.limit_price == D(limit) and order.order_type is OrderType.LIMIT


@pytest.mark.parametrize("limit", ["1", "1.00", "1.01", "40"])
def test_a_limit_price_of_1_or_more_is_not_a_probability(limit: str) -> None:
    decision = denied(decide(sig(limit=limit)), DenyReason.INVALID_ORDER)
    assert f"limit price {limit} of the binary contract {YES} is not a probability strictly within (0, 1)" \
        in decision.reason


def test_a_signal_price_of_1_is_denied_even_for_a_market_order() -> None:
    decision = denied(decide(sig(price="1")), DenyReason.INVALID_ORDER)
    assert decision.reason.startswith("signal price 1 of the binary contract")


def test_a_trigger_price_is_held_to_the_same_rule() -> None:
    denied(decide(sig(Side.BUY, "0.40", trigger="1.2")), DenyReason.INVALID_ORDER)
    submitted(decide(sig(Side.BUY, "0.40", trigger="0.45")))


def test_prices_off_the_tick_grid_are_denied_not_rounded() -> None:
    off = denied(decide(sig(limit="0.405")), DenyReason.INVALID_ORDER)
    assert "not a multiple of the price tick 0.01" in off.reason
    assert denied(decide(sig(price="0.405")), DenyReason.INVALID_ORDER).reason.startswith("signal price 0.405")
    submitted(decide(sig(price="0.41", limit="0.41")))


def test_a_spot_instrument_keeps_prices_above_1() -> None:
    submitted(decide(sig(price="100", instrument=BTC)))


# -- notional: quantity x price ----------------------------------------------------------------------------


def test_contracts_are_sized_and_limited_at_their_price() -> None:
    # 10% of 1000 = 100 at 0.40 = 250 contracts
    assert submitted(decide(sig(price="0.40"))).quantity == D(250)
    # 20% would be 500 contracts (200): the position limit 100 leaves exactly 250 (100.00, at the limit)
    assert submitted(decide(sig(price="0.40"), fraction=0.2)).quantity == D(250)
    # the instrument's max notional counts contracts at their price: 30 / 0.40 = 75
    specs = (InstrumentSpec(id=YES, kind="binary", market_id=MARKET, quantity_step=D(1), min_quantity=D(1),
                            price_tick=D("0.01"), max_notional=D(30)),)
    assert submitted(decide(sig(price="0.40", limit="0.40"), instruments=specs)).quantity == D(75)


# -- complements: pairs are riskless -------------------------------------------------------------------------


def test_a_buy_of_no_against_a_held_yes_at_the_exposure_limit_passes_in_full() -> None:
    book = snapshot(held(YES, "625", "0.40"))  # 250 of gross exposure: exactly at the limit
    # 10% of 1000 at 0.55 = 181 NO contracts, all of them pairing with held YES: exposure goes down
    order = submitted(decide(sig(price="0.55", instrument=NO), book))
    assert order.quantity == D(181)


def test_without_the_complement_the_same_buy_is_denied_at_the_exposure_limit() -> None:
    specs = (outcome(YES), outcome(NO), SPECS[3])
    book = snapshot(held(YES, "625", "0.40"))
    decision = denied(decide(sig(price="0.55", instrument=NO), book, instruments=specs), DenyReason.MAX_EXPOSURE)
    assert "gross exposure 349.55 > limit 250.00" in decision.reason


def test_beyond_the_pairs_the_unpaired_part_fills_the_exposure_limit_exactly() -> None:
    # gross 40 (100 YES at 0.40) + 210 (2.1 BTC at 100) = 250, at the limit. Buying NO at 0.50: the first 100
    # pair with YES (gross -> 210), then 80 more fit (210 + 80 * 0.50 = 250): 180 at most (181 would be 250.50)
    book = snapshot(held(YES, "100", "0.40"), held(BTC, "2.1", "100"))
    assert submitted(decide(sig(price="0.50", instrument=NO), book, fraction=0.2)).quantity == D(180)


def test_beyond_the_pairs_the_unpaired_part_fills_the_position_limit_exactly() -> None:
    # 100 pair with the held YES, then 200 unpaired NO at 0.50 = 100, the position limit: 300 at most
    book = snapshot(held(YES, "100", "0.40"))
    order = submitted(decide(sig(price="0.50", instrument=NO), book, fraction=0.5, max_exposure_pct=1.0))
    assert order.quantity == D(300)


def test_when_nothing_fits_beyond_the_pairs_the_reason_names_the_unpaired_part() -> None:
    book = snapshot(held(YES, "100", "0.40"), held(BTC, "2.5", "100"))  # gross 290 > 250 already
    order = submitted(decide(sig(price="0.50", instrument=NO), book))  # the 100 pairs still pass
    assert order.quantity == D(100)
    book = snapshot(held(YES, "100", "0.40"), held(NO, "100", "0.55"), held(BTC, "2.5", "100"))
    decision = denied(decide(sig(price="0.50", instrument=NO), book), DenyReason.MAX_EXPOSURE)
    assert "(unpaired part only: 100 of its complement" in decision.reason


def test_a_held_short_is_never_paired() -> None:
    book = snapshot(held(YES, "-625", "0.40"))  # short 625 YES: 250 of exposure
    denied(decide(sig(price="0.55", instrument=NO), book, allow_short=True), DenyReason.MAX_EXPOSURE)


def test_pairs_held_in_another_market_do_not_count_as_exposure() -> None:
    # 400 YES + 400 NO = 400 riskless pairs; 100 of exposure used by 250 OTHER at 0.40 -> room 150 / 0.40
    book = snapshot(held(YES, "400", "0.40"), held(NO, "400", "0.58"), held(OTHER, "250", "0.40"))
    order = submitted(decide(sig(price="0.40", instrument=OTHER), book, fraction=0.5, max_position_pct=1.0))
    assert order.quantity == D(375)  # 150 / 0.40: the pairs (392 of value) take no room


# -- resolved markets ------------------------------------------------------------------------------------------


def test_a_resolved_markets_outcomes_are_no_longer_tradable_closes_included() -> None:
    ctx = RiskContext()
    submitted(decide(sig(), ctx=ctx))  # before the resolution
    ctx.apply(resolution((YES, "1"), (NO, "0")))
    decision = denied(decide(sig(), ctx=ctx), DenyReason.INSTRUMENT_NOT_TRADABLE)
    assert decision.reason == f"{YES} has resolved (payout 1): it no longer trades"
    denied(decide(sig(Side.SELL, instrument=NO), snapshot(held(NO, "10", "0.5")), ctx=ctx),
           DenyReason.INSTRUMENT_NOT_TRADABLE)
    submitted(decide(sig(instrument=OTHER), ctx=ctx))  # another market still trades


def test_an_outcome_not_named_in_the_payouts_stops_with_its_market() -> None:
    ctx = RiskContext()
    ctx.apply(resolution((YES, "1")))
    decision = denied(decide(sig(instrument=NO), ctx=ctx), DenyReason.INSTRUMENT_NOT_TRADABLE)
    assert f"its market {MARKET} has resolved (YES)" in decision.reason
