"""The order table's state machine, as a pure function of (current row, message).

Messages may arrive out of order (commands and events travel on different subjects), so every
message upserts what it knows and the status only moves forward:
``NEW < SUBMITTED < ACCEPTED < PARTIALLY_FILLED < terminal``; the first terminal status
(FILLED, CANCELED, EXPIRED, REJECTED, DENIED) sticks.  Fill quantities still accumulate after a
terminal status, since every fill is real.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any, TypeGuard

from tradewire_common.schemas import (
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    SubmitOrder,
)

NEW = "NEW"
SUBMITTED = "SUBMITTED"
ACCEPTED = "ACCEPTED"
PARTIALLY_FILLED = "PARTIALLY_FILLED"
FILLED = "FILLED"
CANCELED = "CANCELED"
EXPIRED = "EXPIRED"
REJECTED = "REJECTED"
DENIED = "DENIED"

TERMINAL = frozenset({FILLED, CANCELED, EXPIRED, REJECTED, DENIED})
_RANK = {NEW: 0, SUBMITTED: 1, ACCEPTED: 2, PARTIALLY_FILLED: 3} | dict.fromkeys(TERMINAL, 4)


def tracks_order(message: Message) -> TypeGuard[SubmitOrder | OrderEvent]:
    """Whether ``message`` updates the orders table."""
    return isinstance(message, SubmitOrder | OrderEvent)


def _advances(old: str, new: str) -> bool:
    if not old:
        return True
    if old in TERMINAL:
        return False
    return _RANK[new] >= _RANK[old]


def updated_order(row: dict[str, Any] | None, message: SubmitOrder | OrderEvent) -> dict[str, Any]:
    """The orders row after ``message`` (``row`` is the current row, None if there is none)."""
    if row is None:
        order: dict[str, Any] = {
            "client_order_id": message.client_order_id,
            "strategy_id": message.strategy_id,
            "instrument_id": message.instrument_id,
            "side": None,
            "order_type": None,
            "quantity": None,
            "limit_price": None,
            "time_in_force": None,
            "status": "",
            "venue": None,
            "venue_order_id": None,
            "filled_qty": "0",
            "avg_fill_px": None,
            "reason": None,
            "signal_id": None,
            "created_ts": message.ts_event,
            "updated_ts": message.ts_event,
            "last_message_id": message.id,
        }
    else:
        order = dict(row)

    status: str
    match message:
        case SubmitOrder():
            status = NEW
            order["side"] = str(message.side)
            order["order_type"] = str(message.order_type)
            order["quantity"] = str(message.quantity)
            order["limit_price"] = None if message.limit_price is None else str(message.limit_price)
            order["time_in_force"] = str(message.time_in_force)
            order["signal_id"] = message.signal_id or order["signal_id"]
        case OrderDenied():
            status = DENIED
            order["reason"] = f"{message.reason_code}: {message.reason}"
            order["side"] = order["side"] or str(message.side)
            if order["quantity"] is None and message.quantity is not None:
                order["quantity"] = str(message.quantity)
            order["signal_id"] = order["signal_id"] or message.signal_id or None
        case OrderSubmitted():
            status = SUBMITTED
            order["venue"] = message.venue
        case OrderAccepted():
            status = ACCEPTED
            order["venue_order_id"] = message.venue_order_id
        case OrderRejected():
            status = REJECTED
            order["reason"] = message.reason
        case OrderFilled():
            status = PARTIALLY_FILLED if message.partial else FILLED
            _add_fill(order, message)
        case OrderCanceled():
            status = CANCELED
            order["reason"] = message.reason or order["reason"]
        case OrderExpired():
            status = EXPIRED
            order["reason"] = message.reason or order["reason"]
        case _:
            raise TypeError(f"{type(message).__name__} does not update an order")

    if _advances(order["status"], status):
        order["status"] = status
    order["created_ts"] = min(order["created_ts"], message.ts_event)
    if message.ts_event >= order["updated_ts"]:
        order["updated_ts"] = message.ts_event
    order["last_message_id"] = message.id
    return order


def _add_fill(order: dict[str, Any], fill: OrderFilled) -> None:
    with localcontext(prec=34):
        filled = Decimal(order["filled_qty"])
        avg = Decimal(order["avg_fill_px"]) if order["avg_fill_px"] is not None else Decimal(0)
        total = filled + fill.last_qty
        order["avg_fill_px"] = str((filled * avg + fill.last_qty * fill.last_px) / total)
        order["filled_qty"] = str(total)
    order["side"] = order["side"] or str(fill.side)
    order["venue_order_id"] = order["venue_order_id"] or fill.venue_order_id
