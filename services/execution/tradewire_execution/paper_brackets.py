"""Emulated brackets of the paper venue: tracked positions and the stop loss / take profit they hold.

The rules (the specification is :mod:`tradewire_execution.paper`'s docstring) are the vectorized
backtester's stop rules (``tradewire_backtest.kernels``), so the two engines agree trade by trade.
This module keeps the book (positions and brackets by strategy and instrument); the venue turns a
fired bracket into an exit order and fills it like any other taker order.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradewire_common.ids import derive_id
from tradewire_common.numbers import ZERO
from tradewire_common.schemas import Bar, OrderType, Side, SubmitOrder, TimeInForce
from tradewire_execution.paper_pricing import CONTEXT
from tradewire_execution.paper_state import BracketState, PositionState, Working

#: (strategy_id, instrument_id)
Key = tuple[str, str]
STOP_LOSS = "sl"
TAKE_PROFIT = "tp"


@dataclass
class Bracket:
    """The stop loss and/or take profit protecting one (strategy, instrument) position."""

    strategy_id: str
    instrument_id: str
    #: Client order id, signal bar time and correlation id of the order that attached it.
    parent: str
    parent_ts: int
    correlation_id: str
    #: The parent's side: BUY protects a long position, SELL a short one.
    side: Side
    stop_loss_pct: Decimal | None
    take_profit_pct: Decimal | None
    #: The parent's average fill price so far; the levels are relative to it.
    entry: Decimal
    #: Event time of the last bar checked; only later bars are checked.
    cursor: int
    #: True once the tracked position is in the bracket's direction (it then protects it).
    armed: bool = False

    @property
    def direction(self) -> int:
        return 1 if self.side is Side.BUY else -1

    def levels(self) -> tuple[Decimal | None, Decimal | None]:
        """``(stop, target)``: long ``entry * (1 - sl)``, ``entry * (1 + tp)``; short mirrored."""
        ctx, sign = CONTEXT, self.direction
        stop = target = None
        if self.stop_loss_pct is not None:
            stop = ctx.multiply(self.entry, ctx.subtract(1, sign * self.stop_loss_pct))
        if self.take_profit_pct is not None:
            target = ctx.multiply(self.entry, ctx.add(1, sign * self.take_profit_pct))
        return stop, target

    def hit(self, bar: Bar) -> tuple[str, Decimal] | None:
        """``(kind, exit price before slippage)`` if ``bar`` reaches a level; the stop wins a tie."""
        stop, target = self.levels()
        if self.side is Side.BUY:
            if stop is not None and bar.low <= stop:
                return STOP_LOSS, min(bar.open, stop)
            if target is not None and bar.high >= target:
                return TAKE_PROFIT, max(bar.open, target)
            return None
        if stop is not None and bar.high >= stop:
            return STOP_LOSS, max(bar.open, stop)
        if target is not None and bar.low <= target:
            return TAKE_PROFIT, min(bar.open, target)
        return None

    def exit_order(self, kind: str, bar: Bar, quantity: Decimal) -> SubmitOrder:
        """The venue-made order closing the position; its id is derived from the parent and the bar."""
        coid = f"tw-{kind}-" + derive_id("exit", self.parent, kind, bar.ts_event)[:24]
        return SubmitOrder(
            id=derive_id("SubmitOrder", coid),
            ts_event=bar.ts_event,
            ts_init=bar.ts_event,
            correlation_id=self.correlation_id,
            strategy_id=self.strategy_id,
            instrument_id=self.instrument_id,
            client_order_id=coid,
            side=Side.SELL if self.side is Side.BUY else Side.BUY,
            order_type=OrderType.MARKET,
            quantity=quantity,
            time_in_force=TimeInForce.GTC,
            reduce_only=True,
        )

    def to_state(self) -> BracketState:
        return BracketState(self.strategy_id, self.instrument_id, self.parent, self.parent_ts, self.correlation_id,
                            self.side, self.stop_loss_pct, self.take_profit_pct, self.entry, self.cursor, self.armed)

    @classmethod
    def from_state(cls, s: BracketState) -> Bracket:
        return cls(s.strategy_id, s.instrument_id, s.parent, s.parent_ts, s.correlation_id, s.side,
                   s.stop_loss_pct, s.take_profit_pct, s.entry, s.cursor, s.armed)


class BracketBook:
    """Net positions made by the venue's fills and the bracket held per (strategy, instrument)."""

    def __init__(self) -> None:
        self.positions: dict[Key, Decimal] = {}
        self.brackets: dict[Key, Bracket] = {}

    def position(self, key: Key) -> Decimal:
        return self.positions.get(key, ZERO)

    def closable(self, exit_order: SubmitOrder) -> Decimal:
        """How much of the position an exit order may still close (it never opens the other way)."""
        held = self.position((exit_order.strategy_id, exit_order.instrument_id))
        return max(held, ZERO) if exit_order.side is Side.SELL else max(-held, ZERO)

    def on_fill(self, working: Working, qty: Decimal, bar: Bar) -> bool:
        """Apply a fill of ``working`` (already added to it); True if a bracket changed."""
        order = working.order
        key = (order.strategy_id, order.instrument_id)
        held = self.position(key) + (qty if order.side is Side.BUY else -qty)
        if held:
            self.positions[key] = held
        else:
            self.positions.pop(key, None)
        changed = False
        bracket = self.brackets.get(key)
        mine = bracket is not None and bracket.parent == order.client_order_id
        if working.has_bracket:
            if bracket is None or (not mine and working.sort_key() > (bracket.parent_ts, bracket.parent)):
                # checked from the fill bar on, but never on the signal bar (a fill at its close)
                cursor = bar.ts_event - 1 if bar.ts_event > order.ts_event else bar.ts_event
                bracket = self.brackets[key] = Bracket(
                    order.strategy_id, order.instrument_id, order.client_order_id, order.ts_event,
                    order.correlation_id, order.side, order.stop_loss_pct, order.take_profit_pct, ZERO, cursor)
                mine = True
            if mine and bracket is not None:
                bracket.entry = CONTEXT.divide(working.value, working.filled)
                changed = True
        if bracket is not None:
            if held * bracket.direction > 0:
                if mine and not bracket.armed:  # it protects the position its parent built
                    bracket.armed = changed = True
            elif bracket.armed:  # the position went flat or to the other side
                del self.brackets[key]
                changed = True
        return changed

    def on_close(self, working: Working) -> bool:
        """An order closed: its bracket is dropped if it never came to protect a position."""
        order = working.order
        key = (order.strategy_id, order.instrument_id)
        bracket = self.brackets.get(key)
        if bracket is not None and bracket.parent == order.client_order_id and not bracket.armed:
            del self.brackets[key]
            return True
        return False

    def due(self, bar: Bar, only: Key | None = None) -> list[tuple[Bracket, str, Decimal]]:
        """Brackets of ``bar``'s instrument (or just ``only``) that fire on it, removed from the book.

        Each is checked once per bar (its cursor moves past the bar); one that is not armed is not.
        """
        fired = []
        for key in sorted(k for k in self.brackets if k[1] == bar.instrument_id and (only is None or k == only)):
            bracket = self.brackets[key]
            if bar.ts_event <= bracket.cursor:
                continue
            bracket.cursor = bar.ts_event
            if not bracket.armed:
                continue
            hit = bracket.hit(bar)
            if hit is not None:
                del self.brackets[key]
                fired.append((bracket, *hit))
        return fired

    def export(self) -> tuple[list[PositionState], list[BracketState]]:
        positions = [PositionState(s, i, q) for (s, i), q in sorted(self.positions.items())]
        return positions, [b.to_state() for _, b in sorted(self.brackets.items())]

    def restore(self, positions: list[PositionState], brackets: list[BracketState]) -> None:
        self.positions = {(p.strategy_id, p.instrument_id): p.quantity for p in positions if p.quantity}
        self.brackets = {(b.strategy_id, b.instrument_id): Bracket.from_state(b) for b in brackets}
