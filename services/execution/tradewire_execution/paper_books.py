"""The paper venue's matching against order books, quotes and trades (the rules are
:mod:`tradewire_execution.paper`'s docstring, "Books").

:class:`LocalBook` is the venue's copy of one instrument's book (a ``BookSnapshot`` replaces it, a
``BookDelta`` sets one level, a ``Quote`` is a one-level book); :class:`BookMatching` is the part of
:class:`~tradewire_execution.paper.PaperVenue` that matches working orders against it.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from tradewire_common.config import InstrumentSpec
from tradewire_common.ids import derive_id
from tradewire_common.numbers import ZERO
from tradewire_common.schemas import (
    BookDelta,
    BookLevel,
    BookSnapshot,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    Quote,
    Side,
    TimeInForce,
    TradeTick,
)
from tradewire_execution.paper_brackets import BracketBook
from tradewire_execution.paper_orders import POST_ONLY_CROSSES, binary_fee, binary_fill_price
from tradewire_execution.paper_pricing import CONTEXT, Costs
from tradewire_execution.paper_state import BookState, Working

_DAY_NS = 86_400 * 1_000_000_000
Levels = dict[Decimal, Decimal]


def opposite(side: Side) -> Side:
    return Side.SELL if side is Side.BUY else Side.BUY


def through(book_side: Side, price: Decimal, limit: Decimal | None) -> bool:
    """Whether a level of ``book_side`` at ``price`` is at or through an order's ``limit`` (None: any price): asks
    (``SELL``) at or below a BUY's limit, bids (``BUY``) at or above a SELL's."""
    if limit is None:
        return True
    return price <= limit if book_side is Side.SELL else price >= limit


class LocalBook:
    """One instrument's book as the paper venue last saw it, with what its own fills took from it."""

    def __init__(self, instrument_id: str) -> None:
        self.instrument_id = instrument_id
        #: Event time and id of the newest message applied.
        self.ts = 0
        self.last_id = ""
        #: True once a ``BookSnapshot`` or ``BookDelta`` came: quotes are then ignored (the book has the depth).
        self.depth = False
        self.levels: dict[Side, Levels] = {Side.BUY: {}, Side.SELL: {}}
        #: Taken by taker fills since the book last changed (the venue's fills never change what is published).
        self.taken: dict[tuple[Side, Decimal], Decimal] = {}
        #: Size added at each level by the latest message (resting orders' maker fills come from it).
        self.fresh: dict[Side, Levels] = {Side.BUY: {}, Side.SELL: {}}
        #: What is left of the trade being matched (:meth:`BookMatching._book_update` with a tick).
        self.tick_left = ZERO

    def apply(self, message: BookSnapshot | BookDelta | Quote) -> bool:
        """Apply a message (False: ignored, older than the book or already applied); the new size at each level
        (compared with the book before) is kept in :attr:`fresh`. A quote of a book with depth only moves the
        book's time (the book it summarises is unchanged)."""
        if message.ts_event < self.ts or message.id == self.last_id:
            return False
        if isinstance(message, Quote) and self.depth:  # the book is still the same, as of the quote's time
            if message.ts_event <= self.ts:
                return False
            self.ts = message.ts_event
            self.fresh = {Side.BUY: {}, Side.SELL: {}}
            return True
        before = self.levels
        if isinstance(message, BookDelta):
            self.depth = True
            after = {side: dict(levels) for side, levels in before.items()}
            if message.size > 0:
                after[message.side][message.price] = message.size
            else:
                after[message.side].pop(message.price, None)
        elif isinstance(message, BookSnapshot):
            self.depth = True
            after = {Side.BUY: {lv.price: lv.size for lv in message.bids if lv.size > 0},
                     Side.SELL: {lv.price: lv.size for lv in message.asks if lv.size > 0}}
        else:
            after = {Side.BUY: {message.bid: message.bid_size} if message.bid_size > 0 else {},
                     Side.SELL: {message.ask: message.ask_size} if message.ask_size > 0 else {}}
        self.fresh = {side: {p: q - before[side].get(p, ZERO) for p, q in levels.items()
                             if q > before[side].get(p, ZERO)} for side, levels in after.items()}
        self.levels = after
        self.taken = {}
        self.ts, self.last_id = message.ts_event, message.id
        return True

    def best(self, side: Side) -> Decimal | None:
        levels = self.levels[side]
        if not levels:
            return None
        return max(levels) if side is Side.BUY else min(levels)

    def available(self, book_side: Side, limit: Decimal | None) -> list[tuple[Decimal, Decimal]]:
        """``(price, size not taken yet)`` of ``book_side``'s levels at or through ``limit``, best first."""
        levels = self.levels[book_side]
        prices = sorted(levels, reverse=book_side is Side.BUY)
        out = []
        for price in prices:
            if not through(book_side, price, limit):
                break
            left = levels[price] - self.taken.get((book_side, price), ZERO)
            if left > 0:
                out.append((price, left))
        return out

    def take(self, book_side: Side, price: Decimal, qty: Decimal) -> None:
        key = (book_side, price)
        self.taken[key] = self.taken.get(key, ZERO) + qty

    def take_fresh(self, book_side: Side, limit: Decimal, qty: Decimal) -> Decimal:
        """Take up to ``qty`` of the size the latest message added at or through ``limit`` (best levels
        first); returns what was taken."""
        fresh = self.fresh[book_side]
        got = ZERO
        for price in sorted(fresh, reverse=book_side is Side.BUY):
            if got >= qty or not through(book_side, price, limit):
                break
            left = self.levels[book_side].get(price, ZERO) - self.taken.get((book_side, price), ZERO)
            part = min(fresh[price], left, qty - got)
            if part > 0:
                fresh[price] -= part
                self.take(book_side, price, part)
                got += part
        return got

    def export(self) -> BookState:
        bids = [BookLevel(p, q) for p, q in sorted(self.levels[Side.BUY].items(), reverse=True)]
        asks = [BookLevel(p, q) for p, q in sorted(self.levels[Side.SELL].items())]
        taken = [(side, price, qty) for (side, price), qty in sorted(self.taken.items())]
        return BookState(self.instrument_id, self.ts, self.last_id, self.depth, bids, asks, taken)

    @classmethod
    def restore(cls, state: BookState) -> LocalBook:
        book = cls(state.instrument_id)
        book.ts, book.last_id, book.depth = state.ts, state.last_id, state.depth
        book.levels = {Side.BUY: {lv.price: lv.size for lv in state.bids},
                       Side.SELL: {lv.price: lv.size for lv in state.asks}}
        book.taken = {(side, price): qty for side, price, qty in state.taken}
        return book


def book_triggered(side: Side, trigger: Decimal, book: LocalBook) -> bool:
    """A BUY stop triggers when the best ask is at or above its trigger, a SELL stop when the best bid is at or
    below it (the price it would trade at reached the trigger)."""
    if side is Side.BUY:
        ask = book.best(Side.SELL)
        return ask is not None and ask >= trigger
    bid = book.best(Side.BUY)
    return bid is not None and bid <= trigger


class BookMatching:
    """Matching of working orders against :class:`LocalBook` s; mixed into the paper venue, whose
    bookkeeping (``_close``, ``_accepted``, ``_ended``) it uses."""

    name: str
    state_revision: int
    _costs: Costs
    _latency_ns: int
    _binary: dict[str, InstrumentSpec]
    _open: dict[str, dict[str, Working]]
    _book: BracketBook
    _books: dict[str, LocalBook]

    def _close(self, working: Working) -> None:
        raise NotImplementedError

    def _accepted(self, working: Working, ts_event: int, now_ns: int) -> OrderAccepted:
        raise NotImplementedError

    def _ended(self, kind: type[OrderCanceled] | type[OrderExpired], working: Working, ts_event: int, now_ns: int,
               reason: str) -> OrderCanceled | OrderExpired:
        raise NotImplementedError

    def _book_update(self, book: LocalBook, now_ns: int, tick: TradeTick | None = None) -> list[OrderEvent]:
        """Match the instrument's working orders (oldest first) against its book after a message."""
        events: list[OrderEvent] = []
        book.tick_left = ZERO if tick is None else tick.size
        for working in sorted(self._open.get(book.instrument_id, {}).values(), key=Working.sort_key):
            if not working.closed:
                events.extend(self._book_step(working, book, now_ns, tick))
        return events

    def _book_step(self, working: Working, book: LocalBook, now_ns: int,
                   tick: TradeTick | None = None) -> list[OrderEvent]:
        """One order against the book after one message (``tick``: a trade, which only fills resting limits)."""
        order = working.order
        tif = order.time_in_force
        ts = book.ts if tick is None else max(book.ts, tick.ts_event)
        first = not working.worked
        if first:  # it arrives with the first book at or after its arrival time
            if tick is not None or book.ts < order.ts_event + (0 if working.exit else self._latency_ns):
                return []
            working.worked = True
            self.state_revision += 1
            if tif is TimeInForce.DAY:
                working.expires_at = (ts // _DAY_NS + 1) * _DAY_NS
        elif tif is TimeInForce.DAY and working.expires_at is not None and ts >= working.expires_at:
            self._close(working)
            return [self._ended(OrderExpired, working, working.expires_at, now_ns, "DAY order expired")]
        if tif is TimeInForce.GTD and order.expire_time_ns is not None and ts >= order.expire_time_ns:
            self._close(working)
            return [self._ended(OrderExpired, working, order.expire_time_ns, now_ns, "GTD order expired")]
        working.cursor = max(working.cursor, ts)
        events: list[OrderEvent] = []
        book_side = opposite(order.side)
        if not working.accepted:  # post-only, on arrival: rejected if it would take the opposite side
            best = book.best(book_side)
            assert order.limit_price is not None  # a post-only order is a limit order
            if best is not None and through(book_side, best, order.limit_price):
                self._close(working)
                return [OrderRejected(
                    id=derive_id("OrderRejected", order.client_order_id, ""), ts_event=ts, ts_init=now_ns,
                    correlation_id=order.correlation_id, strategy_id=order.strategy_id,
                    instrument_id=order.instrument_id, client_order_id=order.client_order_id,
                    reason=POST_ONLY_CROSSES)]
            working.accepted = True
            return [self._accepted(working, ts, now_ns)]
        decisive = first
        if working.is_stop:
            if not working.triggered:
                assert order.trigger_price is not None  # SubmitOrder guarantees it for stop orders
                if tick is not None or not book_triggered(order.side, order.trigger_price, book):
                    return events
                working.triggered = decisive = True
                self.state_revision += 1
        market = order.order_type in (OrderType.MARKET, OrderType.STOP_MARKET)
        taking = tick is None and (market or decisive)
        if taking:  # against the opposite side's levels up to its limit: one fill per level
            levels = book.available(book_side, order.limit_price)
            if tif is TimeInForce.FOK and sum((q for _, q in levels), ZERO) < working.leaves:
                levels = []
            for price, size in levels:
                qty = min(working.leaves, size)
                if qty <= 0:
                    break
                book.take(book_side, price, qty)
                events.append(self._book_fill(working, qty, price, Liquidity.TAKER, ts, book.last_id, now_ns))
        elif order.limit_price is not None and not market:  # resting: maker at its limit
            limit = order.limit_price
            if tick is not None:
                qty = min(working.leaves, book.tick_left) if through(book_side, tick.price, limit) else ZERO
                book.tick_left -= qty
            else:
                qty = book.take_fresh(book_side, limit, working.leaves)
            if qty > 0:
                source = book.last_id if tick is None else tick.id
                events.append(self._book_fill(working, qty, limit, Liquidity.MAKER, ts, source, now_ns))
        if working.leaves <= 0:
            self._close(working)
        elif decisive and tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._close(working)
            events.append(self._ended(OrderCanceled, working, ts, now_ns, f"{tif.value}: rest canceled"))
        return events

    def _book_fill(self, working: Working, qty: Decimal, price: Decimal, liquidity: Liquidity, ts: int,
                   source: str, now_ns: int) -> OrderFilled:
        order = working.order
        spec = self._binary.get(order.instrument_id)
        if spec is not None:
            price = binary_fill_price(price, spec)
            fee = binary_fee(self.name, price, qty, liquidity)
        else:
            fee = self._costs.fee(qty, price, liquidity, first_fill=working.filled == 0)
        working.filled += qty
        working.value = CONTEXT.add(working.value, CONTEXT.multiply(qty, price))
        self.state_revision += 1
        self._book.on_fill(working, qty, ts)
        trade_id = derive_id("trade", order.client_order_id, source, price)[:20]
        leaves = working.leaves
        return OrderFilled(
            id=derive_id("OrderFilled", order.client_order_id, trade_id), ts_event=ts, ts_init=now_ns,
            correlation_id=order.correlation_id, strategy_id=order.strategy_id, instrument_id=order.instrument_id,
            client_order_id=order.client_order_id, venue_order_id=working.venue_order_id, trade_id=trade_id,
            side=order.side, last_qty=qty, last_px=price, fee=fee, fee_currency=self._costs.fee_currency,
            liquidity=liquidity, partial=leaves > 0, leaves_qty=leaves)


def restore_books(states: Iterable[BookState]) -> dict[str, LocalBook]:
    return {s.instrument_id: LocalBook.restore(s) for s in states}
