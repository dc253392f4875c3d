"""Conversions the REST venues' JSON needs (Alpaca, Tradier, IBKR): exact decimals, ISO times, fill ids."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def venue_decimal(value: Any) -> Decimal:
    """A venue's number as an exact Decimal: text as written, a float by its shortest repr; absent
    (None or "") is 0."""
    if value is None or value == "":
        return Decimal(0)
    return Decimal(value if isinstance(value, str) else repr(value))


def iso_ns(text: str | None) -> int:
    """ISO 8601 time (``Z`` or an offset; naive means UTC) in ns since the epoch, exactly; absent is 0."""
    if not text:
        return 0
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def cumulative_trade_id(venue_order_id: str, cum_qty: Decimal) -> str:
    """A fill's id for venues without execution ids: its order and the order's cumulative quantity
    after it (``abc:10``, ``abc:2.5``), the same whichever path (stream, polling) reports it."""
    return f"{venue_order_id}:{format(cum_qty.normalize(), 'f')}"
