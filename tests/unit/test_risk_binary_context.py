"""Risk's context and the prediction-market events: a reversed fill does not linger (strategy book, open
orders), a confirmation makes it final, a resolution settles the legs and ends the open orders, a replaced
order continues under its new id, and a rebuild from the ledger skips reversed fills and knows resolutions."""

from __future__ import annotations

import itertools
from decimal import Decimal

from tests.unit.test_risk_binary import MARKET, NO, YES, resolution
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    FillConfirmed,
    FillReversed,
    Liquidity,
    OrderCanceled,
    OrderFilled,
    OrderReplaced,
    OrderType,
    Side,
    SubmitOrder,
)
from tradewire_risk.context import RiskContext

D = Decimal
T0 = 1_700_000_000_000_000_000
STRAT = "pm_edge"
_n = itertools.count(1)


def submit(ctx: RiskContext, qty: str, *, coid: str, instrument: str = YES, limit: str = "0.40") -> None:
    ctx.record_submit(SubmitOrder(id=derive_id("ctx-submit", coid), ts_event=T0, ts_init=T0, strategy_id=STRAT,
                                  instrument_id=instrument, client_order_id=coid, side=Side.BUY,
                                  order_type=OrderType.LIMIT, quantity=D(qty), limit_price=D(limit)), D(limit))


def fill(coid: str, qty: str, px: str = "0.40", *, partial: bool, provisional: bool = False,
         side: Side = Side.BUY, instrument: str = YES) -> OrderFilled:
    n = next(_n)
    return OrderFilled(id=derive_id("ctx-fill", n), ts_event=T0 + n, ts_init=T0 + n, strategy_id=STRAT,
                       instrument_id=instrument, client_order_id=coid, venue_order_id="v", trade_id=f"t{n}",
                       side=side, last_qty=D(qty), last_px=D(px), fee=D("0.01"), fee_currency="USD",
                       liquidity=Liquidity.MAKER, partial=partial, provisional=provisional)


def reversal(f: OrderFilled) -> FillReversed:
    return FillReversed(id=derive_id("ctx-rev", f.trade_id), ts_event=f.ts_event + 1, ts_init=f.ts_event + 1,
                        strategy_id=STRAT, instrument_id=f.instrument_id, client_order_id=f.client_order_id,
                        venue_order_id="v", trade_id=f.trade_id, side=f.side, last_qty=f.last_qty, last_px=f.last_px,
                        fee=f.fee)


def confirmation(f: OrderFilled) -> FillConfirmed:
    return FillConfirmed(id=derive_id("ctx-conf", f.trade_id), ts_event=f.ts_event + 1, ts_init=f.ts_event + 1,
                         strategy_id=STRAT, instrument_id=f.instrument_id, client_order_id=f.client_order_id,
                         venue_order_id="v", trade_id=f.trade_id)


def test_a_reversed_partial_fill_gives_the_order_its_quantity_back_and_leaves_the_book() -> None:
    ctx = RiskContext()
    submit(ctx, "100", coid="tw-a")
    first = fill("tw-a", "30", partial=True)
    failed = fill("tw-a", "40", "0.42", partial=True, provisional=True)
    for m in (first, failed):
        ctx.apply(m)
    (order,) = ctx.orders()
    assert order.remaining == D(30) and ctx.book.position(STRAT, YES) == D(70)
    ctx.apply(reversal(failed))
    assert order.remaining == D(70) and ctx.book.position(STRAT, YES) == D(30)
    ctx.apply(reversal(failed))  # again
    ctx.apply(failed)  # a late redelivery of the fill itself
    assert order.remaining == D(70) and ctx.book.position(STRAT, YES) == D(30)
    never = RiskContext()
    never.apply(first)
    assert ctx.book.positions(STRAT) == never.book.positions(STRAT)
    assert ctx.book.record(STRAT).filled_orders == never.book.record(STRAT).filled_orders == 1


def test_an_order_closed_by_a_provisional_final_fill_reopens_when_it_is_reversed() -> None:
    ctx = RiskContext()
    submit(ctx, "50", coid="tw-b")
    failed = fill("tw-b", "50", partial=False, provisional=True)
    ctx.apply(failed)
    assert ctx.orders() == []
    ctx.apply(reversal(failed))
    (order,) = ctx.orders()
    assert (order.client_order_id, order.remaining) == ("tw-b", D(50))


def test_a_confirmed_or_cancelled_order_is_not_reopened() -> None:
    ctx = RiskContext()
    submit(ctx, "50", coid="tw-c")
    submit(ctx, "50", coid="tw-d")
    c, d = fill("tw-c", "50", partial=False, provisional=True), fill("tw-d", "50", partial=False, provisional=True)
    ctx.apply(c)
    ctx.apply(d)
    ctx.apply(confirmation(c))
    ctx.apply(OrderCanceled(id=derive_id("ctx-cancel"), ts_event=T0, ts_init=T0, strategy_id=STRAT,
                            instrument_id=YES, client_order_id="tw-d"))
    ctx.apply(reversal(c))
    ctx.apply(reversal(d))
    assert ctx.orders() == [] and ctx.book.position(STRAT, YES) == 0


def test_a_resolution_settles_the_legs_at_the_payout_and_ends_the_open_orders() -> None:
    ctx = RiskContext()
    submit(ctx, "10", coid="tw-rest")
    ctx.apply(fill("tw-yes", "100", "0.40", partial=False))
    ctx.apply(fill("tw-no", "20", "0.55", partial=False, instrument=NO))
    ctx.apply(resolution((YES, "1"), (NO, "0")))
    assert ctx.book.positions(STRAT) == {} and ctx.orders() == []
    record = ctx.book.record(STRAT)
    # YES: 100 * (1 - 0.40) - 0.01 = 59.99 (a win); NO: 20 * (0 - 0.55) - 0.01 = -11.01 (a loss)
    assert (record.wins, record.win_sum, record.losses, record.loss_sum) == (1, D("59.99"), 1, D("11.01"))
    assert ctx.resolved == {YES: D(1), NO: D(0)} and ctx.resolved_markets == {MARKET: "YES"}


def test_a_replaced_order_continues_under_its_new_id() -> None:
    ctx = RiskContext()
    submit(ctx, "100", coid="tw-old")
    ctx.apply(fill("tw-old", "20", partial=True))
    ctx.apply(OrderReplaced(id=derive_id("ctx-replaced"), ts_event=T0, ts_init=T0, strategy_id=STRAT,
                            instrument_id=YES, client_order_id="tw-old", new_client_order_id="tw-new",
                            venue_order_id="v", quantity=D(60), limit_price=D("0.45"), filled_qty=D(20)))
    (order,) = ctx.orders()
    assert (order.client_order_id, order.remaining, ctx.order_notional(order)) == ("tw-new", D(40), D(18))
    assert ctx.knows("tw-new")


def test_a_rebuild_skips_reversed_fills_and_knows_the_resolved_markets() -> None:
    ctx = RiskContext()
    row = {"strategy_id": STRAT, "instrument_id": YES, "side": "BUY", "last_px": "0.40", "fee": "0", "ts_event": T0}
    ctx.restore_fills([{**row, "seq": 1, "client_order_id": "tw-a", "trade_id": "t1", "last_qty": "10",
                        "status": "confirmed"},
                       {**row, "seq": 2, "client_order_id": "tw-b", "trade_id": "t2", "last_qty": "5",
                        "status": "reversed"}])
    assert ctx.book.position(STRAT, YES) == D(10)
    payouts = [{"instrument_id": YES, "payout": "0"}, {"instrument_id": NO, "payout": "1"}]
    ctx.restore_resolutions([{"market_id": MARKET, "resolution": "NO", "payouts": payouts}])
    assert ctx.book.position(STRAT, YES) == 0 and ctx.resolved == {YES: D(0), NO: D(1)}
    late = OrderFilled(id=derive_id("late"), ts_event=T0, ts_init=T0, strategy_id=STRAT, instrument_id=YES,
                       client_order_id="tw-b", venue_order_id="v", trade_id="t2", side=Side.BUY, last_qty=D(5),
                       last_px=D("0.4"), fee=D(0), fee_currency="USD", liquidity=Liquidity.MAKER, partial=False)
    ctx.apply(late)  # the reversed fill redelivered after the rebuild: not applied
    assert ctx.book.position(STRAT, YES) == 0
