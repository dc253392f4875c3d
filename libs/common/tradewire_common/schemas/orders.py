"""Order commands (imperative) and order events (past tense)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Protocol

from msgspec import Meta

from tradewire_common.ids import ClientOrderId, InstrumentId, StrategyId
from tradewire_common.numbers import check_non_negative, check_positive
from tradewire_common.schemas.base import DenyReason, Liquidity, Message, OrderType, Side, TimeInForce

#: The exit fields that are fractions of the entry price (``SubmitOrder``, ``Signal``).
EXIT_FRACTIONS = ("stop_loss_pct", "take_profit_pct", "trailing_stop_pct")


class _OrderShape(Protocol):
    @property
    def order_type(self) -> OrderType: ...
    @property
    def limit_price(self) -> Decimal | None: ...
    @property
    def trigger_price(self) -> Decimal | None: ...
    @property
    def time_stop_s(self) -> int | None: ...
    @property
    def time_in_force(self) -> TimeInForce: ...
    @property
    def expire_time_ns(self) -> int | None: ...
    @property
    def post_only(self) -> bool: ...


def check_order_shape(message: _OrderShape, what: str) -> None:
    """The checks ``SubmitOrder`` and ``Signal`` share: prices that fit the order type (a limit
    price exactly for LIMIT/STOP_LIMIT, a trigger price exactly for STOP_*, both positive) and exits
    within range. ``what`` names the message in errors ("order", "signal")."""
    kind = message.order_type
    name = kind.value.lower().replace("_", "-")
    needs = {"limit_price": kind in (OrderType.LIMIT, OrderType.STOP_LIMIT),
             "trigger_price": kind in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)}
    for field, needed in needs.items():
        value = getattr(message, field)
        if needed and value is None:
            raise ValueError(f"{name} {what} needs {field}")
        if not needed and value is not None:
            raise ValueError(f"{name} {what} must not carry {field}")
        if value is not None:
            check_positive(value, field)
    for field in EXIT_FRACTIONS:
        value = getattr(message, field)
        if value is not None and not (value.is_finite() and 0 < value < 1):
            raise ValueError(f"{field} must be a fraction within (0, 1), got {value}")
    time_stop = message.time_stop_s
    if time_stop is not None and time_stop <= 0:
        raise ValueError(f"time_stop_s must be a positive number of seconds, got {time_stop}")
    gtd = message.time_in_force is TimeInForce.GTD
    if gtd and message.expire_time_ns is None:
        raise ValueError(f"a GTD {what} needs expire_time_ns")
    if not gtd and message.expire_time_ns is not None:
        raise ValueError(f"only a GTD {what} carries expire_time_ns")
    if message.expire_time_ns is not None and message.expire_time_ns <= 0:
        raise ValueError(f"expire_time_ns must be a positive time, got {message.expire_time_ns}")
    if message.post_only and kind is not OrderType.LIMIT:
        raise ValueError(f"only a limit {what} can be post-only (maker only)")
    if message.post_only and message.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
        raise ValueError(f"a post-only {what} cannot be {message.time_in_force.value} (it would never rest)")


class SubmitOrder(Message, frozen=True, tag="SubmitOrder"):
    """Risk's instruction to execution: place this order. Only risk publishes these."""

    strategy_id: StrategyId
    instrument_id: InstrumentId
    client_order_id: ClientOrderId
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    #: The signal that caused this order.
    signal_id: str = ""
    #: Stop orders (``STOP_MARKET``, ``STOP_LIMIT``): the price whose trading through triggers them
    #: (a BUY stop triggers at or above it, a SELL stop at or below it).
    trigger_price: Decimal | None = None
    #: Attached exits (a bracket): once this order fills, the venue protects the filled quantity with
    #: a stop loss and/or a take profit, as fractions of the average fill price (0.02 = 2 %), one
    #: cancelling the other (and the trailing and time stops below). Venues without native brackets
    #: have them emulated by execution.
    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None
    #: Trailing stop, a fraction: the stop follows the best price since the fill (long: the highest
    #: high of the bars checked since, short: the lowest low), ``trailing_stop_pct`` away from it.
    trailing_stop_pct: Decimal | None = None
    #: Time stop: the position is closed at the open of the first bar at or after the first fill's
    #: event time plus this many seconds.
    time_stop_s: Annotated[int, Meta(gt=0)] | None = None
    #: Maker only: the venue refuses (or cancels) the order if it would take liquidity on arrival.
    post_only: bool = False
    #: ``GTD`` orders: when the venue expires the order (ns since the epoch, UTC); only with ``GTD``.
    expire_time_ns: int | None = None

    def __post_init__(self) -> None:
        check_positive(self.quantity, "quantity")
        check_order_shape(self, "order")


class CancelOrder(Message, frozen=True, tag="CancelOrder"):
    strategy_id: StrategyId
    instrument_id: InstrumentId
    client_order_id: ClientOrderId
    reason: str = ""


class ReplaceOrder(Message, frozen=True, tag="ReplaceOrder"):
    """Risk's instruction to change a working order (cancel/replace): the order ``client_order_id`` is
    replaced by ``new_client_order_id`` with the given quantity and prices (None = unchanged). Venues
    with a native amend use it; the others cancel and resubmit, and the replacement is placed only once
    the cancel is confirmed (never two live orders). Answered by ``OrderReplaced`` or ``OrderRejected``
    (on the new id; the old order keeps working)."""

    strategy_id: StrategyId
    instrument_id: InstrumentId
    client_order_id: ClientOrderId
    new_client_order_id: ClientOrderId
    #: New total quantity (filled + leaves) of the order; None = unchanged.
    quantity: Decimal | None = None
    limit_price: Decimal | None = None
    trigger_price: Decimal | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.new_client_order_id == self.client_order_id:
            raise ValueError("a replacement needs a new client order id")
        for name in ("quantity", "limit_price", "trigger_price"):
            value = getattr(self, name)
            if value is not None:
                check_positive(value, name)
        if self.quantity is None and self.limit_price is None and self.trigger_price is None:
            raise ValueError("a replacement must change quantity, limit_price or trigger_price")


class OrderEvent(Message, frozen=True):
    """Base of the order life-cycle events (not sent on its own)."""

    strategy_id: StrategyId
    instrument_id: InstrumentId
    client_order_id: ClientOrderId


class OrderDenied(OrderEvent, frozen=True, tag="OrderDenied"):
    """Risk refused; the order never left risk. A denial is an event, not an exception."""

    reason_code: DenyReason
    reason: str
    side: Side
    quantity: Decimal | None = None
    signal_id: str = ""


class OrderSubmitted(OrderEvent, frozen=True, tag="OrderSubmitted"):
    venue: str


class OrderAccepted(OrderEvent, frozen=True, tag="OrderAccepted"):
    venue_order_id: str


class OrderRejected(OrderEvent, frozen=True, tag="OrderRejected"):
    reason: str


class OrderFilled(OrderEvent, frozen=True, tag="OrderFilled"):
    """One execution. ``trade_id`` is unique per venue and is what consumers de-duplicate on."""

    venue_order_id: str
    trade_id: str
    side: Side
    last_qty: Decimal
    last_px: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    #: True while the order still has quantity left after this fill.
    partial: bool
    leaves_qty: Decimal = Decimal(0)
    #: Not final yet at the venue (Polymarket MATCHED): a ``FillConfirmed`` or ``FillReversed`` with the
    #: same trade id follows. It counts in positions meanwhile (risk sees the exposure).
    provisional: bool = False

    def __post_init__(self) -> None:
        check_positive(self.last_qty, "last_qty")
        check_positive(self.last_px, "last_px")
        check_non_negative(self.fee, "fee")
        check_non_negative(self.leaves_qty, "leaves_qty")


class OrderCanceled(OrderEvent, frozen=True, tag="OrderCanceled"):
    reason: str = ""
    filled_qty: Decimal = Decimal(0)


class OrderExpired(OrderEvent, frozen=True, tag="OrderExpired"):
    reason: str = ""
    filled_qty: Decimal = Decimal(0)


class OrderReplaced(OrderEvent, frozen=True, tag="OrderReplaced"):
    """The order ``client_order_id`` was replaced: it is now ``new_client_order_id`` (quantities and prices as
    given; the filled quantity carries over)."""

    new_client_order_id: ClientOrderId
    venue_order_id: str
    quantity: Decimal
    limit_price: Decimal | None = None
    trigger_price: Decimal | None = None
    filled_qty: Decimal = Decimal(0)
