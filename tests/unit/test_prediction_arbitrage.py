"""``prediction_arbitrage``: a constructed Kalshi/Polymarket opportunity gives two BUY legs (same correlation
id, targets that make risk buy the same quantity of each, limits at the computed prices); an opportunity the
fees erase is refused; a single-book leg is priced from its complement; a resolution ends the pair."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest

from tradewire_common.config import InstrumentSpec
from tradewire_common.schemas import MarketResolved, OrderType, OutcomePayout, Side
from tradewire_signals.prediction.arbitrage import PredictionArbitrage, PredictionArbitrageParams
from tradewire_signals.prediction.book import LocalBook

K_YES, K_NO = "FED-YES.KALSHI", "FED-NO.KALSHI"
P_YES, P_NO = "111.POLYMARKET", "222.POLYMARKET"


def arbitrage(**params: object) -> PredictionArbitrage:
    args = {"pairs": f"{K_YES}|{P_NO}", "contracts": "10", "equity_fraction": "0.2", **params}
    s = PredictionArbitrage("arb", (K_YES, P_NO), msgspec.convert(args, PredictionArbitrageParams, strict=False))
    s.bind({K_YES: InstrumentSpec(id=K_YES, kind="binary", market_id="FED", complement=K_NO),
            P_NO: InstrumentSpec(id=P_NO, kind="binary", market_id="0xfed", complement=P_YES)})
    return s


def asks(iid: str, *levels: tuple[str, int], ts: int = 7) -> LocalBook:
    return LocalBook(iid, {}, {D(p): D(s) for p, s in levels}, 0, ts, False, "book")


def test_a_pair_below_one_after_fees_emits_both_legs_with_one_correlation_id_and_equal_quantities() -> None:
    s = arbitrage()
    books = {K_YES: asks(K_YES, ("0.45", 10)), P_NO: asks(P_NO, ("0.48", 4), ("0.50", 20))}
    yes, no = s.on_book(P_NO, books)
    # Kalshi fee on 10 at 0.45: ceil(0.07 * 10 * 0.45 * 0.55 = 0.17325) = 0.18 -> 0.018 a contract;
    # Polymarket NO for 10: (4 * 0.48 + 6 * 0.50) / 10 = 0.492, no fee; pair cost 0.45 + 0.492 + 0.018 = 0.96
    assert "pair cost 0.960" in yes.reason
    assert (yes.side, yes.instrument_id, yes.price, yes.limit_price) == (Side.BUY, K_YES, D("0.45"), D("0.45"))
    assert (no.side, no.instrument_id, no.price, no.limit_price) == (Side.BUY, P_NO, D("0.492"), D("0.50"))
    assert yes.order_type is no.order_type is OrderType.LIMIT
    assert yes.correlation_id == no.correlation_id and yes.correlation_id
    # risk buys target * equity / price of each leg: the same number of contracts, and together they cost
    # equity_fraction of equity
    assert yes.target is not None and no.target is not None
    assert yes.target / yes.price == pytest.approx(no.target / no.price, rel=D("1e-25"))
    assert yes.target + no.target == pytest.approx(D("0.2"), rel=D("1e-25"))
    assert s.on_book(P_NO, books) == []  # the pair is held for cooldown_s


def test_an_opportunity_the_fees_erase_is_refused() -> None:
    s = arbitrage()
    # 0.49 + 0.50 = 0.99 < 1 before fees; Kalshi's fee ceil(0.07 * 10 * 0.49 * 0.51 = 0.17493) = 0.18 adds
    # 0.018 a contract: 1.008
    books = {K_YES: asks(K_YES, ("0.49", 10)), P_NO: asks(P_NO, ("0.50", 10))}
    assert s.on_book(K_YES, books) == []
    assert s.refused == 1
    # Polymarket's own fee counts too: 0.45 + 0.50 = 0.95, + 0.018 Kalshi, + 0.1 * min(0.5, 0.5) = 0.05 -> 1.018
    poly_fee = arbitrage(polymarket_fee_bps="1000")
    assert poly_fee.on_book(K_YES, {K_YES: asks(K_YES, ("0.45", 10)), P_NO: asks(P_NO, ("0.50", 10))}) == []
    assert poly_fee.refused == 1


def test_min_profit_is_a_strict_threshold() -> None:
    books = {K_YES: asks(K_YES, ("0.45", 10)), P_NO: asks(P_NO, ("0.50", 10))}  # cost 0.968, profit 0.032
    assert arbitrage(min_profit="0.032").on_book(K_YES, books) == []
    assert len(arbitrage(min_profit="0.031").on_book(K_YES, books)) == 2


def test_a_single_book_leg_is_priced_from_its_complements_bids() -> None:
    s = arbitrage(pairs=f"{P_YES}|{K_NO}")
    s.bind({K_NO: InstrumentSpec(id=K_NO, kind="binary", market_id="FED", complement=K_YES)})
    kalshi_yes = LocalBook(K_YES, {D("0.52"): D(10)}, {D("0.55"): D(10)}, 0, 7, False, "book")
    # Kalshi NO = 1 - YES bid 0.52 = 0.48; fee ceil(0.07 * 10 * 0.48 * 0.52) = 0.18; + Polymarket YES 0.45 -> 0.948
    yes, no = s.on_book(K_YES, {K_YES: kalshi_yes, P_YES: asks(P_YES, ("0.45", 10))})
    assert (no.instrument_id, no.price) == (K_NO, D("0.48")) and "pair cost 0.948" in yes.reason


def test_a_resolved_market_is_not_traded() -> None:
    s = arbitrage()
    s.on_resolution(MarketResolved(id="r", ts_event=1, ts_init=1, venue="KALSHI", market_id="FED", resolution="NO",
                                   payouts=(OutcomePayout(instrument_id=K_YES, payout=D(0)),)))
    assert s.on_book(K_YES, {K_YES: asks(K_YES, ("0.10", 10)), P_NO: asks(P_NO, ("0.10", 10))}) == []


def test_pairs_must_name_a_yes_and_a_no_instrument() -> None:
    with pytest.raises(msgspec.ValidationError, match="pairs"):
        msgspec.convert({"pairs": "A.KALSHI"}, PredictionArbitrageParams, strict=False)


def test_leg_prices_go_on_each_tick_grid_and_the_targets_still_buy_equal_quantities() -> None:
    s = arbitrage()
    s.ticks = {K_YES: D("0.01"), P_NO: D("0.001")}
    books = {K_YES: asks(K_YES, ("0.44", 5), ("0.45", 5)), P_NO: asks(P_NO, ("0.492", 5), ("0.493", 5))}
    yes, no = s.on_book(K_YES, books)
    # payable 0.445 -> 0.45 on Kalshi's cent grid, 0.4925 -> 0.493 on Polymarket's tenth of a cent
    assert (yes.price, no.price) == (D("0.45"), D("0.493"))
    assert yes.target is not None and no.target is not None
    equity = D(10_000)  # what risk computes: target * equity / price, for each leg
    assert yes.target * equity / yes.price == pytest.approx(no.target * equity / no.price, rel=D("1e-25"))
