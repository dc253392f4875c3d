"""The order table's state machine, as a pure function of (current row, message).

Messages may arrive out of order (commands and events travel on different subjects), so every
message upserts what it knows and the status only moves forward:
``NEW < SUBMITTED < ACCEPTED < PARTIALLY_FILLED < terminal``; the first terminal status
(FILLED, CANCELED, EXPIRED, REJECTED, DENIED, REPLACED) sticks.  Fill quantities still accumulate
after a terminal status, since every fill is real.

Two exceptions move an order otherwise:

* ``OrderReplaced``: the order continues under its new client order id. The old row becomes
  ``REPLACED`` (``replaced_by``), a row for the new id takes its fields, the new quantity and prices
  and the filled quantity carried over (``replaces``): :func:`replacement_order`.
* ``FillReversed``: the fill no longer counts, so the filled quantity and average price are worked out
  again from the fills that still count, and a ``FILLED``/``PARTIALLY_FILLED`` order goes back to
  ``PARTIALLY_FILLED`` (``ACCEPTED`` when nothing is filled): :func:`order_after_reversal`.

``FillConfirmed`` changes nothing in the order (the fill counted already).
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
    OrderReplaced,
    OrderSubmitted,
    SubmitOrder,
)
from tradewire_common.schemas.prediction import FillConfirmed, FillReversed

NEW = "NEW"
SUBMITTED = "SUBMITTED"
ACCEPTED = "ACCEPTED"
PARTIALLY_FILLED = "PARTIALLY_FILLED"
FILLED = "FILLED"
CANCELED = "CANCELED"
EXPIRED = "EXPIRED"
REJECTED = "REJECTED"
DENIED = "DENIED"
REPLACED = "REPLACED"

TERMINAL = frozenset({FILLED, CANCELED, EXPIRED, REJECTED, DENIED, REPLACED})
_RANK = {NEW: 0, SUBMITTED: 1, ACCEPTED: 2, PARTIALLY_FILLED: 3} | dict.fromkeys(TERMINAL, 4)


def tracks_order(message: Message) -> TypeGuard[SubmitOrder | OrderEvent]:
    """Whether ``message`` updates the orders table (:func:`updated_order`; ``OrderReplaced`` and
    ``FillReversed`` through their own functions)."""
    return isinstance(message, SubmitOrder | OrderEvent) and not isinstance(message, FillConfirmed)


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
            "post_only": 0,
            "expire_time_ns": None,
            "replaces": None,
            "replaced_by": None,
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
            order["post_only"] = int(message.post_only)
            order["expire_time_ns"] = message.expire_time_ns
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
        case OrderReplaced():
            status = REPLACED
            order["replaced_by"] = message.new_client_order_id
            order["venue_order_id"] = order["venue_order_id"] or message.venue_order_id or None
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


def replacement_order(old: dict[str, Any], new: dict[str, Any] | None, message: OrderReplaced) -> dict[str, Any]:
    """The row of the order's new client order id after ``message``: the old row's fields with the new
    quantity and limit price, the carried filled quantity plus any fill already recorded under the new id
    (``new``, when fills overtook the replacement)."""
    order = dict(old)
    order.update(client_order_id=message.new_client_order_id, quantity=str(message.quantity),
                 replaces=message.client_order_id, replaced_by=None, reason=None,
                 venue_order_id=message.venue_order_id or old["venue_order_id"],
                 created_ts=message.ts_event, updated_ts=message.ts_event, last_message_id=message.id)
    if message.limit_price is not None:
        order["limit_price"] = str(message.limit_price)
    carried = message.filled_qty
    order["filled_qty"] = str(carried)
    order["avg_fill_px"] = old["avg_fill_px"] if carried > 0 else None
    order["status"] = PARTIALLY_FILLED if carried > 0 else ACCEPTED
    if new is not None:  # fills of the new id arrived first: they add to the carried quantity
        with localcontext(prec=34):
            own = Decimal(new["filled_qty"])
            if own > 0:
                avg = Decimal(order["avg_fill_px"] or "0")
                total = carried + own
                order["avg_fill_px"] = str((carried * avg + own * Decimal(new["avg_fill_px"])) / total)
                order["filled_qty"] = str(total)
        if _advances(order["status"], new["status"]):
            order["status"] = new["status"]
        order["created_ts"] = min(order["created_ts"], new["created_ts"])
        order["updated_ts"] = max(order["updated_ts"], new["updated_ts"])
    return order


def order_after_reversal(
    row: dict[str, Any], counted: list[tuple[Decimal, Decimal]], message: FillReversed
) -> dict[str, Any]:
    """The order row once the fill of ``message`` no longer counts; ``counted`` holds the ``(quantity,
    price)`` of its fills that still count, oldest first."""
    order = dict(row)
    with localcontext(prec=34):
        before = Decimal(row["filled_qty"])
        # what the order holds apart from its own fills: a quantity carried over from a replacement
        carried = before - sum((q for q, _ in counted), Decimal(0)) - message.last_qty
        if carried == 0:
            filled, notional = Decimal(0), Decimal(0)
            for qty, px in counted:
                filled += qty
                notional += qty * px
            order["filled_qty"] = str(filled)
            order["avg_fill_px"] = str(notional / filled) if filled else None
        else:
            filled = before - message.last_qty
            avg = Decimal(row["avg_fill_px"] or "0")
            order["filled_qty"] = str(filled)
            order["avg_fill_px"] = str((before * avg - message.last_qty * message.last_px) / filled) if filled else None
    if order["status"] in (FILLED, PARTIALLY_FILLED):
        order["status"] = PARTIALLY_FILLED if filled > 0 else ACCEPTED
    order["updated_ts"] = max(order["updated_ts"], message.ts_event)
    order["last_message_id"] = message.id
    return order
