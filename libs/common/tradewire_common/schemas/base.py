"""The base of every message on the wire.

Rules (the wire contract): every message is a frozen msgspec Struct with an explicit, stable
``type`` tag; changes are additive only (new optional fields with defaults, new types);
money, prices and quantities are ``Decimal`` and travel as strings.
"""

from __future__ import annotations

import enum

import msgspec

from tradewire_common.ids import MessageId


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=False):
    """Base of all messages: identity, event time, creation time and correlation."""

    id: MessageId
    #: When the thing happened (ns since the epoch, UTC); for a bar, its open time.
    ts_event: int
    #: When this message object was created (ns since the epoch, UTC).
    ts_init: int
    #: Id of the message that started this chain (a bar, a signal, an operator action).
    correlation_id: str = ""


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    #: Becomes a market order once the price trades through ``trigger_price``.
    STOP_MARKET = "STOP_MARKET"
    #: Becomes a limit order at ``limit_price`` once the price trades through ``trigger_price``.
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(enum.StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    DAY = "DAY"
    #: Good till date: the order carries ``expire_time_ns`` and the venue expires it then.
    GTD = "GTD"


class Liquidity(enum.StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class TradingState(enum.StrEnum):
    """ACTIVE trades; REDUCING only lets exposure-reducing orders and cancels through; HALTED cancels only."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class DenyReason(enum.StrEnum):
    """Why risk refused to turn a signal into an order (stable codes, additive only)."""

    TRADING_HALTED = "TRADING_HALTED"
    TRADING_REDUCING = "TRADING_REDUCING"
    MAX_POSITION = "MAX_POSITION"
    MAX_EXPOSURE = "MAX_EXPOSURE"
    INSUFFICIENT_CASH = "INSUFFICIENT_CASH"
    SIZE_ZERO = "SIZE_ZERO"
    NO_POSITION = "NO_POSITION"
    UNKNOWN_PORTFOLIO = "UNKNOWN_PORTFOLIO"
    UNKNOWN_PRICE = "UNKNOWN_PRICE"
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    INVALID_ORDER = "INVALID_ORDER"
    DUPLICATE_ORDER = "DUPLICATE_ORDER"
    #: All-in sizing holds one position at a time: an entry in the position's direction is refused.
    ALREADY_IN_POSITION = "ALREADY_IN_POSITION"
    #: The instrument is configured as not tradable.
    INSTRUMENT_NOT_TRADABLE = "INSTRUMENT_NOT_TRADABLE"
    #: A limit/trigger (or the signal's) price is too far from the last price (fat finger).
    PRICE_BAND = "PRICE_BAND"
    #: Nothing fits under the maximum notional of one order.
    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    #: Too many open orders (in total or for the strategy).
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    #: Too many orders within a minute (for the strategy or the venue).
    RATE_LIMIT = "RATE_LIMIT"
    #: Equity fell more than the daily loss limit below the start of the UTC day: entries refused.
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    #: Equity fell more than the drawdown limit below its peak: entries refused.
    MAX_DRAWDOWN = "MAX_DRAWDOWN"
    #: Nothing fits in the strategy's capital allocation.
    STRATEGY_ALLOCATION = "STRATEGY_ALLOCATION"
    #: A reduce-only order would increase (or open) a position.
    REDUCE_ONLY = "REDUCE_ONLY"
    #: The strategy is not at a live stage (``live-small`` or ``live``) and the venue is live.
    STAGE_NOT_LIVE = "STAGE_NOT_LIVE"
    #: The strategy is at the ``backtest`` stage: no order leaves risk, not even to a paper venue.
    STAGE_BACKTEST_ONLY = "STAGE_BACKTEST_ONLY"
    #: Nothing fits in the capital a ``live-small`` strategy may use on live venues.
    STAGE_CAPITAL_CAP = "STAGE_CAPITAL_CAP"
    #: A person rejected the order waiting for approval (``semi-auto``).
    APPROVAL_REJECTED = "APPROVAL_REJECTED"
    #: Nobody approved the waiting order within the approval TTL.
    APPROVAL_EXPIRED = "APPROVAL_EXPIRED"
    #: At approval the order risk would send differs from the approved one (e.g. the position changed).
    APPROVAL_STALE = "APPROVAL_STALE"
    #: The approval queue is full: the order was not parked.
    APPROVAL_QUEUE_FULL = "APPROVAL_QUEUE_FULL"


class StrategyStage(enum.StrEnum):
    """Promotion stages, in order (see ``tradewire_common.config.PromotionConfig``)."""

    BACKTEST = "backtest"
    PAPER = "paper"
    LIVE_SMALL = "live-small"
    LIVE = "live"


class ApprovalDecision(enum.StrEnum):
    """How an order waiting for approval left the queue."""

    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
