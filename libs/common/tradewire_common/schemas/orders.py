"""Order commands (imperative) and order events (past tense)."""

from __future__ import annotations

from decimal import Decimal

from tradewire_common.ids import ClientOrderId, InstrumentId, StrategyId
from tradewire_common.numbers import check_non_negative, check_positive
from tradewire_common.schemas.base import DenyReason, Liquidity, Message, OrderType, Side, TimeInForce


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

    def __post_init__(self) -> None:
        check_positive(self.quantity, "quantity")
        if self.order_type is OrderType.LIMIT:
            if self.limit_price is None:
                raise ValueError("limit order needs limit_price")
            check_positive(self.limit_price, "limit_price")
        elif self.limit_price is not None:
            raise ValueError("market order must not carry limit_price")


class CancelOrder(Message, frozen=True, tag="CancelOrder"):
    strategy_id: StrategyId
    instrument_id: InstrumentId
    client_order_id: ClientOrderId
    reason: str = ""


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
