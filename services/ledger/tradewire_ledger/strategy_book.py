"""Positions and PnL per strategy: a small book per ``(strategy, instrument)`` beside the portfolio.

Every fill carries its ``strategy_id``; the book applies it to that strategy's position in the
instrument with the portfolio's own rule (``accounting.apply_to_position``: average entry, realised
PnL net of the fee, flips through zero). Unrealised PnL and notional use the portfolio's last price
of the instrument, so the strategies are valued at the same prices as the account.

* **Sums.** While no two strategies hold the same instrument, the strategies' realised and unrealised
  PnL add up to the portfolio's. Where they do, the portfolio nets them (a sell of one strategy
  closes part of another's long and realises PnL) while each strategy keeps its own position, so
  the realised/unrealised split differs; their total (realised + unrealised) still equals the
  portfolio's, up to the 34-digit rounding of average prices.
* **Restarts.** Like the portfolio, the book is rebuilt from the stored fills and settlements at start
  (:meth:`StrategyBook.rebuild`), so the gauges continue where they were; after a reversed fill too.
* **Settlement.** A resolved instrument closes every strategy's position in it at the payout, like the
  portfolio's (the position stays, flat, so its gauge reads 0).
* **Gauges** (``StrategyMetrics``; Decimal becomes float for metrics only):
  ``tradewire_ledger_strategy_position_notional_value{strategy,instrument}`` (signed quantity × last
  price; a closed position reads 0, not its last value), ``..._strategy_realized_pnl_value{strategy}``
  and ``..._strategy_unrealized_pnl_value{strategy}``. Strategies are the configured ones plus the
  few ids the system trades under itself (the kill switch's closing orders), so the label is bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, localcontext

from tradewire_common.metrics import ServiceMetrics
from tradewire_common.schemas import OrderFilled
from tradewire_ledger.accounting import (
    PRECISION,
    Entry,
    Position,
    Settle,
    apply_to_position,
    settle_position,
    unrealized_pnl,
)

_ZERO = Decimal(0)

#: The last price of an instrument (the portfolio's), None before any fill or mark.
LastPrice = Callable[[str], Decimal | None]


@dataclass(frozen=True)
class StrategyPosition:
    instrument_id: str
    quantity: Decimal
    avg_price: Decimal
    notional: Decimal  # signed quantity × last price
    realized_pnl: Decimal
    unrealized_pnl: Decimal


@dataclass(frozen=True)
class StrategyPnl:
    strategy_id: str
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    positions: tuple[StrategyPosition, ...]  # by instrument


class StrategyBook:
    """Per-strategy positions, applied fill by fill (apply a fill once: after the store accepted it)."""

    def __init__(self) -> None:
        self._positions: dict[tuple[str, str], Position] = {}

    def apply(self, entry: Entry) -> None:
        if isinstance(entry, Settle):
            self.settle(entry.instrument_id, entry.payout)
        else:
            self.apply_fill(entry)

    def settle(self, instrument_id: str, payout: Decimal) -> None:
        """Close every strategy's position in ``instrument_id`` at ``payout``."""
        with localcontext(prec=PRECISION):
            for (_strategy, instrument), pos in self._positions.items():
                if instrument == instrument_id:
                    settle_position(pos, payout)

    def apply_fill(self, fill: OrderFilled) -> None:
        key = (fill.strategy_id, fill.instrument_id)
        pos = self._positions.get(key)
        if pos is None:
            pos = self._positions[key] = Position(fill.instrument_id)
        with localcontext(prec=PRECISION):
            apply_to_position(pos, fill)

    def strategies(self, last_price: LastPrice) -> dict[str, StrategyPnl]:
        """Every strategy that ever filled, valued at ``last_price`` (positions sorted by instrument)."""
        grouped: dict[str, list[StrategyPosition]] = {}
        with localcontext(prec=PRECISION):
            for (strategy, instrument), pos in sorted(self._positions.items()):
                last = last_price(instrument)
                if last is None:  # the portfolio has seen this fill's price: only for a foreign caller
                    last = pos.avg_price
                grouped.setdefault(strategy, []).append(StrategyPosition(
                    instrument_id=instrument, quantity=pos.quantity, avg_price=pos.avg_price,
                    notional=pos.quantity * last, realized_pnl=pos.realized_pnl,
                    unrealized_pnl=unrealized_pnl(pos, last)))
            return {
                strategy: StrategyPnl(
                    strategy_id=strategy,
                    realized_pnl=sum((p.realized_pnl for p in positions), _ZERO),
                    unrealized_pnl=sum((p.unrealized_pnl for p in positions), _ZERO),
                    positions=tuple(positions),
                )
                for strategy, positions in grouped.items()
            }

    @classmethod
    def rebuild(cls, entries: Iterable[Entry]) -> StrategyBook:
        """A book with ``entries`` (fills, settlements) applied in order (from the store's ``load_journal``)."""
        book = cls()
        for entry in entries:
            book.apply(entry)
        return book


class StrategyMetrics:
    """The ledger's per-strategy gauges, kept by a :class:`StrategyBook`."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.book = StrategyBook()
        self.position_notional = metrics.gauge(
            "strategy_position_notional_value", "Signed position quantity × last price, per strategy and instrument",
            ("strategy", "instrument"),
        )
        self.realized = metrics.gauge("strategy_realized_pnl_value", "Realised PnL (fees included) per strategy",
                                      ("strategy",))
        self.unrealized = metrics.gauge("strategy_unrealized_pnl_value", "Unrealised PnL per strategy at last prices",
                                        ("strategy",))

    def rebuild(self, entries: Iterable[Entry]) -> None:
        self.book = StrategyBook.rebuild(entries)

    def apply(self, entry: Entry) -> None:
        self.book.apply(entry)

    def apply_fill(self, fill: OrderFilled) -> None:
        self.book.apply_fill(fill)

    def update(self, last_price: LastPrice) -> dict[str, StrategyPnl]:
        """Set every gauge from the book at ``last_price``; returns what it set."""
        strategies = self.book.strategies(last_price)
        for strategy, pnl in strategies.items():
            self.realized.labels(strategy).set(float(pnl.realized_pnl))
            self.unrealized.labels(strategy).set(float(pnl.unrealized_pnl))
            for position in pnl.positions:
                self.position_notional.labels(strategy, position.instrument_id).set(float(position.notional))
        return strategies
