"""Emulated exits: execution keeps the brackets of a venue that has no native ones (no ``CAP_BRACKET``, or
``native_brackets = false``), and the trailing/time-stop brackets of one that has no such kinds (see
:func:`tradewire_execution.service.emulated_exits`).

A ``SubmitOrder`` may carry exits (``stop_loss_pct``, ``take_profit_pct``, ``trailing_stop_pct``,
``time_stop_s``). A venue listing ``CAP_BRACKET`` attaches them itself (the paper venue emulates them
with the backtester's rules, see :mod:`tradewire_execution.paper`). For every other adapter the
execution service keeps them in an :class:`ExitEmulator` per venue:

* **Tracking.** Each order sent to the venue with exits is tracked (:meth:`ExitEmulator.track`, before
  it reaches the venue). Every event the service publishes for the venue goes through
  :meth:`ExitEmulator.observe`: an ``OrderReplaced`` moves a tracked order (and its bracket) to its new client
  order id; fills move the net position per ``(strategy_id, instrument_id)`` (all
  fills of the venue, not only the tracked orders') and set, arm, replace and cancel the brackets with
  exactly the paper venue's book (:class:`~tradewire_execution.paper_brackets.BracketBook`: one bracket
  per pair, levels relative to the parent's average fill price, armed once the position is in its
  direction, cancelled when it goes flat or to the other side, dropped if the parent closes without
  arming it). A bracket is checked on the bars with ``ts_event`` at or after the parent's first fill
  (a fill at ``ts`` is checked from the bar opening at ``ts`` on; never on the signal bar).
* **Watching.** The service feeds it the venue's bars (:meth:`ExitEmulator.on_bar`, after the venue's
  own ``on_bar``). The levels and their order are the paper venue's (time stop, then the tighter of
  stop loss and trailing stop, then take profit; a trailing stop's peak takes a bar's high or low only
  after that bar was checked). One bar interval per instrument: the first seen; bars of other
  intervals are ignored. The difference is *when* it can act: it sees a bar only once the bar is
  complete, so a level crossed within a bar is acted on at the bar's close, and the time stop is due
  on the bar that *ends* at or after the deadline (so that its order reaches the venue at or after
  the deadline, as the paper venue's exit at the open of the first bar at or after it).
* **Exiting.** A fired bracket becomes a reduce-only ``MARKET`` order (``GTC``) for the whole tracked
  position, the other way, with the paper venue's deterministic client order id
  (``tw-<sl|tp|tr|tm>-`` + ``derive_id("exit", parent, kind, bar.ts_event)[:24]``), ``ts_event`` = the
  bar, the parent's strategy, instrument and correlation id. The service sends it to the adapter
  (with an ``OrderSubmitted``) and publishes what the adapter answers. It fills at the venue's next
  price, not at the level: an emulated stop is a stop-market order triggered on bar data, later and
  usually worse than a native one, which is why native brackets are used where a venue has them.
  An exit the venue rejects is logged as an error: the position is then unprotected (the
  ``OrderRejected`` is published like any other, so risk's reject-rate breaker sees it).
* **Why execution may send orders of its own.** Only risk publishes order commands on ``ord.cmd.*``,
  and that still holds: the emulator publishes nothing there. An exit is the venue-side half of an
  order risk already approved (its ``SubmitOrder`` carried the exits), done by execution because the
  venue cannot hold it: exactly what a native bracket does at the venue, and what the paper venue
  does. It only reduces a position and never opens one (reduce-only, at most the tracked position),
  so it passes in every trading state, like the paper venue's exits and the kill switch's closes;
  a HALTED scope does not cancel it.

**State across restarts.** :meth:`ExitEmulator.export_state` holds the positions, the brackets (armed
or not, with their entry, cursor and trailing peak), the tracked orders with their fills so far, the
exits decided but not yet answered by the venue, and the recent finished orders and trade ids (so a
redelivered command or fill is not counted twice). The service stores it in the KV bucket under
execution's key prefix (``paper.<venue>.exits``: execution's NATS user may write only ``paper.*``
keys) whenever :attr:`ExitEmulator.revision` moved, before acknowledging the command or finishing the
bar that moved it, and first of all *before* sending a fired exit to the venue: if execution dies in
between, the restarted service sends the pending exits again at start (same client order ids, so a
venue that already has one treats it as a duplicate), and an armed stop keeps watching the bars after
the restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal

import msgspec

from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    Bar,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderType,
    SubmitOrder,
)
from tradewire_execution.paper_brackets import BracketBook, is_exit_order
from tradewire_execution.paper_pricing import CONTEXT, bar_end
from tradewire_execution.paper_state import BracketState, PositionState, Working

log = logging.getLogger(__name__)

#: Version of the exported state's layout (additive changes keep it; others bump it).
EXITS_STATE_VERSION = 1
#: Finished orders and trade ids remembered (a redelivery is of the newest ones).
DEFAULT_REMEMBER = 1_000


def has_exits(order: SubmitOrder) -> bool:
    """Whether an order carries any exit for the venue to attach."""
    return (order.stop_loss_pct is not None or order.take_profit_pct is not None
            or order.trailing_stop_pct is not None or order.time_stop_s is not None)


class TrackedOrder(msgspec.Struct, frozen=True):
    order: SubmitOrder
    filled: Decimal
    #: Sum of ``last_qty * last_px`` of its fills.
    value: Decimal


class ExitsState(msgspec.Struct, frozen=True):
    version: int
    venue: str
    positions: list[PositionState] = []
    brackets: list[BracketState] = []
    orders: list[TrackedOrder] = []
    #: Exits sent (or about to be) that the venue has not answered yet.
    pending: list[SubmitOrder] = []
    #: Recently finished tracked orders and ``client_order_id/trade_id`` of recent fills, oldest first.
    finished: list[str] = []
    trades: list[str] = []
    #: The bar interval checked per instrument.
    intervals: dict[str, str] = {}


class ExitEmulator:
    """The brackets of one venue without native ones (see the module docstring)."""

    def __init__(self, venue: str, *, remember: int = DEFAULT_REMEMBER) -> None:
        if remember < 1:
            raise ValueError("remember must be positive")
        self.venue = venue
        #: Bumped whenever the exported state changed (the service saves it then).
        self.revision = 0
        self._remember = remember
        self._book = BracketBook()
        self._orders: dict[str, Working] = {}
        self._pending: dict[str, SubmitOrder] = {}
        self._finished: dict[str, None] = {}
        self._trades: dict[str, None] = {}
        self._intervals: dict[str, str] = {}

    # --- inputs ---------------------------------------------------------------------------------

    def track(self, order: SubmitOrder) -> None:
        """``order`` is about to reach the venue: keep its exits (orders without any are not tracked;
        one already tracked or recently finished, i.e. a redelivery, is not tracked again)."""
        coid = order.client_order_id
        if not has_exits(order) or coid in self._orders or coid in self._finished:
            return
        self._orders[coid] = Working(order=order, venue_order_id="", cursor=order.ts_event)
        self.revision += 1

    def observe(self, events: Iterable[OrderEvent]) -> None:
        """Events the service publishes for the venue: fills move positions and brackets, ends close orders."""
        for event in events:
            coid = event.client_order_id
            if coid in self._pending and isinstance(
                event, (OrderAccepted, OrderRejected, OrderFilled, OrderCanceled, OrderExpired)
            ):
                del self._pending[coid]
                self.revision += 1
            if isinstance(event, OrderRejected) and is_exit_order(coid):
                log.error("venue %s rejected the exit %s of %s %s: the position is unprotected: %s", self.venue,
                          coid, event.strategy_id, event.instrument_id, event.reason)
            if isinstance(event, OrderReplaced) and coid in self._orders:
                self._rename(event)
            if isinstance(event, OrderFilled):
                self._fill(event)
            elif isinstance(event, (OrderCanceled, OrderExpired, OrderRejected)) and coid in self._orders:
                self._finish(coid)

    def on_bar(self, bar: Bar) -> list[SubmitOrder]:
        """Check the brackets on a complete bar; the exits to send to the venue (already pending here)."""
        interval = self._intervals.setdefault(bar.instrument_id, bar.interval)
        if interval != bar.interval:
            return []
        if not any(key[1] == bar.instrument_id for key in self._book.brackets):
            return []
        try:
            time_at = bar_end(bar.ts_event, bar.interval)  # the bar is complete: its end has passed
        except ValueError:
            time_at = bar.ts_event
        fired, moved = self._book.due(bar, time_at=time_at)
        if moved or fired:
            self.revision += 1
        exits = []
        for bracket, kind, _level in fired:
            held = self._book.position((bracket.strategy_id, bracket.instrument_id))
            if held * bracket.direction <= 0:  # an armed bracket always has a position; never open one
                continue
            order = bracket.exit_order(kind, bar, abs(held))
            if order.client_order_id in self._pending:
                continue
            self._pending[order.client_order_id] = order
            exits.append(order)
            log.info("venue %s: emulated %s exit %s of %s %s: %s %s", self.venue, kind, order.client_order_id,
                     bracket.strategy_id, bracket.instrument_id, order.side, order.quantity,
                     extra={"audit": "emulated_exit", "venue": self.venue, "parent": bracket.parent})
        return exits

    def sent(self, client_order_id: str) -> None:
        """A pending exit reached the venue (the adapter call returned): it is no longer pending."""
        if self._pending.pop(client_order_id, None) is not None:
            self.revision += 1

    # --- queries --------------------------------------------------------------------------------

    def pending(self) -> list[SubmitOrder]:
        """Exits decided but not answered by the venue yet (sent again after a restart)."""
        return sorted(self._pending.values(), key=lambda o: (o.ts_event, o.client_order_id))

    def position(self, strategy_id: str, instrument_id: str) -> Decimal:
        return self._book.position((strategy_id, instrument_id))

    def armed(self) -> list[tuple[str, str]]:
        """``(strategy_id, instrument_id)`` of the brackets protecting a position."""
        return sorted(key for key, bracket in self._book.brackets.items() if bracket.armed)

    # --- state ----------------------------------------------------------------------------------

    def export_state(self) -> bytes:
        positions, brackets = self._book.export()
        orders = [TrackedOrder(w.order, w.filled, w.value) for _, w in sorted(self._orders.items())]
        return msgspec.json.encode(ExitsState(
            version=EXITS_STATE_VERSION, venue=self.venue, positions=positions, brackets=brackets, orders=orders,
            pending=self.pending(), finished=list(self._finished), trades=list(self._trades),
            intervals=dict(sorted(self._intervals.items())),
        ))

    def restore_state(self, data: bytes) -> None:
        """Load :meth:`export_state` output; ``ValueError`` for another layout version or venue."""
        state = msgspec.json.decode(data, type=ExitsState)
        if state.version != EXITS_STATE_VERSION:
            raise ValueError(f"exit emulator state version {state.version} is not {EXITS_STATE_VERSION}")
        if state.venue != self.venue:
            raise ValueError(f"exit emulator state of {state.venue!r} cannot be loaded into {self.venue!r}")
        self._book = BracketBook()
        self._book.restore(state.positions, state.brackets)
        self._orders = {
            t.order.client_order_id: Working(order=t.order, venue_order_id="", cursor=t.order.ts_event,
                                             filled=t.filled, value=t.value)
            for t in state.orders
        }
        self._pending = {o.client_order_id: o for o in state.pending}
        self._finished = dict.fromkeys(state.finished)
        self._trades = dict.fromkeys(state.trades)
        self._intervals = dict(state.intervals)
        self.revision += 1

    # --- internals ------------------------------------------------------------------------------

    def _fill(self, fill: OrderFilled) -> None:
        trade = f"{fill.client_order_id}/{fill.trade_id}"
        if trade in self._trades:
            return
        self._remember_in(self._trades, trade)
        working = self._orders.get(fill.client_order_id)
        if working is None:  # not an order with exits: it only moves the position
            working = Working(order=_as_order(fill), venue_order_id="", cursor=fill.ts_event)
        working.filled += fill.last_qty
        working.value = CONTEXT.add(working.value, CONTEXT.multiply(fill.last_qty, fill.last_px))
        self._book.on_fill(working, fill.last_qty, fill.ts_event)
        self.revision += 1
        if not fill.partial and fill.client_order_id in self._orders:
            self._finish(fill.client_order_id)

    def _rename(self, replaced: OrderReplaced) -> None:
        """A tracked order continues under a new client order id (``OrderReplaced``), with its bracket."""
        working = self._orders.pop(replaced.client_order_id)
        order = working.order
        working.order = msgspec.structs.replace(order, client_order_id=replaced.new_client_order_id,
                                                quantity=replaced.quantity)
        self._orders[replaced.new_client_order_id] = working
        self._book.rename((order.strategy_id, order.instrument_id), order.client_order_id,
                          replaced.new_client_order_id)
        self.revision += 1

    def _finish(self, coid: str) -> None:
        working = self._orders.pop(coid)
        working.closed = True
        self._book.on_close(working)
        self._remember_in(self._finished, coid)
        self.revision += 1

    def _remember_in(self, memory: dict[str, None], key: str) -> None:
        memory[key] = None
        while len(memory) > self._remember:
            del memory[next(iter(memory))]


def _as_order(fill: OrderFilled) -> SubmitOrder:
    """A stand-in order for a fill of an order without exits (the book needs its side and ids only)."""
    return SubmitOrder(
        id=derive_id("exits-fill", fill.id), ts_event=fill.ts_event, ts_init=fill.ts_event,
        correlation_id=fill.correlation_id, strategy_id=fill.strategy_id, instrument_id=fill.instrument_id,
        client_order_id=fill.client_order_id, side=fill.side, order_type=OrderType.MARKET,
        quantity=fill.last_qty,
    )
