"""The ledger's view of the account."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradewire_common.ids import InstrumentId
from tradewire_common.schemas.base import Message


class PositionSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    instrument_id: InstrumentId
    #: Signed: positive long, negative short.
    quantity: Decimal
    avg_price: Decimal
    last_price: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal


class PortfolioSnapshot(Message, frozen=True, tag="PortfolioSnapshot"):
    """Cash, equity and positions ``as_of`` an event time.

    ``as_of`` is a watermark: the ledger has applied every fill and mark with an event time at or
    before it, so risk can size a signal from time ``t`` only with a snapshot where ``as_of >= t``.
    """

    account: str
    cash: Decimal
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    #: Sum of |quantity * last_price| over positions.
    gross_exposure: Decimal
    positions: tuple[PositionSnapshot, ...]
    as_of: int
    fills: int = 0
