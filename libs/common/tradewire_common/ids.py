"""Typed identifiers shared by every service.

Identifiers travel on the wire as plain strings constrained by a pattern, so a malformed id
fails decoding at the edge. Helpers build and split them in one place.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated

from msgspec import Meta

#: ``SYMBOL.VENUE``, e.g. ``BTCUSDT.BINANCE``; the venue is the last dot-separated part.
InstrumentId = Annotated[
    str, Meta(pattern=r"^[^\s.][^\s]*\.[A-Z][A-Z0-9_]*$", max_length=128, description="SYMBOL.VENUE")
]
#: A strategy's registered instance name, e.g. ``sma_cross`` or ``sma-btc-1``.
StrategyId = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_\-]*$", max_length=64)]
#: Deterministic client order id, at most 36 characters (the tightest venue limit, Binance).
ClientOrderId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_\-]{1,36}$")]
#: A venue name in upper case, e.g. ``BINANCE`` or ``PAPER``.
Venue = Annotated[str, Meta(pattern=r"^[A-Z][A-Z0-9_]*$", max_length=32)]
#: Message id: 32 lower-case hex digits.
MessageId = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")]


def instrument_id(symbol: str, venue: str) -> str:
    """Build ``SYMBOL.VENUE``."""
    if not symbol or any(c.isspace() for c in symbol):
        raise ValueError(f"invalid symbol {symbol!r}")
    return f"{symbol}.{venue.upper()}"


def split_instrument_id(value: str) -> tuple[str, str]:
    """Return ``(symbol, venue)`` of ``SYMBOL.VENUE``; symbols may themselves contain dots."""
    symbol, sep, venue = value.rpartition(".")
    if not sep or not symbol or not venue:
        raise ValueError(f"invalid instrument id {value!r}: expected SYMBOL.VENUE")
    return symbol, venue


def new_id() -> str:
    """A fresh random message id."""
    return uuid.uuid4().hex


def derive_id(*parts: object) -> str:
    """A message id derived from its causes, so a redelivered input yields the same output id.

    JetStream drops a republished message with the same ``Nats-Msg-Id``, which makes every
    consumer that derives its output ids this way idempotent across restarts.
    """
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return digest[:32]


def client_order_id(strategy_id: str, signal_id: str) -> str:
    """Deterministic client order id for the order that a signal caused."""
    return "tw-" + derive_id("coid", strategy_id, signal_id)[:24]
