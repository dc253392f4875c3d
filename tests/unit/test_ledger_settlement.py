"""Settlement of prediction-market positions in the ledger's accounting: a resolved instrument's position
closes at its payout (1, 0 or partial), realising ``Q * (payout - A)`` and moving cash by ``Q * payout``;
the position leaves the snapshot; ``equity == starting cash + realised + unrealised`` still holds."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.unit.test_ledger_accounting import fill
from tradewire_common.ids import derive_id
from tradewire_common.schemas import PortfolioSnapshot, Side
from tradewire_ledger.accounting import Portfolio, Settle
from tradewire_ledger.strategy_book import StrategyBook

D = Decimal
YES = "KXRAIN-25NOV-YES.KALSHI"
NO = "KXRAIN-25NOV-NO.KALSHI"


def snap(p: Portfolio) -> PortfolioSnapshot:
    return p.snapshot(message_id=derive_id("settle-test", p.fills), ts_init=1)


def holding(*fills: tuple[Side, str, str, str]) -> Portfolio:
    """1000 of cash, then the fills ``(side, quantity, price, instrument)``."""
    p = Portfolio("paper", D("1000"))
    for n, (side, qty, px, instrument) in enumerate(fills):
        p.apply_fill(fill(side, qty, px, instrument=instrument, ts=1_000 + n, coid=f"tw-{n}"))
    return p


def test_a_yes_position_settles_at_1_when_yes_wins() -> None:
    p = holding((Side.BUY, "100", "0.40", YES), (Side.BUY, "50", "0.55", YES))  # avg 0.45, cost 67.5
    settled = p.settle(YES, D(1))
    assert settled is not None
    assert (settled.quantity, settled.avg_price, settled.realized_pnl, settled.cash) == (D(150), D("0.45"),
                                                                                        D("82.5"), D(150))
    s = snap(p)
    assert s.positions == ()  # the position disappears
    assert s.cash == D("1000") - D("67.5") + D(150) == s.equity
    assert s.realized_pnl == D("82.5") and s.unrealized_pnl == 0


def test_a_yes_position_settles_at_0_when_no_wins() -> None:
    p = holding((Side.BUY, "100", "0.40", YES))
    settled = p.settle(YES, D(0))
    assert settled is not None and settled.realized_pnl == D(-40) and settled.cash == 0
    s = snap(p)
    assert s.positions == () and s.cash == D(960) == s.equity and s.realized_pnl == D(-40)


def test_yes_and_no_together_pay_exactly_one_per_pair_whatever_the_outcome() -> None:
    for yes_pays in (D(1), D(0)):
        p = holding((Side.BUY, "10", "0.40", YES), (Side.BUY, "10", "0.55", NO))  # 10 pairs cost 9.5
        p.settle(YES, yes_pays)
        p.settle(NO, 1 - yes_pays)
        s = snap(p)
        assert s.cash == D(1000) - D("9.5") + D(10) and s.realized_pnl == D("0.5") and s.positions == ()


def test_a_partial_payout_settles_at_that_price() -> None:
    p = holding((Side.BUY, "80", "0.30", YES))
    settled = p.settle(YES, D("0.625"))
    assert settled is not None and settled.realized_pnl == D(80) * (D("0.625") - D("0.30")) == D(26)
    assert snap(p).cash == D(1000) - D(24) + D(50)


def test_a_short_settles_symmetrically() -> None:
    p = holding((Side.SELL, "20", "0.70", YES))  # short 20 at 0.70: +14 cash
    settled = p.settle(YES, D(1))
    assert settled is not None and settled.quantity == D(-20)
    assert settled.realized_pnl == D(-20) * (D(1) - D("0.70")) == D(-6) and settled.cash == D(-20)
    s = snap(p)
    assert s.cash == D(994) == s.equity and s.realized_pnl == D(-6)


def test_settling_twice_or_without_a_position_changes_nothing() -> None:
    p = holding((Side.BUY, "10", "0.5", YES))
    assert p.settle(YES, D(1)) is not None
    before = snap(p)
    assert p.settle(YES, D(1)) is None and p.settle(NO, D(0)) is None
    assert snap(p) == before


def test_a_payout_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="payout"):
        holding((Side.BUY, "1", "0.5", YES)).settle(YES, D("1.01"))


def test_a_rebuild_from_fills_and_settlements_equals_the_live_portfolio_and_the_strategy_book_settles_too() -> None:
    fills = [fill(Side.BUY, "10", "0.4", instrument=YES, ts=1, coid="tw-a"),
             fill(Side.BUY, "4", "0.5", instrument=NO, ts=2, coid="tw-b")]
    live = Portfolio("paper", D(100))
    book = StrategyBook()
    for f in fills:
        live.apply_fill(f)
        book.apply_fill(f)
    live.settle(YES, D(1))
    live.settle(NO, D(0))
    book.settle(YES, D(1))
    book.settle(NO, D(0))
    rebuilt = Portfolio.rebuild("paper", D(100), "USD", [*fills, Settle(YES, D(1), 3), Settle(NO, D(0), 3)])
    assert snap(rebuilt) == snap(live)
    (strategy,) = book.strategies(lambda _iid: None).values()
    assert strategy.realized_pnl == D(6) - D(2) == live.realized_pnl
    assert all(position.quantity == 0 for position in strategy.positions)
