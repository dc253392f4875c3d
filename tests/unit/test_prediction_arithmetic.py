"""The shared prediction-market arithmetic (``tradewire_common.prediction``): venue fees, the price payable
at a book's depth, the NO side of a single-book market, the edge and the pair cost, each checked against
figures worked out by hand."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tradewire_common.prediction import (
    FeeSchedule,
    check_probability_price,
    edge_after_costs,
    no_asks_from_yes_bids,
    pair_cost,
    payable_price,
)


def test_kalshi_taker_fee_is_seven_percent_of_c_p_one_minus_p_rounded_up_to_the_cent() -> None:
    kalshi = FeeSchedule.for_venue("KALSHI")
    # 0.07 * 100 * 0.5 * 0.5 = 1.75 exactly
    assert kalshi.fee(D("0.50"), D(100)) == D("1.75")
    # 0.07 * 10 * 0.37 * 0.63 = 0.16317 -> 0.17 (always rounded up)
    assert kalshi.fee(D("0.37"), D(10)) == D("0.17")
    # one contract at 0.01: 0.000693 -> one cent
    assert kalshi.fee(D("0.01"), D(1)) == D("0.01")
    assert kalshi.fee_per_contract(D("0.37"), D(10)) == D("0.017")


def test_kalshi_maker_fee_applies_only_on_markets_with_maker_fees() -> None:
    assert FeeSchedule.for_venue("kalshi").fee(D("0.5"), D(100), maker=True) == 0
    # 0.0175 * 100 * 0.25 = 0.4375 -> 0.44
    assert FeeSchedule.for_venue("kalshi", maker_fees=True).fee(D("0.5"), D(100), maker=True) == D("0.44")


def test_polymarket_fee_uses_the_cheaper_side_and_defaults_to_zero() -> None:
    assert FeeSchedule.for_venue("POLYMARKET").fee(D("0.3"), D(100)) == 0
    poly = FeeSchedule.for_venue("polymarket", fee_rate_bps=D(200))
    assert poly.fee(D("0.3"), D(100)) == D("0.6")  # 0.02 * min(0.3, 0.7) * 100
    assert poly.fee(D("0.9"), D(100)) == D("0.2")  # 0.02 * min(0.9, 0.1) * 100


def test_manifold_and_unknown_venues_charge_nothing() -> None:
    assert FeeSchedule.for_venue("MANIFOLD").fee(D("0.4"), D(1000)) == 0
    assert FeeSchedule.for_venue("BINANCE").venue == "none"


def test_a_fee_refuses_a_price_outside_zero_one() -> None:
    with pytest.raises(ValueError, match="within"):
        FeeSchedule.for_venue("kalshi").fee(D(1), D(1))
    with pytest.raises(ValueError, match="within"):
        check_probability_price(D("NaN"))


def test_payable_price_walks_the_book_and_is_none_when_it_is_too_thin() -> None:
    asks = [(D("0.40"), D(10)), (D("0.42"), D(5)), (D("0.50"), D(100))]
    assert payable_price(asks, D(10)) == D("0.40")
    # 10 @ 0.40 + 5 @ 0.42 + 5 @ 0.50 = 8.6 for 20
    assert payable_price(asks, D(20)) == D("0.43")
    assert payable_price(asks, D(116)) is None
    with pytest.raises(ValueError):
        payable_price(asks, D(0))


def test_no_asks_of_a_single_book_market_are_one_minus_the_yes_bids() -> None:
    assert no_asks_from_yes_bids([(D("0.61"), D(3)), (D("0.60"), D(7))]) == [(D("0.39"), D(3)), (D("0.40"), D(7))]


def test_edge_and_pair_cost() -> None:
    assert edge_after_costs(D("0.6"), D("0.5"), D("0.0175")) == D("0.0825")
    assert pair_cost(D("0.45"), D("0.50"), D("0.0175"), D(0)) == D("0.9675")
