"""The risk context: what it learns from order events, watermarks, bars and snapshots, and how it is
rebuilt from the ledger's rows after a restart. Times are event times (``T0`` plus seconds)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.unit.test_risk_checks import DAY0, HOUR, MINUTE, SECOND, T0, fill, open_order
from tests.unit.test_risk_engine import BTC, ETH
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    ExecutionWatermark,
    OrderAccepted,
    OrderExpired,
    OrderRejected,
    PortfolioSnapshot,
    Side,
)
from tradewire_risk.context import RiskContext

D = Decimal


def watermark(venue: str, ts: int, instrument: str = "", close: str | None = None) -> ExecutionWatermark:
    return ExecutionWatermark(id=derive_id("wm", venue, ts), ts_event=ts, ts_init=ts, venue=venue,
                              instrument_id=instrument, close=None if close is None else D(close))


def test_an_order_stays_open_through_acceptance_and_partial_fills_until_its_final_fill() -> None:
    ctx = RiskContext()
    coid = open_order(ctx, Side.BUY, "10", limit="100")
    ctx.apply(OrderAccepted(id=derive_id("acc", coid), ts_event=T0, ts_init=T0, strategy_id="sma_cross",
                            instrument_id=BTC, client_order_id=coid, venue_order_id="v1"))
    fill(ctx, coid, Side.BUY, "4", partial=True)
    (order,) = ctx.orders()
    assert (order.remaining, ctx.order_notional(order)) == (D("6"), D("600"))
    fill(ctx, coid, Side.BUY, "6")
    assert ctx.orders() == []


def test_rejects_and_expiries_close_orders_and_late_events_do_not_reopen_them() -> None:
    ctx = RiskContext()
    rejected, expired = open_order(ctx, Side.BUY, "1"), open_order(ctx, Side.SELL, "1")
    ctx.apply(OrderRejected(id=derive_id("rej"), ts_event=T0, ts_init=T0, strategy_id="sma_cross", instrument_id=BTC,
                            client_order_id=rejected, reason="venue says no"))
    ctx.apply(OrderExpired(id=derive_id("exp"), ts_event=T0, ts_init=T0, strategy_id="sma_cross", instrument_id=BTC,
                           client_order_id=expired))
    assert ctx.orders() == []
    ctx.restore_orders([{"client_order_id": rejected, "strategy_id": "sma_cross", "instrument_id": BTC,
                         "side": "BUY", "quantity": "1", "limit_price": None, "status": "ACCEPTED",
                         "filled_qty": "0", "created_ts": T0}])
    assert ctx.orders() == []


def test_the_context_covers_a_time_once_every_venue_with_a_watermark_reached_it() -> None:
    ctx = RiskContext()
    assert ctx.covers(T0)  # no venue has published yet
    ctx.apply(watermark("BINANCE", T0 - MINUTE))
    ctx.apply(watermark("KRAKEN", T0))
    assert not ctx.covers(T0)
    ctx.apply(watermark("BINANCE", T0))
    assert ctx.covers(T0) and not ctx.covers(T0 + 1)


def test_watermarks_carry_the_last_bar_close_and_an_older_one_never_overrides_it() -> None:
    ctx = RiskContext()
    assert ctx.last_price(BTC) is None
    ctx.apply(watermark("BINANCE", T0, BTC, "101"))
    ctx.apply(watermark("BINANCE", T0 - MINUTE, BTC, "99"))
    assert ctx.last_price(BTC) == D("101")


def test_submissions_are_counted_in_the_minute_up_to_a_time() -> None:
    ctx = RiskContext()
    for ts in (T0, T0 + 30 * SECOND, T0 + MINUTE):
        open_order(ctx, Side.BUY, "1", ts=ts, instrument=ETH)
    assert ctx.submits_in_minute(T0 + MINUTE, strategy_id="sma_cross") == 2  # T0 is exactly a minute old
    assert ctx.submits_in_minute(T0 + MINUTE - 1, strategy_id="sma_cross") == 2
    assert ctx.submits_in_minute(T0 + MINUTE, venue="BINANCE") == 2
    assert ctx.submits_in_minute(T0 + MINUTE, strategy_id="other") == 0


def snap(as_of: int, equity: str) -> PortfolioSnapshot:
    return PortfolioSnapshot(id=derive_id("pf", as_of), ts_event=as_of, ts_init=as_of, account="paper",
                             cash=D(equity), equity=D(equity), realized_pnl=D(0), unrealized_pnl=D(0),
                             gross_exposure=D(0), positions=(), as_of=as_of)


def test_equity_history_keeps_the_peak_and_the_start_of_each_utc_day() -> None:
    ctx = RiskContext()
    for as_of, equity in ((DAY0 - 2 * HOUR, "10000"), (DAY0 - HOUR, "11000"), (DAY0 + HOUR, "10500")):
        ctx.apply(snap(as_of, equity))
    assert (ctx.peak_equity, ctx.day_start_equity) == (D("11000"), D("11000"))
    ctx.apply(snap(DAY0 - 3 * HOUR, "20000"))  # out of order: counts for the peak, not for the day
    assert (ctx.peak_equity, ctx.day_start_equity) == (D("20000"), D("11000"))


def ledger_rows() -> dict[str, list[dict[str, Any]]]:
    """What the ledger's /v1/orders, /v1/fills and /v1/equity answer (newest first, equity oldest first)."""
    orders: list[dict[str, Any]] = [
        {"client_order_id": "tw-open-limit", "strategy_id": "sma_cross", "instrument_id": BTC, "side": "BUY",
         "quantity": "5", "limit_price": "90", "status": "PARTIALLY_FILLED", "filled_qty": "2",
         "created_ts": T0 - 10 * SECOND},
        {"client_order_id": "tw-filled", "strategy_id": "sma_cross", "instrument_id": BTC, "side": "BUY",
         "quantity": "3", "limit_price": None, "status": "FILLED", "filled_qty": "3", "created_ts": T0 - 20 * SECOND},
        {"client_order_id": "tw-denied", "strategy_id": "sma_cross", "instrument_id": BTC, "side": "BUY",
         "quantity": None, "limit_price": None, "status": "DENIED", "filled_qty": "0", "created_ts": T0},
    ]
    fills: list[dict[str, Any]] = [
        {"seq": 2, "client_order_id": "tw-open-limit", "trade_id": "t2", "strategy_id": "sma_cross",
         "instrument_id": BTC, "side": "BUY", "last_qty": "2", "last_px": "90", "fee": "0", "ts_event": T0 - 5},
        {"seq": 1, "client_order_id": "tw-filled", "trade_id": "t1", "strategy_id": "sma_cross",
         "instrument_id": BTC, "side": "BUY", "last_qty": "3", "last_px": "100", "fee": "0.3", "ts_event": T0 - 9},
    ]
    equity: list[dict[str, Any]] = [{"ts": DAY0 - HOUR, "equity": "10200"}, {"ts": DAY0 + HOUR, "equity": "10100"}]
    return {"orders": orders, "fills": fills, "equity": equity}


def test_a_context_rebuilt_from_the_ledger_knows_open_orders_fills_submissions_and_equity() -> None:
    rows = ledger_rows()
    ctx = RiskContext()
    ctx.restore_orders(rows["orders"])
    ctx.restore_fills(rows["fills"])
    ctx.restore_equity(rows["equity"])
    (order,) = ctx.orders()
    assert (order.client_order_id, order.remaining, ctx.order_notional(order)) == ("tw-open-limit", D("3"), D("270"))
    assert all(ctx.knows(coid) for coid in ("tw-open-limit", "tw-filled", "tw-denied"))
    assert ctx.submits_in_minute(T0, strategy_id="sma_cross") == 2  # the denial was never submitted
    assert ctx.book.position("sma_cross", BTC) == D("5")
    record = ctx.book.record("sma_cross")
    assert (record.first_fill_ts, record.filled_orders) == (T0 - 9, 2)
    assert (ctx.peak_equity, ctx.day_start_equity) == (D("10200"), D("10200"))


def test_events_already_in_the_rebuild_change_nothing_when_redelivered() -> None:
    rows = ledger_rows()
    ctx = RiskContext()
    ctx.restore_fills(rows["fills"])
    ctx.restore_fills(rows["fills"])
    assert ctx.book.position("sma_cross", BTC) == D("5")
