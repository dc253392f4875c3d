"""The Manifold adapter's pure parts: shares -> mana bet bodies for every side and outcome, and the recorded real
limit bets of 2022 (PyManifold's cassette) read as venue orders and fills."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradewire_common.ids import derive_id
from tradewire_common.schemas import OrderType, Side, SubmitOrder, TimeInForce
from tradewire_execution.live.credentials import Credentials
from tradewire_execution.venues.manifold_adapter import ManifoldAdapter, bet_request, outcome_of

BETS = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "prediction" / "manifold"
                   / "v0_bets_limit45_2022-10-10.json").read_text())


def order(symbol: str, side: Side, qty: str, price: str, **kw: Any) -> SubmitOrder:
    return SubmitOrder(id=derive_id("o", symbol, side, qty, price), ts_event=1, ts_init=1, strategy_id="pm",
                       instrument_id=f"{symbol}.MANIFOLD", client_order_id="tw-1", side=side,
                       order_type=OrderType.LIMIT, quantity=Decimal(qty), limit_price=Decimal(price), **kw)


def recorded(bet_id: str) -> dict[str, Any]:
    return next(b for b in BETS if b["id"] == bet_id)


@pytest.mark.parametrize(("symbol", "side", "outcome", "amount", "limit_prob"), [
    ("c1-YES", Side.BUY, "YES", 4.0, 0.4),    # Q * P of YES at P
    ("c1-NO", Side.BUY, "NO", 3.0, 0.7),      # Q * P of NO; the YES probability is 1 - P
    ("c1-YES", Side.SELL, "NO", 6.0, 0.4),    # selling YES = a NO bet, Q * (1 - P), at P
    ("c1-NO", Side.SELL, "YES", 7.0, 0.7),    # selling NO = a YES bet, Q * (1 - P), at 1 - P
])
def test_a_limit_order_for_q_shares_at_p_becomes_the_bet_that_buys_them(
    symbol: str, side: Side, outcome: str, amount: float, limit_prob: float
) -> None:
    price = "0.40" if symbol.endswith("YES") else "0.30"
    assert bet_request(order(symbol, side, "10", price)) == {
        "contractId": "c1", "outcome": outcome, "amount": amount, "limitProb": limit_prob}


def test_gtd_carries_expires_at_in_ms_and_symbols_name_contract_and_outcome() -> None:
    body = bet_request(order("c1-YES", Side.BUY, "10", "0.4", time_in_force=TimeInForce.GTD,
                             expire_time_ns=1_800_000_000_123_456_789))
    assert body["expiresAt"] == 1_800_000_000_123
    assert outcome_of("abc-def-NO") == ("abc-def", "NO")
    with pytest.raises(ValueError):
        outcome_of("abc-MAYBE")


def test_recorded_cancelled_limit_bets_read_as_cancelled_orders_with_their_filled_shares() -> None:
    adapter = ManifoldAdapter("MANIFOLD", credentials=Credentials(api_key="k"), base_url="http://127.0.0.1:9")
    partly = adapter.parse_bet(recorded("GNhvq9ENJ3JHDipJ9cJY"), "tw-1")  # NO limit .45, 2.64 of 100 mana filled
    assert (partly.status, partly.venue_order_id, partly.filled_qty) == ("canceled", "GNhvq9ENJ3JHDipJ9cJY",
                                                                        Decimal("4.87433909"))
    assert partly.symbol == "4eSUQyVX5UH0y1QqRlQM-NO" and partly.ts_ns == 1665430259329 * 1_000_000
    untouched = adapter.parse_bet(recorded("OwRdCima5kUa4T8ZDbrk"), "tw-2")
    assert (untouched.status, untouched.filled_qty) == ("canceled", 0)
    filled_market_bet = adapter.parse_bet(BETS[0], "")  # a plain bet: filled at once
    assert filled_market_bet.status == "filled"


def test_recorded_fills_are_fills_of_the_order_priced_by_its_side() -> None:
    adapter = ManifoldAdapter("MANIFOLD", credentials=Credentials(api_key="k"), base_url="http://127.0.0.1:9")
    raw = recorded("GNhvq9ENJ3JHDipJ9cJY")
    (buy_no,) = adapter.fills_of(raw, order("4eSUQyVX5UH0y1QqRlQM-NO", Side.BUY, "100", "0.55"))
    paid = Decimal("2.64148955124206") / Decimal("4.874339087942602")
    assert buy_no.trade_id == "GNhvq9ENJ3JHDipJ9cJY:0" and buy_no.quantity == Decimal("4.87433909")
    assert abs(buy_no.price - paid) < Decimal("1e-12") and buy_no.fee_currency == "MANA"
    (sell_yes,) = adapter.fills_of(raw, order("4eSUQyVX5UH0y1QqRlQM-YES", Side.SELL, "100", "0.45"))
    assert sell_yes.side is Side.SELL and abs(sell_yes.price - (1 - paid)) < Decimal("1e-12")
    assert adapter.fills_of(recorded("OwRdCima5kUa4T8ZDbrk"), order("nAuWvKA0ez4faRYVHV5z-YES", Side.BUY, "1",
                                                                     "0.7")) == []


def test_a_lost_bet_is_the_first_matching_one_after_the_send_not_one_claimed_or_different() -> None:
    adapter = ManifoldAdapter("MANIFOLD", credentials=Credentials(api_key="k"), base_url="http://127.0.0.1:9")
    o = order("c1-YES", Side.BUY, "10", "0.40")
    sent_ms = 1_700_000_000_000

    def bet(bet_id: str, offset_ms: int, **kw: Any) -> dict[str, Any]:
        return {"id": bet_id, "outcome": "YES", "limitProb": 0.4, "orderAmount": 4.0,
                "createdTime": sent_ms + offset_ms, **kw}

    bets = [bet("older", -5_000), bet("other-price", 30, limitProb=0.41), bet("other-amount", 40, orderAmount=5),
            bet("ours", 50), bet("later-twin", 900)]
    assert adapter.find_lost_bet(o, bets, sent_ns=sent_ms * 1_000_000)["id"] == "ours"  # type: ignore[index]
    assert adapter.find_lost_bet(o, [bet("skewed", -2_000)], sent_ns=sent_ms * 1_000_000)["id"] == "skewed"  # type: ignore[index]
    assert adapter.find_lost_bet(o, [bet("too-old", -120_000)], sent_ns=sent_ms * 1_000_000) is None
