"""Replacing a working order (cancel/replace), asked of risk: the only publisher of order commands.

``POST /v1/orders/{client_order_id}/replace`` (API token; body ``{"quantity", "limit_price", "trigger_price",
"reason"}``, each optional, at least one of the first three; ``tradewire orders replace COID [--qty] [--limit]
[--trigger]``) checks the replacement like a new order and publishes a ``ReplaceOrder`` on the venue's
``ord.cmd.<venue>``, or an ``OrderDenied`` on the new client order id:

* the order must be one risk sent (a signal's order, remembered since this service started) and still open in
  risk's context; else 404 (unknown) or 409 (closed);
* the new client order id is derived from the old one and the request (``tw-`` + ``derive_id("replace", old id,
  quantity, limit, trigger)[:24]``), so the same request twice is one replacement (the same decision is
  published again, with the same ids);
* **checks**, as rules 2, 4, 6 and 7 of :mod:`tradewire_risk.engine` for a new order of the new size: HALTED
  -> ``TRADING_HALTED``; the instrument tradable; the new prices on the tick grid and within the price band;
  the new quantity on the quantity step, above the filled quantity and at least ``min_quantity``; for an order
  that is not reduce-only: REDUCING denies a larger one (``TRADING_REDUCING``), and the remaining quantity
  (new quantity - filled) must fit the position, exposure and allocation limits and the cash (the old order
  itself not counted) at the new price; the whole new quantity the per-order limits (``max_order_notional``,
  the instrument's ``max_quantity`` / ``max_notional``). A reduce-only order may not become larger than the
  position. Nothing is clipped: a replacement is taken as asked or denied.
* on success the context follows at once: the old order is no longer open, the new one is, with the filled
  quantity carried over (execution answers ``OrderReplaced``, or ``OrderRejected`` on the new id).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradewire_common.config import RiskConfig
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    DenyReason,
    OrderDenied,
    PortfolioSnapshot,
    ReplaceOrder,
    Side,
    Signal,
    SubmitOrder,
    TradingState,
)
from tradewire_risk import checks
from tradewire_risk.context import OpenOrder, RiskContext
from tradewire_risk.engine import RiskEngine
from tradewire_risk.limits import entry_rooms, free_cash
from tradewire_risk.params import Denial
from tradewire_risk.plans import Plan, position_quantity

_ZERO = Decimal(0)
#: Per-order limits, checked on the whole new quantity (the others on the remaining part).
_PER_ORDER = (DenyReason.MAX_ORDER_NOTIONAL, DenyReason.INVALID_ORDER)


class ReplaceRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    quantity: Decimal | None = None
    limit_price: Decimal | None = None
    trigger_price: Decimal | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.quantity is None and self.limit_price is None and self.trigger_price is None:
            raise ValueError("a replacement must change quantity, limit_price or trigger_price")
        for name in ("quantity", "limit_price", "trigger_price"):
            value = getattr(self, name)
            if value is not None and not (value.is_finite() and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")


class ReplaceError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def replacement_id(client_order_id: str, request: ReplaceRequest) -> str:
    return "tw-" + derive_id("replace", client_order_id, request.quantity, request.limit_price,
                             request.trigger_price)[:24]


def decide(engine: RiskEngine, order: SubmitOrder, price: Decimal, request: ReplaceRequest,
           portfolio: PortfolioSnapshot | None, state: TradingState, ctx: RiskContext, now_ns: int,
           ) -> ReplaceOrder | OrderDenied:
    """Check the replacement of ``order`` (decided at ``price``); the command or the denial. On success the
    context moves to the new order."""
    new_id = replacement_id(order.client_order_id, request)
    old = ctx.open_orders.get(order.client_order_id)
    if old is None:
        raise ReplaceError(409, f"order {order.client_order_id} is not open")
    new_qty = order.quantity if request.quantity is None else request.quantity
    limit = order.limit_price if request.limit_price is None else request.limit_price
    trigger = order.trigger_price if request.trigger_price is None else request.trigger_price
    reference = ctx.last_price(order.instrument_id) or price  # as a signal's price: the band's and limits' mark
    signal = Signal(id=derive_id("replace-signal", new_id), ts_event=now_ns, ts_init=now_ns,
                    correlation_id=order.correlation_id, strategy_id=order.strategy_id,
                    instrument_id=order.instrument_id, side=order.side, price=reference, confidence=1.0,
                    reason=request.reason or f"replace {order.client_order_id}", order_type=order.order_type,
                    limit_price=limit, trigger_price=trigger, time_in_force=order.time_in_force,
                    post_only=order.post_only, expire_time_ns=order.expire_time_ns)
    del ctx.open_orders[order.client_order_id]  # the old order is not counted against its own replacement
    denial = _check(engine, order, old, new_qty, signal, portfolio, state, ctx)
    if denial is not None:
        ctx.open_orders[order.client_order_id] = old
        ctx.record_denial(new_id)
        return OrderDenied(
            id=derive_id("denied-replace", new_id), ts_event=now_ns, ts_init=now_ns,
            correlation_id=order.correlation_id, strategy_id=order.strategy_id, instrument_id=order.instrument_id,
            client_order_id=new_id, reason_code=denial.code, reason=f"replace {order.client_order_id}: "
                                                                    f"{denial.reason}"[:2000],
            side=order.side, quantity=new_qty, signal_id=order.signal_id)
    new_order = msgspec.structs.replace(order, id=derive_id("replacement", new_id), client_order_id=new_id,
                                        quantity=new_qty, limit_price=limit, trigger_price=trigger)
    ctx.record_submit(new_order, reference)
    recorded = ctx.open_orders.get(new_id)
    if recorded is not None:
        recorded.filled = old.filled
    return ReplaceOrder(
        id=derive_id("replace-command", new_id), ts_event=now_ns, ts_init=now_ns,
        correlation_id=order.correlation_id, strategy_id=order.strategy_id, instrument_id=order.instrument_id,
        client_order_id=order.client_order_id, new_client_order_id=new_id, quantity=request.quantity,
        limit_price=request.limit_price, trigger_price=request.trigger_price, reason=request.reason[:500])


def _check(engine: RiskEngine, order: SubmitOrder, old: OpenOrder, new_qty: Decimal, signal: Signal,
           portfolio: PortfolioSnapshot | None, state: TradingState, ctx: RiskContext) -> Denial | None:
    config: RiskConfig = engine.config
    if state is TradingState.HALTED:
        return Denial(DenyReason.TRADING_HALTED, "trading is HALTED: no replacements")
    spec = checks.instrument(config, engine._instruments, signal)
    if isinstance(spec, Denial):
        return spec
    if (denial := checks.prices(signal, spec, ctx, engine.params.price_band)) is not None:
        return denial
    if new_qty % spec.quantity_step != 0:
        return Denial(DenyReason.INVALID_ORDER, f"quantity {new_qty} is not a multiple of the quantity step "
                                                f"{spec.quantity_step}")
    if new_qty <= old.filled:
        return Denial(DenyReason.INVALID_ORDER, f"quantity {new_qty} is not above the filled quantity {old.filled}")
    if new_qty < spec.min_quantity:
        return Denial(DenyReason.SIZE_ZERO, f"quantity {new_qty} < min quantity {spec.min_quantity}")
    if portfolio is None:
        return Denial(DenyReason.UNKNOWN_PORTFOLIO, "no portfolio snapshot: cannot check limits")
    position = position_quantity(portfolio, order.instrument_id)
    rest = new_qty - old.filled
    if order.reduce_only:
        if rest > abs(position):
            return Denial(DenyReason.REDUCE_ONLY, f"a reduce-only order of {rest} left is larger than the position "
                                                  f"{position}")
        return None
    if state is TradingState.REDUCING and new_qty > order.quantity:
        return Denial(DenyReason.TRADING_REDUCING, "trading is REDUCING: an order may not grow")
    return _limits(engine, signal, portfolio, position, Plan(order.side, _ZERO, rest, True, False), new_qty, ctx)


def _limits(engine: RiskEngine, signal: Signal, portfolio: PortfolioSnapshot, position: Decimal, plan: Plan,
            new_qty: Decimal, ctx: RiskContext) -> Denial | None:
    spec = engine.instrument(signal.instrument_id)
    rooms = entry_rooms(engine.config, engine.params, signal, portfolio, position, plan, spec, ctx)
    if isinstance(rooms, Denial):
        return rooms
    for room in rooms:  # the per-order rooms do not depend on the size: they hold the whole new quantity
        wanted = new_qty if room.code in _PER_ORDER else plan.open_qty
        if wanted > room.max_qty:
            return Denial(room.code, room.reason, wanted)
    if plan.side is Side.BUY:
        cash = free_cash(engine.config, plan, signal, portfolio, ctx)
        if isinstance(cash, Denial):
            return cash
        available, described = cash
        cost = plan.open_qty * checks.order_price(signal)
        if cost > available:
            return Denial(DenyReason.INSUFFICIENT_CASH, f"cost {cost:.2f} ({plan.open_qty} left at "
                                                        f"{checks.order_price(signal)}) > {described}")
    return None
