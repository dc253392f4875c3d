"""Emulated brackets: tracked positions and the stop loss, take profit, trailing and time stops they hold.

The rules (the specification is :mod:`tradewire_execution.paper`'s docstring) are the vectorized
backtester's stop rules (``tradewire_backtest.kernels``), so the two engines agree trade by trade.
This module keeps the book (positions and brackets by strategy and instrument); the paper venue turns
a fired bracket into an exit order and fills it like any other taker order, and execution's exit
emulator (:mod:`tradewire_execution.exits`) sends it to a venue without native brackets.
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
TRAILING_STOP = "tr"
TIME_STOP = "tm"
#: Exit kinds, as in the exit orders' client order ids (``tw-<kind>-<24 hex>``).
EXIT_KINDS = (STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, TIME_STOP)
_NS = 1_000_000_000


def is_exit_order(client_order_id: str) -> bool:
    """Whether a client order id is a bracket exit's (``tw-sl-``, ``tw-tp-``, ``tw-tr-``, ``tw-tm-``)."""
    return client_order_id[:6] in {f"tw-{kind}-" for kind in EXIT_KINDS}


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
    trailing_stop_pct: Decimal | None = None
    time_stop_s: int | None = None
    #: Event time of the parent's first fill (the time stop counts from it).
    entry_ts: int = 0
    #: Trailing stops: the best price of the bars checked so far (long: highest high, short: lowest
    #: low; None before the first); the stop trails ``max(entry, peak)`` (short: ``min``).
    peak: Decimal | None = None

    @property
    def direction(self) -> int:
        return 1 if self.side is Side.BUY else -1

    def levels(self) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
        """``(stop, target, trail)``: long ``entry * (1 - sl)``, ``entry * (1 + tp)``,
        ``max(entry, peak) * (1 - tr)``; short mirrored (``min(entry, peak) * (1 + tr)``)."""
        ctx, sign = CONTEXT, self.direction
        stop = target = trail = None
        if self.stop_loss_pct is not None:
            stop = ctx.multiply(self.entry, ctx.subtract(1, sign * self.stop_loss_pct))
        if self.take_profit_pct is not None:
            target = ctx.multiply(self.entry, ctx.add(1, sign * self.take_profit_pct))
        if self.trailing_stop_pct is not None:
            ref = self.entry
            if self.peak is not None:
                ref = max(ref, self.peak) if sign > 0 else min(ref, self.peak)
            trail = ctx.multiply(ref, ctx.subtract(1, sign * self.trailing_stop_pct))
        return stop, target, trail

    def deadline(self) -> int | None:
        """Event time from which the time stop fires (None: no time stop)."""
        return None if self.time_stop_s is None else self.entry_ts + self.time_stop_s * _NS

    def hit(self, bar: Bar, time_at: int | None = None) -> tuple[str, Decimal] | None:
        """``(kind, exit price before slippage)`` if ``bar`` reaches a level.

        In order: the time stop (``time_at``, by default the bar's open time, at or after the deadline:
        at the open), then the stop (the tighter of the stop loss and the trailing stop; the stop loss
        when they are equal), then the take profit; the stop wins when both are in range.
        """
        deadline = self.deadline()
        if deadline is not None and (bar.ts_event if time_at is None else time_at) >= deadline:
            return TIME_STOP, bar.open
        stop, target, trail = self.levels()
        kind = STOP_LOSS
        if self.side is Side.BUY:
            if trail is not None and (stop is None or trail > stop):
                stop, kind = trail, TRAILING_STOP
            if stop is not None and bar.low <= stop:
                return kind, min(bar.open, stop)
            if target is not None and bar.high >= target:
                return TAKE_PROFIT, max(bar.open, target)
            return None
        if trail is not None and (stop is None or trail < stop):
            stop, kind = trail, TRAILING_STOP
        if stop is not None and bar.high >= stop:
            return kind, max(bar.open, stop)
        if target is not None and bar.low <= target:
            return TAKE_PROFIT, min(bar.open, target)
        return None

    def follow(self, bar: Bar) -> bool:
        """After ``bar`` was checked: a trailing stop's peak takes its high (short: low); True if it moved."""
        if self.trailing_stop_pct is None:
            return False
        best = bar.high if self.side is Side.BUY else bar.low
        if self.peak is not None and (best <= self.peak if self.side is Side.BUY else best >= self.peak):
            return False
        self.peak = best
        return True

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
                            self.side, self.stop_loss_pct, self.take_profit_pct, self.entry, self.cursor, self.armed,
                            self.trailing_stop_pct, self.time_stop_s, self.entry_ts, self.peak)

    @classmethod
    def from_state(cls, s: BracketState) -> Bracket:
        return cls(s.strategy_id, s.instrument_id, s.parent, s.parent_ts, s.correlation_id, s.side,
                   s.stop_loss_pct, s.take_profit_pct, s.entry, s.cursor, s.armed, s.trailing_stop_pct,
                   s.time_stop_s, s.entry_ts, s.peak)


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

    def on_fill(self, working: Working, qty: Decimal, ts: int) -> bool:
        """Apply a fill of ``working`` (already added to it) made at event time ``ts`` (for the paper venue:
        the bar it filled on); True if a bracket changed."""
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
                cursor = ts - 1 if ts > order.ts_event else ts
                bracket = self.brackets[key] = Bracket(
                    order.strategy_id, order.instrument_id, order.client_order_id, order.ts_event,
                    order.correlation_id, order.side, order.stop_loss_pct, order.take_profit_pct, ZERO, cursor,
                    trailing_stop_pct=order.trailing_stop_pct, time_stop_s=order.time_stop_s, entry_ts=ts)
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

    def rename(self, key: Key, old: str, new: str) -> None:
        """The bracket's parent order continues under a new client order id (an amend)."""
        bracket = self.brackets.get(key)
        if bracket is not None and bracket.parent == old:
            bracket.parent = new

    def settle(self, instrument_ids: set[str]) -> bool:
        """The instruments' positions ended outside trading (a prediction market resolved): their tracked
        positions and brackets are gone. True if anything changed."""
        keys = [k for k in (*self.positions, *self.brackets) if k[1] in instrument_ids]
        for key in keys:
            self.positions.pop(key, None)
            self.brackets.pop(key, None)
        return bool(keys)

    def on_close(self, working: Working) -> bool:
        """An order closed: its bracket is dropped if it never came to protect a position."""
        order = working.order
        key = (order.strategy_id, order.instrument_id)
        bracket = self.brackets.get(key)
        if bracket is not None and bracket.parent == order.client_order_id and not bracket.armed:
            del self.brackets[key]
            return True
        return False

    def due(
        self, bar: Bar, only: Key | None = None, time_at: int | None = None
    ) -> tuple[list[tuple[Bracket, str, Decimal]], bool]:
        """Brackets of ``bar``'s instrument (or just ``only``) that fire on it, removed from the book, and
        whether a trailing stop's peak moved (state that must be saved).

        Each is checked once per bar (its cursor moves past the bar); one that is not armed is not. A
        trailing stop's peak takes the bar's high (short: low) only after the bar was checked, so a bar
        never raises the stop its own low is tested against. ``time_at`` is the time the time stop
        compares with its deadline (default: the bar's open time; see :meth:`Bracket.hit`).
        """
        fired = []
        moved = False
        for key in sorted(k for k in self.brackets if k[1] == bar.instrument_id and (only is None or k == only)):
            bracket = self.brackets[key]
            if bar.ts_event <= bracket.cursor:
                continue
            bracket.cursor = bar.ts_event
            if not bracket.armed:
                continue
            hit = bracket.hit(bar, time_at)
            if hit is not None:
                del self.brackets[key]
                fired.append((bracket, *hit))
            elif bracket.follow(bar):
                moved = True
        return fired, moved

    def export(self) -> tuple[list[PositionState], list[BracketState]]:
        positions = [PositionState(s, i, q) for (s, i), q in sorted(self.positions.items())]
        return positions, [b.to_state() for _, b in sorted(self.brackets.items())]

    def restore(self, positions: list[PositionState], brackets: list[BracketState]) -> None:
        self.positions = {(p.strategy_id, p.instrument_id): p.quantity for p in positions if p.quantity}
        self.brackets = {(b.strategy_id, b.instrument_id): Bracket.from_state(b) for b in brackets}
