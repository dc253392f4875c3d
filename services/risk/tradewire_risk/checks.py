"""Pre-trade checks that accept or deny before sizing and limits (rules 2, 2a and 4a of
:mod:`tradewire_risk.engine`'s docstring). Each returns a :class:`~tradewire_risk.params.Denial` or
None; exactly at a limit passes. Pure functions of the signal, the snapshot and the context.

With the prices (every order, closes included) come the prediction-market rules of
:mod:`tradewire_risk.binary`: a resolved market's instruments no longer trade, a binary contract's
prices are probabilities strictly within (0, 1) on its tick grid."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from tradewire_common.config import InstrumentSpec, RiskConfig
from tradewire_common.ids import split_instrument_id
from tradewire_common.schemas.base import DenyReason
from tradewire_common.schemas.portfolio import PortfolioSnapshot
from tradewire_common.schemas.signals import Signal
from tradewire_risk import binary
from tradewire_risk.context import RiskContext
from tradewire_risk.params import Denial, Params, pct


def instrument(config: RiskConfig, specs: Mapping[str, InstrumentSpec], signal: Signal) -> InstrumentSpec | Denial:
    """The instrument's rules; ``UNKNOWN_INSTRUMENT`` (when required) or ``INSTRUMENT_NOT_TRADABLE``."""
    spec = specs.get(signal.instrument_id)
    if spec is None:
        if config.require_known_instruments:
            return Denial(DenyReason.UNKNOWN_INSTRUMENT,
                          f"{signal.instrument_id} is not in risk.instruments (require_known_instruments)")
        return InstrumentSpec(id=signal.instrument_id)
    if not spec.tradable:
        return Denial(DenyReason.INSTRUMENT_NOT_TRADABLE, f"{signal.instrument_id} is configured as not tradable")
    return spec


def order_price(signal: Signal) -> Decimal:
    """The price an order's notional is counted at: its limit, else its trigger, else the signal's price."""
    return signal.limit_price or signal.trigger_price or signal.price


def prices(signal: Signal, spec: InstrumentSpec, ctx: RiskContext, band: Decimal | None) -> Denial | None:
    """Limit/trigger prices on the tick grid and within the fat-finger band (every order, closes included);
    before them, the instrument's market not resolved and a binary contract's prices probabilities."""
    if (denial := binary.tradable(signal, spec, ctx) or binary.prices(signal, spec)) is not None:
        return denial
    priced = [(name, value) for name, value in (("limit", signal.limit_price), ("trigger", signal.trigger_price))
              if value is not None]
    for name, value in priced:
        if value % spec.price_tick != 0:
            return Denial(DenyReason.INVALID_ORDER,
                          f"{name} price {value} is not a multiple of the price tick {spec.price_tick} of "
                          f"{signal.instrument_id} (risk does not round prices)")
    if band is None:
        return None
    last = ctx.last_price(signal.instrument_id)
    reference = last if last is not None else signal.price
    what = "the last bar close" if last is not None else "the signal's price"
    for name, value in priced:
        if (denial := _outside(name, value, reference, what, band, signal)) is not None:
            return denial
    return None


def signal_price(signal: Signal, ctx: RiskContext, band: Decimal | None) -> Denial | None:
    """An entry is sized at the signal's price: it must be within the band of the last bar close (when known)."""
    last = ctx.last_price(signal.instrument_id)
    if band is None or last is None:
        return None
    return _outside("signal", signal.price, last, "the last bar close", band, signal)


def _outside(name: str, value: Decimal, reference: Decimal, what: str, band: Decimal, signal: Signal) -> Denial | None:
    if abs(value - reference) <= band * reference:
        return None
    off = (abs(value - reference) / reference).quantize(Decimal("0.000001"))
    return Denial(DenyReason.PRICE_BAND, f"{name} price {value} is {pct(off)}% from {what} {reference} of "
                                         f"{signal.instrument_id}: band {pct(band)}%")


def entry_gates(
    config: RiskConfig, params: Params, signal: Signal, portfolio: PortfolioSnapshot, ctx: RiskContext
) -> Denial | None:
    """Checks that stop an entry (a flip then sends only its closing part): context rebuilt, signal price in
    the band, daily loss, drawdown, open orders, submit rates."""
    if not ctx.complete:
        return Denial(DenyReason.UNKNOWN_PORTFOLIO,
                      "risk's open orders, fills and equity history are not rebuilt from the ledger yet")
    if (denial := signal_price(signal, ctx, params.price_band)) is not None:
        return denial
    equity = portfolio.equity
    start = ctx.day_start_equity
    if params.daily_loss is not None and start is not None and start > 0:
        loss = start - equity
        if loss > params.daily_loss * start:
            return Denial(DenyReason.DAILY_LOSS_LIMIT,
                          f"equity {equity} is {loss} below the start-of-day equity {start} "
                          f"(> {pct(params.daily_loss)}% = {params.daily_loss * start}): entries denied today")
    peak = ctx.peak_equity
    if params.max_drawdown is not None and peak is not None and peak > 0:
        drawdown = peak - equity
        if drawdown > params.max_drawdown * peak:
            return Denial(DenyReason.MAX_DRAWDOWN,
                          f"equity {equity} is {drawdown} below its peak {peak} "
                          f"(> {pct(params.max_drawdown)}% = {params.max_drawdown * peak}): entries denied")
    return _order_counts(config, signal, ctx)


def _order_counts(config: RiskConfig, signal: Signal, ctx: RiskContext) -> Denial | None:
    sid = signal.strategy_id
    _symbol, venue = split_instrument_id(signal.instrument_id)
    if config.max_open_orders and (n := len(ctx.open_orders)) + 1 > config.max_open_orders:
        return Denial(DenyReason.MAX_OPEN_ORDERS, f"{n} open orders: one more would exceed max_open_orders "
                                                  f"{config.max_open_orders}")
    if config.max_open_orders_per_strategy and (n := len(ctx.orders(strategy_id=sid))) + 1 > \
            config.max_open_orders_per_strategy:
        return Denial(DenyReason.MAX_OPEN_ORDERS, f"{n} open orders of {sid}: one more would exceed "
                                                  f"max_open_orders_per_strategy {config.max_open_orders_per_strategy}")
    now = signal.ts_event
    limit = config.max_orders_per_minute_per_strategy
    if limit and (n := ctx.submits_in_minute(now, strategy_id=sid)) + 1 > limit:
        return Denial(DenyReason.RATE_LIMIT, f"{n} orders of {sid} in the minute up to this signal: one more "
                                             f"would exceed max_orders_per_minute_per_strategy {limit}")
    limit = config.max_orders_per_minute_per_venue
    if limit and (n := ctx.submits_in_minute(now, venue=venue)) + 1 > limit:
        return Denial(DenyReason.RATE_LIMIT, f"{n} orders on {venue} in the minute up to this signal: one more "
                                             f"would exceed max_orders_per_minute_per_venue {limit}")
    return None
