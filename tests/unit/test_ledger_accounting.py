"""Portfolio accounting: positions, average prices, PnL, cash and equity invariants."""

from __future__ import annotations

import itertools
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from tradewire_common.ids import derive_id, new_id
from tradewire_common.schemas import Liquidity, OrderFilled, PortfolioSnapshot, Side, decode, encode
from tradewire_ledger.accounting import Portfolio

D = Decimal
BTC = "BTCUSDT.BINANCE"
ETH = "ETHUSDT.BINANCE"
_trade = itertools.count(1)


def fill(
    side: Side,
    qty: str,
    px: str,
    *,
    fee: str = "0",
    instrument: str = BTC,
    ts: int = 1_000,
    coid: str = "tw-test",
    partial: bool = False,
) -> OrderFilled:
    trade_id = f"t{next(_trade)}"
    return OrderFilled(
        id=derive_id("fill", coid, trade_id),
        ts_event=ts,
        ts_init=ts,
        strategy_id="sma_cross",
        instrument_id=instrument,
        client_order_id=coid,
        venue_order_id="v1",
        trade_id=trade_id,
        side=side,
        last_qty=D(qty),
        last_px=D(px),
        fee=D(fee),
        fee_currency="USD",
        liquidity=Liquidity.TAKER,
        partial=partial,
    )


def snap(p: Portfolio, ts: int = 0) -> PortfolioSnapshot:
    return p.snapshot(message_id=new_id(), ts_init=ts, correlation_id="c")


class FractionModel:
    """Independent hand computation with exact fractions (average-cost accounting)."""

    def __init__(self, cash: str) -> None:
        self.cash = Fraction(cash)
        self.qty: dict[str, Fraction] = {}
        self.avg: dict[str, Fraction] = {}
        self.last: dict[str, Fraction] = {}
        self.realized = Fraction(0)

    def apply(self, f: OrderFilled) -> None:
        q = Fraction(f.last_qty) * (1 if f.side is Side.BUY else -1)
        px, fee = Fraction(f.last_px), Fraction(f.fee)
        old, avg = self.qty.get(f.instrument_id, Fraction(0)), self.avg.get(f.instrument_id, Fraction(0))
        new = old + q
        if old == 0 or (old > 0) == (q > 0):
            avg = (abs(old) * avg + abs(q) * px) / abs(new)
        else:
            closed = min(abs(q), abs(old))
            self.realized += (px - avg) * closed * (1 if old > 0 else -1)
            avg = Fraction(0) if new == 0 else (px if (new > 0) != (old > 0) else avg)
        self.qty[f.instrument_id], self.avg[f.instrument_id] = new, avg
        self.cash += -q * px - fee
        self.realized -= fee
        self.last[f.instrument_id] = px

    def unrealized(self) -> Fraction:
        return sum(((self.last[i] - self.avg[i]) * q for i, q in self.qty.items()), Fraction(0))

    def equity(self) -> Fraction:
        return self.cash + sum((q * self.last[i] for i, q in self.qty.items()), Fraction(0))

    def exposure(self) -> Fraction:
        return sum((abs(q * self.last[i]) for i, q in self.qty.items()), Fraction(0))


def close(a: Decimal, b: Fraction, tol: Fraction = Fraction(1, 10**20)) -> bool:
    return abs(Fraction(a) - b) <= tol


def test_long_round_trip_with_fees() -> None:
    p = Portfolio("paper", D("10000"), "USD")
    p.apply_fill(fill(Side.BUY, "2", "100", fee="0.2"))
    s = snap(p)
    assert s.cash == D("9799.8")
    assert s.equity == D("9999.8")
    assert s.positions[0].quantity == D(2) and s.positions[0].avg_price == D(100)
    assert s.realized_pnl == D("-0.2") and s.unrealized_pnl == 0

    p.mark(BTC, D("110"), 2_000)
    s = snap(p)
    assert s.unrealized_pnl == D(20) and s.equity == D("10019.8") and s.gross_exposure == D(220)

    p.apply_fill(fill(Side.SELL, "2", "110", fee="0.22", ts=3_000))
    s = snap(p)
    assert s.cash == D("10019.58")
    assert s.equity == s.cash
    assert s.realized_pnl == D("19.58")  # 20 gross - 0.42 fees
    assert s.unrealized_pnl == 0 and s.gross_exposure == 0
    assert p.fees_paid == D("0.42")
    assert s.fills == 2
    (pos,) = s.positions
    assert pos.quantity == 0 and pos.avg_price == 0 and pos.realized_pnl == D("19.58")
    assert s.equity == p.starting_cash + s.realized_pnl + s.unrealized_pnl


def test_partial_fills_average_the_entry_price() -> None:
    p = Portfolio("paper", D("10000"))
    p.apply_fill(fill(Side.BUY, "1", "100", partial=True))
    p.apply_fill(fill(Side.BUY, "2", "101", partial=True))
    p.apply_fill(fill(Side.BUY, "0.5", "99.5"))
    pos = p.position(BTC)
    assert pos is not None
    assert pos.quantity == D("3.5")
    expected = (Fraction(100) + 2 * Fraction(101) + Fraction("0.5") * Fraction("99.5")) / Fraction("3.5")
    assert close(pos.avg_price, expected, Fraction(1, 10**30))
    assert p.cash == D("10000") - D("100") - D("202") - D("49.75")
    # Partial reduction keeps the average and realises against it.
    p.apply_fill(fill(Side.SELL, "1.5", "102"))
    pos = p.position(BTC)
    assert pos is not None and pos.quantity == 2 and close(pos.avg_price, expected, Fraction(1, 10**30))
    assert close(p.realized_pnl, (102 - expected) * Fraction("1.5"))


def test_short_and_flip_through_zero() -> None:
    p = Portfolio("paper", D("1000"))
    p.apply_fill(fill(Side.SELL, "3", "50", fee="0.15", ts=1))
    s = snap(p)
    assert s.positions[0].quantity == D(-3) and s.positions[0].avg_price == 50
    assert s.cash == D("1149.85")  # a short sale receives cash
    assert s.equity == D("999.85")
    assert s.gross_exposure == D(150)

    p.mark(BTC, D(40), 2)
    s = snap(p)
    assert s.unrealized_pnl == D(30)  # short gains when the price falls
    assert s.equity == D("1029.85")

    # Buy 5 at 40: close 3 short (+30 realised), open 2 long at 40.
    p.apply_fill(fill(Side.BUY, "5", "40", fee="0.2", ts=3))
    s = snap(p)
    pos = s.positions[0]
    assert pos.quantity == D(2) and pos.avg_price == D(40)
    assert s.realized_pnl == D("29.65")  # 30 - 0.15 - 0.2
    assert s.unrealized_pnl == 0
    assert s.cash == D("1149.85") - D(200) - D("0.2")
    assert s.equity == s.cash + 2 * D(40)
    assert s.equity == p.starting_cash + s.realized_pnl + s.unrealized_pnl

    # Sell 4 at 45: close 2 long (+10), open 2 short at 45.
    p.apply_fill(fill(Side.SELL, "4", "45", ts=4))
    pos = snap(p).positions[0]
    assert pos.quantity == D(-2) and pos.avg_price == D(45)
    assert p.realized_pnl == D("39.65")


def test_unrealized_uses_fill_price_until_marked_and_ignores_stale_marks() -> None:
    p = Portfolio("paper", D("1000"))
    p.apply_fill(fill(Side.BUY, "1", "100", ts=10))
    assert snap(p).positions[0].last_price == D(100)
    p.mark(BTC, D(90), 5)  # older than the fill: ignored
    assert snap(p).positions[0].last_price == D(100)
    p.mark(BTC, D(120), 20)
    s = snap(p)
    assert s.positions[0].last_price == D(120) and s.unrealized_pnl == D(20)
    p.mark(ETH, D(3000), 20)  # a mark without a position adds no position
    assert [x.instrument_id for x in snap(p).positions] == [BTC]
    with pytest.raises(ValueError):
        p.mark(BTC, D(0), 30)


def test_watermark_only_moves_forward_and_is_the_snapshot_time() -> None:
    p = Portfolio("paper", D("1000"))
    assert snap(p).as_of == 0
    p.advance(100)
    p.advance(50)
    s = snap(p, ts=999)
    assert s.as_of == 100 and s.ts_event == 100 and s.ts_init == 999
    assert s.account == "paper" and s.correlation_id == "c"


def test_many_fills_match_an_exact_fraction_model() -> None:
    p = Portfolio("paper", D("25000"))
    model = FractionModel("25000")
    script = [
        (Side.BUY, "0.3", "20001.17", "0.61", BTC),
        (Side.BUY, "7", "1500.3", "1.05", ETH),
        (Side.BUY, "0.7", "20100.01", "1.4", BTC),
        (Side.SELL, "0.25", "20333.33", "0.5", BTC),
        (Side.SELL, "10", "1490.9", "1.49", ETH),  # flip ETH short
        (Side.BUY, "0.1", "19999.99", "0.2", BTC),
        (Side.BUY, "1", "1470", "0.15", ETH),
        (Side.SELL, "1.85", "20500", "3.8", BTC),  # flip BTC short
        (Side.BUY, "3", "1480.5", "0.44", ETH),  # ETH flat
    ]
    for ts, (side, qty, px, fee, inst) in enumerate(script, start=1):
        f = fill(side, qty, px, fee=fee, instrument=inst, ts=ts)
        p.apply_fill(f)
        model.apply(f)
        s = snap(p)
        assert s.cash == model.cash  # cash is exact: no division involved
        assert s.equity == model.equity()  # so is equity
        assert close(s.realized_pnl, model.realized)
        assert close(s.unrealized_pnl, model.unrealized())
        assert s.gross_exposure == model.exposure()
        # Invariants: equity = start + realised + unrealised; Σ position PnL = portfolio PnL.
        assert close(s.equity - p.starting_cash - s.realized_pnl - s.unrealized_pnl, Fraction(0))
        assert close(sum((x.realized_pnl for x in s.positions), D(0)), Fraction(s.realized_pnl))
        assert close(sum((x.unrealized_pnl for x in s.positions), D(0)), Fraction(s.unrealized_pnl))
        assert not any(str(v).startswith("-0") for x in s.positions for v in (x.quantity, x.unrealized_pnl))
        assert [x.instrument_id for x in s.positions] == sorted(x.instrument_id for x in s.positions)
        assert s.fills == ts
    p.mark(BTC, D("19000.5"), 100)
    model.last[BTC] = Fraction("19000.5")
    s = snap(p)
    assert s.equity == model.equity()
    assert close(s.unrealized_pnl, model.unrealized())
    assert p.fees_paid == sum((D(x[3]) for x in script), D(0))
    # The snapshot survives the wire with every decimal intact.
    assert decode(encode(s)) == s


def test_rebuild_equals_live_portfolio() -> None:
    fills = [
        fill(Side.BUY, "1", "100.1", fee="0.1"),
        fill(Side.SELL, "3", "101.3", fee="0.3"),
        fill(Side.BUY, "2.5", "99.7", fee="0.25", instrument=ETH),
    ]
    live = Portfolio("paper", D("5000"), "USD")
    for f in fills:
        live.apply_fill(f)
    rebuilt = Portfolio.rebuild("paper", D("5000"), "USD", fills)
    kwargs: dict[str, Any] = {"message_id": "0" * 32, "ts_init": 1}
    assert rebuilt.snapshot(**kwargs) == live.snapshot(**kwargs)


def test_precision_does_not_depend_on_the_callers_context() -> None:
    import decimal

    p = Portfolio("paper", D("10000"))
    with decimal.localcontext(prec=3):
        p.apply_fill(fill(Side.BUY, "1.23456", "100.001"))
    assert p.cash == D("9876.54276544")
