"""The paper venue's rules for post-only and GTD orders, amends (``ReplaceOrder``) and binary (prediction
market) instruments; the specification is :mod:`tradewire_execution.paper`'s docstring. Pure functions of an
order, its working record and one bar, kept apart from the venue's bookkeeping."""

from __future__ import annotations

from decimal import Decimal

from tradewire_common.config import InstrumentSpec
from tradewire_common.prediction import FeeSchedule
from tradewire_common.schemas import Bar, Liquidity, OrderType, ReplaceOrder, SubmitOrder
from tradewire_execution.paper_pricing import limit_quote
from tradewire_execution.paper_state import Working

#: The rejection reason of a post-only order that would take liquidity on arrival.
POST_ONLY_CROSSES = "post-only would cross"
#: The cancellation reason of the open orders of a resolved prediction market.
MARKET_RESOLVED = "market resolved"
_ONE = Decimal(1)


def post_only_crosses(order: SubmitOrder, bar: Bar) -> bool:
    """Whether a post-only limit order meeting ``bar`` on arrival takes liquidity: the bar opens through its
    limit (a BUY limit above the open, a SELL limit below it), where a plain limit fills at once as TAKER."""
    assert order.limit_price is not None  # a post-only order is a limit order (check_order_shape)
    quote = limit_quote(order.side, order.limit_price, bar)
    return quote is not None and quote[1] is Liquidity.TAKER


def resting_quote(order: SubmitOrder, bar: Bar) -> tuple[Decimal, Liquidity] | None:
    """A resting post-only order's fill on a later bar: at its limit as MAKER whenever the bar reaches it
    (a maker order in the book fills at its own price, also when the market gaps through it)."""
    assert order.limit_price is not None
    return None if limit_quote(order.side, order.limit_price, bar) is None else (order.limit_price, Liquidity.MAKER)


def amend_problem(working: Working, command: ReplaceOrder, binary: bool) -> str:
    """Why the paper venue cannot amend ``working`` as ``command`` asks ("" if it can)."""
    order = working.order
    if working.exit:
        return f"{order.client_order_id} is a bracket exit made by the venue; it cannot be replaced"
    if not working.accepted:
        return f"{order.client_order_id} has not reached the venue yet"
    if command.quantity is not None and command.quantity <= working.filled:
        return (f"new quantity {command.quantity} is not above the filled quantity {working.filled} of "
                f"{order.client_order_id}")
    if command.limit_price is not None and order.order_type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return f"{order.client_order_id} is a {order.order_type} order: it has no limit price"
    if command.trigger_price is not None and order.order_type not in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT):
        return f"{order.client_order_id} is a {order.order_type} order: it has no trigger price"
    if command.trigger_price is not None and working.triggered:
        return f"{order.client_order_id} has triggered already: its trigger price cannot change"
    if binary:
        return binary_price_problem(command.limit_price, command.trigger_price)
    return ""


def binary_price_problem(*prices: Decimal | None) -> str:
    """A binary contract's prices are probabilities strictly within (0, 1)."""
    for price in prices:
        if price is not None and not 0 < price < _ONE:
            return f"price {price} of a binary contract must be within (0, 1)"
    return ""


def binary_fill_price(price: Decimal, spec: InstrumentSpec) -> Decimal:
    """A binary contract's fill price kept within (0, 1): slippage never pushes it to 0 or 1 or beyond (it
    stops one tick inside)."""
    tick = spec.price_tick if 0 < spec.price_tick < _ONE else Decimal("0.0001")
    return min(max(price, tick), _ONE - tick)


def binary_fee(venue: str, price: Decimal, qty: Decimal, liquidity: Liquidity) -> Decimal:
    """The venue's fee schedule for binary contracts (:class:`~tradewire_common.prediction.FeeSchedule`)."""
    return FeeSchedule.for_venue(venue).fee(price, qty, maker=liquidity is Liquidity.MAKER)
