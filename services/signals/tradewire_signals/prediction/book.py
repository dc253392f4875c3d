"""A local order book per instrument, kept by the signals service from snapshots and deltas.

A ``BookSnapshot`` replaces the book; a ``BookDelta`` sets one level (size 0 deletes it). Sequences are
checked when the feed numbers them (non-zero): a delta at or below the book's sequence is a repeat and
ignored; a delta that skips a number leaves the book **stale** (strategies are not called with it) until
the next snapshot, which the feed sends after a gap. A ``Quote`` is a one-level book.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tradewire_common.schemas import BookDelta, BookSnapshot, Quote, Side

Levels = list[tuple[Decimal, Decimal]]


@dataclass
class LocalBook:
    instrument_id: str
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    sequence: int = 0
    ts_event: int = 0
    stale: bool = True
    #: ``book`` (from snapshots and deltas) or ``quote`` (a one-level book from quotes); empty until the first.
    source: str = ""

    def apply_snapshot(self, snapshot: BookSnapshot) -> None:
        self.bids = {level.price: level.size for level in snapshot.bids if level.size > 0}
        self.asks = {level.price: level.size for level in snapshot.asks if level.size > 0}
        self.sequence = snapshot.sequence
        self.ts_event = snapshot.ts_event
        self.stale = False
        self.source = "book"

    def apply_quote(self, quote: Quote) -> None:
        self.bids = {quote.bid: quote.bid_size} if quote.bid_size > 0 else {}
        self.asks = {quote.ask: quote.ask_size} if quote.ask_size > 0 else {}
        self.ts_event = quote.ts_event
        self.stale = False
        self.source = "quote"

    def apply_delta(self, delta: BookDelta) -> bool:
        """Apply one level change; False when it was ignored (a repeat, or the book is stale)."""
        if self.stale:
            return False
        if delta.sequence and self.sequence:
            if delta.sequence <= self.sequence:
                return False
            if delta.sequence != self.sequence + 1:
                self.stale = True
                return False
        side = self.bids if delta.side is Side.BUY else self.asks
        if delta.size > 0:
            side[delta.price] = delta.size
        else:
            side.pop(delta.price, None)
        if delta.sequence:
            self.sequence = delta.sequence
        self.ts_event = delta.ts_event
        return True

    def bid_levels(self) -> Levels:
        """Best (highest) first."""
        return sorted(self.bids.items(), key=lambda level: level[0], reverse=True)

    def ask_levels(self) -> Levels:
        """Best (lowest) first."""
        return sorted(self.asks.items(), key=lambda level: level[0])

    def mid(self) -> Decimal | None:
        if not self.bids or not self.asks:
            return None
        return (max(self.bids) + min(self.asks)) / 2
