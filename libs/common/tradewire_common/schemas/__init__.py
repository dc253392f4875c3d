"""Every message schema on the wire, and the codec for them."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from tradewire_common.schemas.base import (
    ApprovalDecision,
    DenyReason,
    Liquidity,
    Message,
    OrderType,
    Side,
    StrategyStage,
    TimeInForce,
    TradingState,
)
from tradewire_common.schemas.control import (
    Alert,
    DeadLetter,
    ExecutionWatermark,
    ReplayCompleted,
    ReplayStarted,
    TradingStateChanged,
    VenueStatus,
)
from tradewire_common.schemas.governance import (
    OrderApprovalDecided,
    OrderPendingApproval,
    StrategyParamsChanged,
    StrategyStageChanged,
)
from tradewire_common.schemas.market import Bar, BookDelta, BookLevel, BookSnapshot, Quote, TradeTick
from tradewire_common.schemas.orders import (
    CancelOrder,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
    ReplaceOrder,
    SubmitOrder,
)
from tradewire_common.schemas.portfolio import PortfolioSnapshot, PositionSnapshot
from tradewire_common.schemas.prediction import FillConfirmed, FillReversed, MarketResolved, OutcomePayout
from tradewire_common.schemas.signals import Signal, StrategyError

#: Every concrete message type, in a stable order.
MESSAGE_TYPES: tuple[type[Message], ...] = (
    Bar,
    Quote,
    TradeTick,
    BookSnapshot,
    BookDelta,
    Signal,
    StrategyError,
    SubmitOrder,
    CancelOrder,
    OrderDenied,
    OrderSubmitted,
    OrderAccepted,
    OrderRejected,
    OrderFilled,
    OrderCanceled,
    OrderExpired,
    PortfolioSnapshot,
    TradingStateChanged,
    Alert,
    DeadLetter,
    ExecutionWatermark,
    ReplayStarted,
    ReplayCompleted,
    VenueStatus,
    OrderPendingApproval,
    OrderApprovalDecided,
    StrategyStageChanged,
    StrategyParamsChanged,
    ReplaceOrder,
    OrderReplaced,
    MarketResolved,
    FillConfirmed,
    FillReversed,
)

AnyMessage = (
    Bar
    | Quote
    | TradeTick
    | BookSnapshot
    | BookDelta
    | Signal
    | StrategyError
    | SubmitOrder
    | CancelOrder
    | OrderDenied
    | OrderSubmitted
    | OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCanceled
    | OrderExpired
    | PortfolioSnapshot
    | TradingStateChanged
    | Alert
    | DeadLetter
    | ExecutionWatermark
    | ReplayStarted
    | ReplayCompleted
    | VenueStatus
    | OrderPendingApproval
    | OrderApprovalDecided
    | StrategyStageChanged
    | StrategyParamsChanged
    | ReplaceOrder
    | OrderReplaced
    | MarketResolved
    | FillConfirmed
    | FillReversed
)

M = TypeVar("M", bound=Message)

_encoder = msgspec.json.Encoder(decimal_format="string")
_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(AnyMessage)


def encode(message: Message) -> bytes:
    """Encode a message to its JSON wire form."""
    return _encoder.encode(message)


def decode(data: bytes) -> Message:
    """Decode wire bytes into the tagged message type; raises ``msgspec.DecodeError`` (or
    its subclass ``ValidationError``) with a reason naming the offending field."""
    result: Message = _decoder.decode(data)
    return result


def decode_as(data: bytes, kind: type[M]) -> M:
    """Decode and insist on one message type."""
    message = decode(data)
    if not isinstance(message, kind):
        raise msgspec.ValidationError(f"expected {kind.__name__}, got {type(message).__name__}")
    return message


def tag_of(kind: type[Message]) -> str:
    tag = kind.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def json_schema() -> dict[str, Any]:
    """JSON Schema of every message (what ``tradewire schema dump`` writes)."""
    schemas, components = msgspec.json.schema_components(MESSAGE_TYPES, ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Tradewire wire contract",
        "oneOf": list(schemas),
        "$defs": components,
    }


__all__ = [
    "MESSAGE_TYPES",
    "Alert",
    "AnyMessage",
    "ApprovalDecision",
    "Bar",
    "BookDelta",
    "BookLevel",
    "BookSnapshot",
    "CancelOrder",
    "DeadLetter",
    "DenyReason",
    "ExecutionWatermark",
    "FillConfirmed",
    "FillReversed",
    "Liquidity",
    "MarketResolved",
    "Message",
    "OrderAccepted",
    "OrderApprovalDecided",
    "OrderCanceled",
    "OrderDenied",
    "OrderEvent",
    "OrderExpired",
    "OrderFilled",
    "OrderPendingApproval",
    "OrderRejected",
    "OrderReplaced",
    "OrderSubmitted",
    "OrderType",
    "OutcomePayout",
    "PortfolioSnapshot",
    "PositionSnapshot",
    "Quote",
    "ReplaceOrder",
    "ReplayCompleted",
    "ReplayStarted",
    "Side",
    "Signal",
    "StrategyError",
    "StrategyParamsChanged",
    "StrategyStage",
    "StrategyStageChanged",
    "SubmitOrder",
    "TimeInForce",
    "TradeTick",
    "TradingState",
    "TradingStateChanged",
    "VenueStatus",
    "decode",
    "decode_as",
    "encode",
    "json_schema",
    "tag_of",
]
