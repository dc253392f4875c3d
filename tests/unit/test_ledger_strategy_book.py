"""The ledger's per-strategy book: positions and PnL per strategy by the portfolio's accounting rules,
exported as gauges, adding up to the portfolio, and rebuilt from the stored fills after a restart."""

from __future__ import annotations

import random
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.test_ledger_accounting import BTC, ETH, FractionModel, close, fill
from tradewire_common import subjects
from tradewire_common.bus import MemoryBroker, MemoryBus
from tradewire_common.config import Config, LedgerConfig
from tradewire_common.ids import derive_id
from tradewire_common.schemas import ExecutionWatermark, OrderFilled, Side
from tradewire_ledger.accounting import PRECISION, Portfolio
from tradewire_ledger.service import LedgerService
from tradewire_ledger.strategy_book import StrategyBook

D = Decimal
MINUTE = 60_000_000_000


def by(strategy: str, f: OrderFilled) -> OrderFilled:
    return msgspec.structs.replace(f, strategy_id=strategy)


def script(seed: int, strategies: dict[str, str], n: int = 120) -> list[OrderFilled]:
    """``n`` fills of the strategies (strategy -> instrument), random sides, sizes, prices and fees:
    opening, adding, reducing, closing and flipping through zero."""
    rng = random.Random(seed)
    out = []
    names = sorted(strategies)
    for ts in range(1, n + 1):
        strategy = rng.choice(names)
        px = D(rng.randint(95_000, 105_000)) / 1000
        qty = D(rng.randint(1, 400)) / 100
        fee = (qty * px * D("0.001")).quantize(D("0.0001"))
        side = rng.choice([Side.BUY, Side.SELL])
        out.append(by(strategy, fill(side, str(qty), str(px), fee=str(fee), instrument=strategies[strategy], ts=ts,
                                     coid=f"tw-{strategy}-{ts}")))
    return out


def test_each_strategys_position_and_pnl_match_an_exact_model_of_its_own_fills() -> None:
    fills = script(7, {"sma": BTC, "rsi": BTC, "breakout": ETH})
    book, portfolio = StrategyBook(), Portfolio("paper", D(0))
    models = {s: FractionModel("0") for s in ("sma", "rsi", "breakout")}
    for f in fills:
        book.apply_fill(f)
        portfolio.apply_fill(f)
        models[f.strategy_id].apply(f)
    portfolio.mark(BTC, D("101.5"), 10_000)
    portfolio.mark(ETH, D("98.25"), 10_000)
    for model in models.values():  # the book values every strategy at the portfolio's last prices
        model.last = {BTC: Fraction("101.5"), ETH: Fraction("98.25")}
    got = book.strategies(portfolio.last_price)
    assert set(got) == set(models)
    for strategy, pnl in got.items():
        model = models[strategy]
        assert close(pnl.realized_pnl, model.realized), strategy
        assert close(pnl.unrealized_pnl, model.unrealized()), strategy
        for position in pnl.positions:
            assert position.quantity == model.qty[position.instrument_id]
            assert position.notional == model.qty[position.instrument_id] * model.last[position.instrument_id]


def test_strategies_on_their_own_instruments_add_up_to_the_portfolio_on_a_replay() -> None:
    fills = script(11, {"sma": BTC, "breakout": ETH})
    book, portfolio = StrategyBook(), Portfolio("paper", D("10000"))
    for i, f in enumerate(fills):
        book.apply_fill(f)
        portfolio.apply_fill(f)
        portfolio.mark(f.instrument_id, f.last_px + D(i % 7) / 10, f.ts_event + 1)
        snap = portfolio.snapshot(message_id=derive_id("s", i), ts_init=i)
        strategies = book.strategies(portfolio.last_price).values()
        with localcontext(prec=PRECISION):
            # each strategy's position is the portfolio's position in its instrument, digit for digit
            mine = {p.instrument_id: (p.quantity, p.notional, p.realized_pnl, p.unrealized_pnl)
                    for s in strategies for p in s.positions}
            assert mine == {p.instrument_id: (p.quantity, p.quantity * p.last_price, p.realized_pnl, p.unrealized_pnl)
                            for p in snap.positions}
            # and the sums agree (the portfolio's realised PnL is a running total in fill order, so the last
            # of 34 digits may round differently)
            assert close(sum((s.realized_pnl for s in strategies), D(0)), Fraction(snap.realized_pnl))
            assert close(sum((s.unrealized_pnl for s in strategies), D(0)), Fraction(snap.unrealized_pnl))


def test_strategies_sharing_an_instrument_add_up_to_the_portfolios_total_pnl() -> None:
    """The portfolio nets them (one's sell realises against another's long); each strategy keeps its
    own position, so only realised + unrealised together agree."""
    book, portfolio = StrategyBook(), Portfolio("paper", D("10000"))
    for f in (by("sma", fill(Side.BUY, "1", "100", fee="0.1", ts=1, coid="a")),
              by("rsi", fill(Side.SELL, "1", "104", fee="0.1", ts=2, coid="b"))):
        book.apply_fill(f)
        portfolio.apply_fill(f)
    portfolio.mark(BTC, D("103"), 10)
    snap = portfolio.snapshot(message_id="0" * 32, ts_init=1)
    got = book.strategies(portfolio.last_price)
    assert (snap.realized_pnl, snap.unrealized_pnl) == (D("3.8"), D(0))  # flat: 104 - 100 - fees
    assert (got["sma"].realized_pnl, got["sma"].unrealized_pnl) == (D("-0.1"), D(3))
    assert (got["rsi"].realized_pnl, got["rsi"].unrealized_pnl) == (D("-0.1"), D(1))
    assert sum((s.realized_pnl + s.unrealized_pnl for s in got.values()), D(0)) == snap.realized_pnl


def test_rebuild_equals_the_live_book() -> None:
    fills = script(3, {"sma": BTC, "rsi": ETH, "x": BTC}, n=60)
    live = StrategyBook()
    for f in fills:
        live.apply_fill(f)
    prices = {BTC: D(100), ETH: D(50)}
    assert StrategyBook.rebuild(fills).strategies(prices.get) == live.strategies(prices.get)


# --- in the ledger service: gauges, and a restart ---------------------------------------------------


def gauges(service: LedgerService) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every ``tradewire_ledger_*_value`` gauge the service renders, by name and labels."""
    out = {}
    for family in text_string_to_metric_families(service.metrics.render().decode()):
        if family.type == "gauge" and family.name.endswith("_value"):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def mark(minute: int, instrument: str, close: str) -> ExecutionWatermark:
    """Execution's watermark after a bar: the durable mark that also lets the ledger publish a snapshot."""
    return ExecutionWatermark(id=derive_id("book-wm", instrument, minute), ts_event=minute * MINUTE,
                              ts_init=minute * MINUTE, venue="BINANCE", instrument_id=instrument, close=D(close))


async def run_ledger(path: Path, *messages: OrderFilled | ExecutionWatermark) -> LedgerService:
    """A ledger on the SQLite file ``path`` fed ``messages``; returned stopped."""
    broker = MemoryBroker()
    service = LedgerService(Config(ledger=LedgerConfig(path=str(path))), MemoryBus("ledger", broker))
    await service.start()
    feed = MemoryBus("feed", broker)
    for m in messages:
        subject = (subjects.order_event(m.strategy_id) if isinstance(m, OrderFilled)
                   else subjects.execution_watermark(m.venue))
        await feed.publish(subject, m)
        assert await feed.wait_idle(10)
    await service.stop()
    return service


async def test_the_ledger_exports_per_strategy_gauges_that_add_up_and_survive_a_restart(tmp_path: Path) -> None:
    fills = [by("sma", fill(Side.BUY, "0.5", "40000", fee="20", ts=1 * MINUTE, coid="tw-1")),
             by("breakout", fill(Side.SELL, "2", "3000", fee="6", instrument=ETH, ts=2 * MINUTE, coid="tw-2")),
             by("sma", fill(Side.SELL, "0.2", "41000", fee="8.2", ts=3 * MINUTE, coid="tw-3"))]
    marks = [mark(4, BTC, "42000"), mark(5, ETH, "2900")]
    first = await run_ledger(tmp_path / "ledger.db", *fills, *marks)
    before = gauges(first)
    realized = "tradewire_ledger_strategy_realized_pnl_value"
    unrealized = "tradewire_ledger_strategy_unrealized_pnl_value"
    notional = "tradewire_ledger_strategy_position_notional_value"
    strategy = {name: {key: value for (n, labels), value in before.items() if n == name for key in [labels]}
                for name in (realized, unrealized, notional)}
    assert strategy[realized] == {(("strategy", "sma"),): 0.2 * 1000 - 20 - 8.2,
                                  (("strategy", "breakout"),): -6.0}
    assert strategy[unrealized] == {(("strategy", "sma"),): 0.3 * 2000, (("strategy", "breakout"),): 2 * 100}
    assert strategy[notional] == {(("instrument", BTC), ("strategy", "sma")): 0.3 * 42000,
                                  (("instrument", ETH), ("strategy", "breakout")): -2 * 2900}
    # the strategies add up to the portfolio's own gauges, rendered from the same snapshot
    assert sum(strategy[realized].values()) == before[("tradewire_ledger_realized_pnl_value", ())]
    assert sum(strategy[unrealized].values()) == before[("tradewire_ledger_unrealized_pnl_value", ())]

    # a new process on the same store: rebuilt from the stored fills, the same gauges at the same marks
    second = await run_ledger(tmp_path / "ledger.db", *marks)
    assert second.portfolio.fills == len(fills)
    assert gauges(second) == before
