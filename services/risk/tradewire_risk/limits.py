"""Limits on an order's quantity (rules 6 and 7 of :mod:`tradewire_risk.engine`'s docstring): how much an
entry may open under each limit, the free cash it must fit in, and how much a reduce-only order may close.

Pure ``Decimal`` arithmetic over the signal, the snapshot and the context. Exactly at a limit is allowed.

Binary outcomes held long with their complement count only for their unpaired part in the position and
exposure limits (:mod:`tradewire_risk.binary`): buying the complement of a held outcome first pairs it
(room for that part whatever the limits) and only the rest is limited.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradewire_common.config import InstrumentSpec, RiskConfig
from tradewire_common.numbers import quantize_down
from tradewire_common.schemas.base import DenyReason, Side
from tradewire_common.schemas.portfolio import PortfolioSnapshot
from tradewire_common.schemas.signals import Signal
from tradewire_risk import binary
from tradewire_risk.checks import order_price
from tradewire_risk.context import RiskContext
from tradewire_risk.params import Denial, Params, pct
from tradewire_risk.plans import Plan

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Room:
    """The largest opening quantity a limit allows, and the denial when it binds below ``min_quantity``."""

    code: DenyReason
    max_qty: Decimal
    reason: str


def entry_rooms(
    config: RiskConfig,
    params: Params,
    signal: Signal,
    portfolio: PortfolioSnapshot,
    position: Decimal,
    plan: Plan,
    spec: InstrumentSpec,
    ctx: RiskContext,
) -> list[Room] | Denial:
    """Every limit on the opening part, in the order that breaks ties for the reason code."""
    price = signal.price
    equity = portfolio.equity
    step = spec.quantity_step
    sized = plan.open_qty
    floor = f"< min quantity {spec.min_quantity}"

    pairs = binary.complements(config.instruments)
    pair = binary.pairing(spec, portfolio, pairs, plan.side, position)
    # what buying up to the complement's quantity pairs: riskless, and it lowers the complement's exposure
    pairable = quantize_down(max(pair[1] - pair[0], _ZERO), step) if pair else _ZERO
    complement = pairs.get(spec.id)
    paired_note = f" (unpaired part only: {pair[1]} of its complement {complement} held)" if pair else ""

    # Position limit: what is held in the order's direction, plus what it opens (unpaired part only).
    same_way = (position > 0 and plan.side is Side.BUY) or (position < 0 and plan.side is Side.SELL)
    base_qty = abs(position) if same_way else _ZERO
    if pair:
        base_qty = max(pair[0] - pair[1], _ZERO)
        shown_qty = max(pair[0] + sized - pair[1], _ZERO)
    else:
        shown_qty = base_qty + sized
    position_limit = params.max_position_pct * equity
    by_position = pairable + room_quantity(position_limit - base_qty * price, price, step)
    rooms = [Room(DenyReason.MAX_POSITION, by_position,
                  f"position {shown_qty * price:.2f}{paired_note} > limit {position_limit:.2f} "
                  f"({pct(params.max_position_pct)}% of equity {equity}); room for {by_position} {floor}")]

    # Exposure limit: gross re-marked at the signal price (pairs netted), minus the closing part.
    gross = binary.gross(portfolio, pairs, signal.instrument_id, price) - plan.close_qty * price
    exposure_limit = params.max_exposure_pct * equity
    if pair:  # pairing lowers gross by the complement's price per contract, then each contract adds ``price``
        paired_px = pair[2]
        at_pairs = gross - pairable * paired_px
        by_exposure = pairable + room_quantity(exposure_limit - at_pairs, price, step)
        shown = gross - min(sized, pairable) * paired_px + max(sized - pairable, _ZERO) * price
    else:
        by_exposure = room_quantity(exposure_limit - gross, price, step)
        shown = gross + sized * price
    rooms.append(Room(DenyReason.MAX_EXPOSURE, by_exposure,
                      f"gross exposure {shown:.2f}{paired_note} > limit {exposure_limit:.2f} "
                      f"({pct(params.max_exposure_pct)}% of equity {equity}); room for {by_exposure} {floor}"))

    allocation = params.allocations.get(signal.strategy_id)
    if allocation is not None:
        used = strategy_usage(signal, portfolio, plan, ctx)
        if isinstance(used, Denial):
            return used
        limit = allocation * equity
        by_allocation = room_quantity(limit - used, price, step)
        rooms.append(Room(DenyReason.STRATEGY_ALLOCATION, by_allocation,
                          f"strategy {signal.strategy_id} would use {used + sized * price:.2f} > allocation "
                          f"{limit:.2f} ({pct(allocation)}% of equity {equity}); room for {by_allocation} {floor}"))

    # Per-order limits cover the whole order, closing part included, at the order's price.
    at = order_price(signal)
    whole = plan.close_qty + sized
    if params.max_order_notional is not None:
        qty = _minus(room_quantity(params.max_order_notional, at, step), plan.close_qty, step)
        rooms.append(Room(DenyReason.MAX_ORDER_NOTIONAL, qty,
                          f"order notional {whole * at:.2f} ({whole} at {at}) > max order notional "
                          f"{params.max_order_notional}; room for {qty} {floor}"))
    if spec.max_quantity is not None:
        qty = _minus(quantize_down(spec.max_quantity, step), plan.close_qty, step)
        rooms.append(Room(DenyReason.INVALID_ORDER, qty,
                          f"order quantity {whole} > max quantity {spec.max_quantity} of {signal.instrument_id}; "
                          f"room for {qty} {floor}"))
    if spec.max_notional is not None:
        qty = _minus(room_quantity(spec.max_notional, at, step), plan.close_qty, step)
        rooms.append(Room(DenyReason.INVALID_ORDER, qty,
                          f"order notional {whole * at:.2f} > max notional {spec.max_notional} of "
                          f"{signal.instrument_id}; room for {qty} {floor}"))
    return rooms


def strategy_usage(signal: Signal, portfolio: PortfolioSnapshot, plan: Plan, ctx: RiskContext) -> Decimal | Denial:
    """What the strategy uses of its allocation after the closing part: its positions (by its own fills)
    marked at the last price (the signal's instrument at the signal's price) plus its open entry orders."""
    marks = {p.instrument_id: p.last_price for p in portfolio.positions}
    used = _ZERO
    for iid, leg in ctx.book.positions(signal.strategy_id).items():
        if iid == signal.instrument_id:
            mark = signal.price
        else:
            mark = ctx.last_price(iid) or marks.get(iid) or leg.avg_price
        used += abs(leg.quantity) * mark
    held = ctx.book.position(signal.strategy_id, signal.instrument_id)
    closes_own = (held > 0 and plan.side is Side.SELL) or (held < 0 and plan.side is Side.BUY)
    if closes_own:
        used -= min(plan.close_qty, abs(held)) * signal.price
    for order in ctx.orders(strategy_id=signal.strategy_id):
        if order.reduce_only:
            continue
        notional = ctx.order_notional(order)
        if notional is None:
            return Denial(DenyReason.UNKNOWN_PRICE, f"open order {order.client_order_id} of {order.instrument_id} "
                                                    "has no price and no last price is known")
        used += notional
    return used


def free_cash(
    config: RiskConfig, plan: Plan, signal: Signal, portfolio: PortfolioSnapshot, ctx: RiskContext
) -> tuple[Decimal, str] | Denial:
    """Cash the opening part may spend (after what the closing part pays in or out) and how it was
    worked out; with ``reserve_open_orders``, less the notional of the open BUY orders."""
    price = signal.price
    if plan.side is Side.SELL:
        cash = portfolio.cash + plan.close_qty * price
    else:
        cash = portfolio.cash - plan.close_qty * price
    if not config.reserve_open_orders:
        return cash, f"cash {cash:.2f}"
    reserved = _ZERO
    for order in ctx.orders():
        if order.side is not Side.BUY:
            continue
        notional = ctx.order_notional(order)
        if notional is None:
            return Denial(DenyReason.UNKNOWN_PRICE, f"open BUY order {order.client_order_id} of "
                                                    f"{order.instrument_id} has no price and no last price is known")
        reserved += notional
    return cash - reserved, f"free cash {cash - reserved:.2f} (cash {cash:.2f} - open BUY orders {reserved:.2f})"


def close_quantity(
    config: RiskConfig, plan: Plan, signal: Signal, position: Decimal, spec: InstrumentSpec, ctx: RiskContext
) -> tuple[Decimal, bool] | Denial:
    """How much a reduce-only order may close: opposite to the position, at most the position (less the open
    reduce-only orders on its side, with ``reduce_only_nets_open_orders``), at most the venue's maximum
    quantity and notional. Returns the quantity and whether it still closes the whole (remaining) position."""
    qty, full = plan.close_qty, plan.full_close
    opposite = (position > 0 and plan.side is Side.SELL) or (position < 0 and plan.side is Side.BUY)
    if not opposite or qty > abs(position):
        return Denial(DenyReason.REDUCE_ONLY, f"reduce-only {plan.side} {qty} would increase the position "
                                              f"{position} in {signal.instrument_id}")
    if config.reduce_only_nets_open_orders:
        pending = sum((o.remaining for o in ctx.orders() if o.reduce_only and o.side is plan.side
                       and o.instrument_id == signal.instrument_id), _ZERO)
        room = abs(position) - pending
        if room <= 0:
            return Denial(DenyReason.REDUCE_ONLY,
                          f"reduce-only {plan.side} {qty} would increase the position {position} in "
                          f"{signal.instrument_id}: open reduce-only {plan.side} orders already close {pending}")
        if qty >= room:
            qty, full = room, True
    step = spec.quantity_step
    caps = []
    if spec.max_quantity is not None:
        caps.append(quantize_down(spec.max_quantity, step))
    if spec.max_notional is not None:
        caps.append(room_quantity(spec.max_notional, order_price(signal), step))
    for cap in caps:
        if qty > cap:
            if cap < spec.min_quantity:
                return Denial(DenyReason.INVALID_ORDER, f"reduce-only {qty} of {signal.instrument_id}: the venue's "
                                                        f"max quantity/notional leaves {cap} < min quantity "
                                                        f"{spec.min_quantity}")
            qty, full = cap, False
    return qty, full


def room_quantity(room: Decimal, price: Decimal, step: Decimal) -> Decimal:
    """Largest step multiple whose notional at ``price`` fits in ``room`` (0 when none)."""
    if room <= 0:
        return _ZERO
    qty: Decimal = quantize_down(room / price, step)
    if qty * price > room:  # the division rounded up at the 28th digit
        qty -= step
    return max(qty, _ZERO)


def _minus(qty: Decimal, used: Decimal, step: Decimal) -> Decimal:
    """What is left of ``qty`` after ``used``, rounded down to ``step``."""
    left: Decimal = quantize_down(max(qty - used, _ZERO), step)
    return left
