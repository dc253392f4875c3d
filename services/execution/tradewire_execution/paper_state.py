"""The paper venue's in-memory records and their exported form (see :mod:`tradewire_execution.paper`).

The exported structs are msgspec JSON kept across restarts: changes are additive only (new fields
with defaults), or bump :data:`STATE_VERSION`, which makes an older state fail to load with a clear
error instead of being misread.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from tradewire_common.numbers import ZERO
from tradewire_common.schemas import Bar, BookLevel, OrderType, Side, SubmitOrder
from tradewire_execution.paper_pricing import bar_end

#: Version of the exported state's layout.
STATE_VERSION = 1


class History:
    """One instrument's bars, in event-time order, at most ``limit`` of them."""

    def __init__(self, limit: int, interval: str) -> None:
        self.limit = limit
        self.interval = interval
        self.bars: list[Bar] = []
        self.times: list[int] = []
        #: Event time of the newest bar dropped to respect ``limit`` (None: nothing dropped).
        self.dropped_until: int | None = None
        #: Exported bars, encoded once each (by event time; bars never change once stored).
        self._encoded: dict[int, msgspec.Raw] = {}
        #: The interval's length in ns when fixed (None: calendar months or not understood).
        self._length: int | None = None
        try:
            self._length = bar_end(0, interval) if not interval.endswith("M") else None
        except ValueError:
            self._length = None

    def close_time(self, ts_event: int) -> int | None:
        """When the bar opening at ``ts_event`` closes (None: the interval is not understood)."""
        if self._length is not None:
            return ts_event + self._length
        try:
            return bar_end(ts_event, self.interval)
        except ValueError:
            return None

    def add(self, bar: Bar) -> bool:
        """Insert ``bar`` in order; False if a bar with its event time is already stored."""
        i = bisect.bisect_left(self.times, bar.ts_event)
        if i < len(self.times) and self.times[i] == bar.ts_event:
            return False
        self.times.insert(i, bar.ts_event)
        self.bars.insert(i, bar)
        excess = len(self.bars) - self.limit
        if excess > 0:
            self.dropped_until = self.times[excess - 1]
            del self.times[:excess]
            del self.bars[:excess]
        return True

    def after(self, ts: int) -> list[Bar]:
        """Stored bars with ``ts_event > ts``, oldest first."""
        return self.bars[bisect.bisect_right(self.times, ts) :]

    def export(self, count: int) -> HistoryState:
        """The newest ``count`` bars, for the exported state."""
        bars = self.bars[-count:]
        cache = self._encoded
        if len(cache) > 2 * count:
            cache = self._encoded = {b.ts_event: cache[b.ts_event] for b in bars if b.ts_event in cache}
        rows = []
        for bar in bars:
            raw = cache.get(bar.ts_event)
            if raw is None:
                raw = cache[bar.ts_event] = msgspec.Raw(msgspec.json.encode(BarRow.of(bar)))
            rows.append(raw)
        omitted = len(self.bars) - len(bars)
        dropped_until = self.times[omitted - 1] if omitted else self.dropped_until
        return HistoryState(bars[0].instrument_id, self.interval, rows, dropped_until)


@dataclass
class Working:
    """An order at the venue and how far it has been matched."""

    order: SubmitOrder
    venue_order_id: str
    #: Event time of the last bar matched against; only bars after it are eligible.
    cursor: int
    filled: Decimal = ZERO
    #: Sum of ``last_qty * last_px`` over the fills so far (average price = value / filled).
    value: Decimal = ZERO
    #: True once the order has met its first eligible bar.
    worked: bool = False
    #: For DAY orders: the event time at which the order expires.
    expires_at: int | None = None
    #: Stop orders: True once the trigger traded.
    triggered: bool = False
    #: A bracket's exit order (venue-made, reduce-only against the tracked position).
    exit: bool = False
    #: An exit's price on the bar that triggered it (later bars fill at their open).
    exit_level: Decimal | None = None
    closed: bool = False
    #: False for a post-only order until its arrival bar decided it (accepted, or rejected as crossing).
    accepted: bool = True

    @property
    def leaves(self) -> Decimal:
        quantity: Decimal = self.order.quantity
        return quantity - self.filled

    @property
    def is_stop(self) -> bool:
        return self.order.order_type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)

    @property
    def has_bracket(self) -> bool:
        order = self.order
        return not self.exit and (order.stop_loss_pct is not None or order.take_profit_pct is not None
                                  or order.trailing_stop_pct is not None or order.time_stop_s is not None)

    def sort_key(self) -> tuple[int, str]:
        return (self.order.ts_event, self.order.client_order_id)

    def to_state(self) -> OrderState:
        return OrderState(self.order, self.cursor, self.filled, self.worked, self.expires_at, self.value,
                          self.triggered, self.exit, self.exit_level, self.accepted, self.venue_order_id)

    @classmethod
    def from_state(cls, state: OrderState, venue_order_id: str) -> Working:
        return cls(order=state.order, venue_order_id=state.venue_order_id or venue_order_id, cursor=state.cursor,
                   filled=state.filled, value=state.value, worked=state.worked, expires_at=state.expires_at,
                   triggered=state.triggered, exit=state.exit, exit_level=state.exit_level, accepted=state.accepted)


# --- exported state (msgspec JSON; additive changes only, or bump STATE_VERSION) ---------------


class BarRow(msgspec.Struct, frozen=True, array_like=True):
    """A stored bar without its instrument and interval (those are its history's)."""

    id: str
    ts_event: int
    ts_init: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    seq: int
    correlation_id: str

    @classmethod
    def of(cls, bar: Bar) -> BarRow:
        return cls(bar.id, bar.ts_event, bar.ts_init, bar.open, bar.high, bar.low, bar.close, bar.volume,
                   bar.seq, bar.correlation_id)

    def bar(self, instrument_id: str, interval: str) -> Bar:
        return Bar(id=self.id, ts_event=self.ts_event, ts_init=self.ts_init, correlation_id=self.correlation_id,
                   instrument_id=instrument_id, interval=interval, open=self.open, high=self.high, low=self.low,
                   close=self.close, volume=self.volume, seq=self.seq)


class HistoryState(msgspec.Struct, frozen=True):
    instrument_id: str
    interval: str
    #: Encoded ``BarRow`` objects, oldest first.
    bars: list[msgspec.Raw]
    #: Event time of the newest bar not kept (None: none was dropped).
    dropped_until: int | None = None


class OrderState(msgspec.Struct, frozen=True):
    order: SubmitOrder
    cursor: int
    filled: Decimal
    worked: bool
    expires_at: int | None = None
    value: Decimal = ZERO
    triggered: bool = False
    exit: bool = False
    exit_level: Decimal | None = None
    accepted: bool = True
    #: Kept since an amend (``ReplaceOrder``) changes the client order id but not the venue's order id.
    venue_order_id: str = ""


class PositionState(msgspec.Struct, frozen=True, array_like=True):
    strategy_id: str
    instrument_id: str
    #: Signed: positive long, negative short.
    quantity: Decimal


class BracketState(msgspec.Struct, frozen=True):
    strategy_id: str
    instrument_id: str
    parent: str
    parent_ts: int
    correlation_id: str
    side: Side
    stop_loss_pct: Decimal | None
    take_profit_pct: Decimal | None
    entry: Decimal
    cursor: int
    armed: bool
    trailing_stop_pct: Decimal | None = None
    time_stop_s: int | None = None
    entry_ts: int = 0
    peak: Decimal | None = None


class BookState(msgspec.Struct, frozen=True):
    """An instrument's book at the paper venue (``tradewire_execution.paper_books.LocalBook``)."""

    instrument_id: str
    ts: int
    last_id: str
    #: True once a ``BookSnapshot`` or ``BookDelta`` came (quotes are then ignored).
    depth: bool
    bids: list[BookLevel]
    asks: list[BookLevel]
    #: ``[side, price, quantity]`` taken by the venue's fills from the current book.
    taken: list[tuple[Side, Decimal, Decimal]] = []


class VenueState(msgspec.Struct, frozen=True):
    version: int
    venue: str
    #: Working orders, oldest first.
    orders: list[OrderState]
    #: Remembered client order ids, oldest first.
    seen: list[str]
    histories: list[HistoryState]
    #: Net positions made by this venue's fills, by (strategy, instrument).
    positions: list[PositionState] = []
    brackets: list[BracketState] = []
    #: Books of the instruments matched against books, quotes and trades (no bars), by instrument.
    books: list[BookState] = []
