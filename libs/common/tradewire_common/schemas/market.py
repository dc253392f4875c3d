"""Market data: bars, quotes, trades and order books."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradewire_common.ids import InstrumentId
from tradewire_common.numbers import check_non_negative, check_positive
from tradewire_common.schemas.base import Message, Side


class Bar(Message, frozen=True, tag="Bar"):
    """An OHLCV bar; ``ts_event`` is its open time, ``interval`` e.g. ``1m``, ``5m``, ``1d``."""

    instrument_id: InstrumentId
    interval: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    #: Position of this bar in its replay (0 for live bars).
    seq: int = 0

    def __post_init__(self) -> None:
        for name in ("open", "high", "low", "close"):
            check_positive(getattr(self, name), name)
        check_non_negative(self.volume, "volume")
        if self.high < max(self.open, self.close, self.low) or self.low > min(self.open, self.close):
            raise ValueError(
                f"inconsistent bar: high {self.high} low {self.low} open {self.open} close {self.close}"
            )


class Quote(Message, frozen=True, tag="Quote"):
    instrument_id: InstrumentId
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal

    def __post_init__(self) -> None:
        check_positive(self.bid, "bid")
        check_positive(self.ask, "ask")
        check_non_negative(self.bid_size, "bid_size")
        check_non_negative(self.ask_size, "ask_size")
        if self.bid > self.ask:
            raise ValueError(f"crossed quote: bid {self.bid} > ask {self.ask}")


class TradeTick(Message, frozen=True, tag="TradeTick"):
    instrument_id: InstrumentId
    price: Decimal
    size: Decimal
    aggressor_side: Side | None
    trade_id: str

    def __post_init__(self) -> None:
        check_positive(self.price, "price")
        check_positive(self.size, "size")


class BookLevel(msgspec.Struct, frozen=True, array_like=True):
    price: Decimal
    size: Decimal

    def __post_init__(self) -> None:
        check_positive(self.price, "price")
        check_non_negative(self.size, "size")


class BookSnapshot(Message, frozen=True, tag="BookSnapshot"):
    """Full book: bids best (highest) first, asks best (lowest) first."""

    instrument_id: InstrumentId
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    sequence: int = 0


class BookDelta(Message, frozen=True, tag="BookDelta"):
    """One level change; ``size`` 0 deletes the level."""

    instrument_id: InstrumentId
    side: Side
    price: Decimal
    size: Decimal
    sequence: int = 0

    def __post_init__(self) -> None:
        check_positive(self.price, "price")
        check_non_negative(self.size, "size")
