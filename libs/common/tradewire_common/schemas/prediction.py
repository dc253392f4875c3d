"""Prediction-market messages: resolutions (settlement) and the provisional-fill life cycle.

A binary market has two outcome instruments (``<symbol>-YES`` / ``<symbol>-NO`` style ids, or the venue's
token ids), whose prices are probabilities in (0, 1). When the market resolves, every contract of an outcome
pays its ``payout`` (1 or 0, or the venue's partial payout) and the position closes: the ledger realises the
PnL (``MarketResolved``). Polymarket reports matches before they are final on chain: such a fill is published
with ``OrderFilled.provisional = True``, then becomes final (``FillConfirmed``) or is undone (``FillReversed``,
after which positions, cash and PnL are as if the fill never happened).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradewire_common.ids import InstrumentId
from tradewire_common.numbers import check_non_negative, check_positive
from tradewire_common.schemas.base import Message, Side
from tradewire_common.schemas.orders import OrderEvent


class OutcomePayout(msgspec.Struct, frozen=True, kw_only=True):
    """What one contract of an outcome instrument pays at resolution (0..1)."""

    instrument_id: InstrumentId
    payout: Decimal

    def __post_init__(self) -> None:
        if not (self.payout.is_finite() and 0 <= self.payout <= 1):
            raise ValueError(f"payout must be within 0..1, got {self.payout}")


class MarketResolved(Message, frozen=True, tag="MarketResolved"):
    """A prediction market resolved; ``ts_event`` is the resolution time. Published (durably, on
    ``pm.resolved.<venue>``, id derived from venue and market so repeats are dropped) by whoever learns it
    first: the datafeed, the execution adapter, or a replay of recorded history."""

    venue: str
    market_id: str
    payouts: tuple[OutcomePayout, ...]
    #: The venue's resolution label (``YES``, ``NO``, ``MKT``/partial, ``CANCEL``...).
    resolution: str
    source: str = ""

    def __post_init__(self) -> None:
        if not self.payouts:
            raise ValueError("a resolution needs at least one outcome payout")


class FillConfirmed(OrderEvent, frozen=True, tag="FillConfirmed"):
    """A provisional fill (``OrderFilled.provisional``) became final at the venue."""

    venue_order_id: str
    trade_id: str


class FillReversed(OrderEvent, frozen=True, tag="FillReversed"):
    """A provisional fill failed at the venue (e.g. Polymarket's FAILED match): undo it entirely. Carries
    the fill's figures so a consumer that kept none can still undo it."""

    venue_order_id: str
    trade_id: str
    side: Side
    last_qty: Decimal
    last_px: Decimal
    fee: Decimal = Decimal(0)
    reason: str = ""

    def __post_init__(self) -> None:
        check_positive(self.last_qty, "last_qty")
        check_positive(self.last_px, "last_px")
        check_non_negative(self.fee, "fee")
