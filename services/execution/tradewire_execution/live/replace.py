"""Cancel/replace (``ReplaceOrder``) for live venues, on the framework of :mod:`tradewire_execution.live.base`.

The order ``client_order_id`` continues as ``new_client_order_id`` with the new quantity (total: filled + leaves)
and prices; the answer is ``OrderReplaced`` (the filled quantity carried over) or ``OrderRejected`` on the new id.

* **Native amend** (the adapter lists ``CAP_AMEND`` and implements
  :meth:`~tradewire_execution.live.base.LiveVenueAdapter.venue_replace`, e.g. Alpaca's ``PATCH``): the new order
  is tracked *in flight* (journalled with the old one's ``replaced_by``) before the request leaves; the venue's
  answer makes it open (``OrderReplaced``, the old order is then followed no more) or rejected (``OrderRejected``
  on the new id; the old order keeps working). An unanswered amend is resolved by querying the new client order
  id, as an unanswered create is. Fills the old order got meanwhile are fetched before it is let go.
* **Cancel, then new** (every other venue): the intent is journalled on the old order (``replaced_by`` and the
  replacement order) and saved; the old order is cancelled, and the new one is sent only once the venue
  confirms the cancel, so the two are never live together. The new order is placed for what is left
  (new quantity - filled), its creation journalled like any create. Fills of the old order that arrive during
  the replace are published under the old id and count as carried (``OrderReplaced.filled_qty``). A cancel
  the venue has not confirmed yet, or a restart anywhere in between, is continued from the journal (at start
  and on every maintenance round: :func:`continue_replaces`).
* **Failures**: the old order closed another way (filled, expired) before it could be cancelled, or the new
  quantity is no longer above the filled one: the old order's own events say how it ended and the new id gets
  an ``OrderRejected``. The venue refusing the new order after the old one was cancelled: an ``OrderCanceled``
  for the old order (with its filled quantity) and an ``OrderRejected`` on the new id.
"""

from __future__ import annotations

import logging

import msgspec

from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    OrderCanceled,
    OrderEvent,
    OrderReplaced,
    OrderType,
    ReplaceOrder,
    SubmitOrder,
)
from tradewire_execution.live.base import (
    LiveVenueAdapter,
    OrderNotFoundAtVenue,
    TrackedOrder,
    VenueOrder,
    VenueRefused,
)
from tradewire_execution.venue import CAP_AMEND, replace_rejected

log = logging.getLogger(__name__)


async def replace_order(adapter: LiveVenueAdapter, command: ReplaceOrder, now_ns: int) -> list[OrderEvent]:
    """Handle one ``ReplaceOrder`` (see the module docstring); the caller holds the host's lock."""
    new_coid = command.new_client_order_id
    if adapter.tracked(new_coid) is not None or new_coid in adapter._closed:
        return []  # a redelivery: the first one's events were published
    old = adapter._orders.get(command.client_order_id)
    if old is not None and old.replaced_by == new_coid and old.replacement is not None:
        return await _cancel_then_new(adapter, old, now_ns)  # journalled before: carry on
    problem = _problem(adapter, old, command)
    new_order = None if old is None or problem else _replacement(old.order, command, now_ns)
    if not problem and new_order is not None:
        problem = adapter.refusal(new_order)
    if problem or old is None or new_order is None:
        log.warning("venue %s: replacement %s of %s rejected: %s", adapter.name, new_coid, command.client_order_id,
                    problem)
        adapter._closed[new_coid] = None  # answered: a repeat of the id is a duplicate
        adapter._bump()
        return [replace_rejected(command, now_ns, problem)]
    old.replaced_by, old.replacement = new_coid, new_order
    if CAP_AMEND in adapter.capabilities:
        return await _amend(adapter, old, new_order, now_ns)
    adapter._bump()
    await adapter.host.adapter_state_changed(adapter.name)  # journalled before the cancel leaves
    return await _cancel_then_new(adapter, old, now_ns)


def _problem(adapter: LiveVenueAdapter, old: TrackedOrder | None, command: ReplaceOrder) -> str:
    if old is None or old.status != "open":
        state = "unknown or closed" if old is None else f"not acknowledged by the venue yet ({old.status})"
        return f"order {command.client_order_id} is {state} at venue {adapter.name}"
    if old.replaced_by:
        return f"a replacement of {command.client_order_id} ({old.replaced_by}) is under way"
    order = old.order
    if command.quantity is not None and command.quantity <= old.filled:
        return f"new quantity {command.quantity} is not above the filled quantity {old.filled}"
    if command.limit_price is not None and order.order_type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return f"{order.client_order_id} is a {order.order_type} order: it has no limit price"
    if command.trigger_price is not None and order.order_type not in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT):
        return f"{order.client_order_id} is a {order.order_type} order: it has no trigger price"
    return ""


def _replacement(order: SubmitOrder, command: ReplaceOrder, now_ns: int) -> SubmitOrder:
    """The whole new order (total quantity), with the old one's everything else."""
    return msgspec.structs.replace(
        order, id=derive_id("replacement", command.id), ts_init=now_ns, client_order_id=command.new_client_order_id,
        quantity=order.quantity if command.quantity is None else command.quantity,
        limit_price=order.limit_price if command.limit_price is None else command.limit_price,
        trigger_price=order.trigger_price if command.trigger_price is None else command.trigger_price)


async def _amend(adapter: LiveVenueAdapter, old: TrackedOrder, new_order: SubmitOrder, now_ns: int,
                 ) -> list[OrderEvent]:
    new = TrackedOrder(order=new_order, status="in_flight", replaces=old.order.client_order_id, filled=old.filled,
                       sent_ns=adapter.wall_ns())
    adapter._orders[new_order.client_order_id] = new
    adapter._bump()
    await adapter.host.adapter_state_changed(adapter.name)  # journalled before the amend leaves
    try:
        answer = await adapter._call(lambda: adapter.venue_replace(old.order, old.venue_order_id, new_order))
    except (VenueRefused, OrderNotFoundAtVenue) as exc:
        return adapter._reject(new, f"the venue refused the amend: {adapter.scrub(str(exc))}", now_ns)
    except Exception as exc:  # sent, outcome unknown: resolved by querying the new client order id
        log.warning("venue %s: amend %s -> %s without a definitive answer (%s); resolved by query", adapter.name,
                    old.order.client_order_id, new_order.client_order_id, adapter.scrub(f"{type(exc).__name__}"))
        return []
    adapter._connected_again()
    events = await _old_fills(adapter, old, now_ns)
    new.filled = old.filled  # the venue's new order carries the old one's filled quantity
    return events + await adapter._apply_order(new, answer, [], now_ns)


async def _old_fills(adapter: LiveVenueAdapter, old: TrackedOrder, now_ns: int) -> list[OrderEvent]:
    """The old order's fills not seen yet (they happened before the venue replaced or cancelled it)."""
    try:
        answer = await adapter._call(lambda: adapter.venue_order(old.order))
    except Exception as exc:
        log.warning("venue %s: state of the replaced %s not fetched: %s", adapter.name, old.order.client_order_id,
                    adapter.scrub(str(exc)))
        return []
    return await adapter._apply_order(old, msgspec.structs.replace(answer, status="open"), [], now_ns)


async def _cancel_then_new(adapter: LiveVenueAdapter, old: TrackedOrder, now_ns: int) -> list[OrderEvent]:
    """Cancel ``old`` (journalled for replacement), and place the replacement once the venue confirmed it."""
    try:
        answer = await adapter._call(lambda: adapter.venue_cancel(old.order, old.venue_order_id))
    except (OrderNotFoundAtVenue, VenueRefused):  # closed already (by an earlier attempt, a fill, an expiry)
        answer = await adapter._call(lambda: adapter.venue_order(old.order))
    adapter._connected_again()
    return await _after_cancel(adapter, old, answer, now_ns)


async def _after_cancel(adapter: LiveVenueAdapter, old: TrackedOrder, answer: VenueOrder, now_ns: int,
                        ) -> list[OrderEvent]:
    assert old.replacement is not None
    new_order = old.replacement
    coid = old.order.client_order_id
    if answer.status == "open":  # the cancel is not confirmed yet: continued by continue_replaces
        return await adapter._apply_order(old, answer, [], now_ns)
    if answer.status != "canceled":  # it ended another way first: the replacement is void
        old.replaced_by, old.replacement = "", None
        events = await adapter._apply_order(old, answer, [], now_ns)
        return [*events, _rejected(new_order, now_ns, f"order {coid} was {answer.status} before it could be "
                                                      "replaced")]
    events = await adapter._apply_order(old, msgspec.structs.replace(answer, status="open"), [], now_ns)
    if old.filled < answer.filled_qty:
        log.info("venue %s: %s cancelled with fills not seen yet; the replacement waits for them", adapter.name, coid)
        return events
    if new_order.quantity <= old.filled:  # filled up to the new size meanwhile
        old.cancel_reason = f"replace: cancelled, but {old.filled} was filled meanwhile"
        old.replaced_by, old.replacement = "", None
        events += adapter._close(old, answer, now_ns)
        return [*events, _rejected(new_order, now_ns, f"new quantity {new_order.quantity} is not above the "
                                                      f"{old.filled} filled while {coid} was cancelled")]
    rest = msgspec.structs.replace(new_order, quantity=new_order.quantity - old.filled)
    new = TrackedOrder(order=rest, status="pending", replaces=coid, carried=old.filled)
    adapter._orders[rest.client_order_id] = new
    adapter._forget(old)  # closed here without an OrderCanceled: it continues as the new order
    adapter._bump()
    await adapter.host.adapter_state_changed(adapter.name)  # journalled before the create leaves
    return events + await adapter._send_create(new, now_ns)


def _rejected(order: SubmitOrder, now_ns: int, reason: str) -> OrderEvent:
    command = ReplaceOrder(id=order.id, ts_event=order.ts_event, ts_init=now_ns, correlation_id=order.correlation_id,
                           strategy_id=order.strategy_id, instrument_id=order.instrument_id,
                           client_order_id="replaced", new_client_order_id=order.client_order_id,
                           quantity=order.quantity)
    return replace_rejected(command, now_ns, reason)


async def continue_replaces(adapter: LiveVenueAdapter) -> None:
    """Carry on the cancel-then-new replacements journalled but not finished (after a restart, or a cancel the
    venue had not confirmed yet)."""
    for coid in [c for c, t in adapter._orders.items() if t.replaced_by and t.replacement is not None]:
        async with adapter.host.lock:
            old = adapter._orders.get(coid)
            if old is None or old.replacement is None or adapter.tracked(old.replaced_by) is not None:
                continue
            try:
                events = await _cancel_then_new(adapter, old, adapter.wall_ns())
            except Exception as exc:
                log.warning("venue %s: replacement of %s not continued yet: %s", adapter.name, coid,
                            adapter.scrub(str(exc)))
                continue
            await adapter._emit(events, locked=True)


# --- hooks of the framework (LiveVenueAdapter._apply_now and _reject) ------------------------------------------


def replaced(adapter: LiveVenueAdapter, new: TrackedOrder, answer: VenueOrder, now_ns: int) -> OrderEvent:
    """The replacement ``new`` is open at the venue: its ``OrderReplaced`` (in place of an ``OrderAccepted``);
    the old order is followed no more."""
    old = adapter._orders.get(new.replaces)
    if old is not None:  # a native amend: the venue replaced it
        adapter._forget(old)
    order = new.order
    closed = adapter.tracked(new.replaces)
    source = closed.order if closed is not None else order
    log.info("venue %s: %s replaced by %s", adapter.name, new.replaces, order.client_order_id,
             extra={"venue": adapter.name, "client_order_id": order.client_order_id})
    return OrderReplaced(
        id=derive_id("OrderReplaced", new.replaces, order.client_order_id), ts_event=answer.ts_ns or now_ns,
        ts_init=now_ns, correlation_id=source.correlation_id, strategy_id=source.strategy_id,
        instrument_id=source.instrument_id, client_order_id=new.replaces,
        new_client_order_id=order.client_order_id, venue_order_id=answer.venue_order_id or order.client_order_id,
        quantity=new.carried + order.quantity, limit_price=order.limit_price, trigger_price=order.trigger_price,
        filled_qty=new.carried + new.filled)


def replacement_rejected(adapter: LiveVenueAdapter, new: TrackedOrder, reason: str, now_ns: int,
                         ) -> list[OrderEvent]:
    """The venue refused the replacement ``new``: the old order keeps working (a refused amend), or, cancelled
    for it already, gets its ``OrderCanceled`` now."""
    old = adapter._orders.get(new.replaces)
    if old is not None:
        old.replaced_by, old.replacement = "", None
        return []
    closed = adapter.tracked(new.replaces)
    if closed is None:
        return []
    order = closed.order
    return [OrderCanceled(
        id=derive_id("OrderCanceled", order.client_order_id), ts_event=now_ns, ts_init=now_ns,
        correlation_id=order.correlation_id, strategy_id=order.strategy_id, instrument_id=order.instrument_id,
        client_order_id=order.client_order_id, filled_qty=closed.filled,
        reason=f"cancelled for the replacement {new.order.client_order_id}, which the venue refused: {reason}"[:500])]


__all__ = ["continue_replaces", "replace_order", "replaced", "replacement_rejected"]
