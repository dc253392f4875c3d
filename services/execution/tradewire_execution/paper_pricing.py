"""The paper venue's price, fee and size rules (the specification is :mod:`tradewire_execution.paper`'s docstring).

Pure functions of an order's parameters and one bar, kept apart from the venue's bookkeeping so each
rule can be read (and tested) on its own. All arithmetic that is not a plain product runs in
:data:`CONTEXT`, a fixed Decimal context, so results never depend on the caller's context.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal

from tradewire_common.config import PaperConfig
from tradewire_common.numbers import ZERO, quantize_down
from tradewire_common.schemas import Bar, Liquidity, OrderType, Side, SubmitOrder

#: The context of the venue's own arithmetic (impact, bracket levels, average prices).
CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
_BPS = Decimal(10_000)
_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3_600 * 10**9,
       "d": 86_400 * 10**9, "w": 7 * 86_400 * 10**9}
_INTERVAL = re.compile(r"([1-9][0-9]*)(ns|us|ms|s|m|h|d|w|M)")
#: A fill's price before slippage, its liquidity, and whether slippage applies.
Quote = tuple[Decimal, Liquidity, bool]


def bps(value: float) -> Decimal:
    """A rate in basis points (a config float, read through its shortest repr) as a fraction."""
    return Decimal(str(value)) / _BPS


def bar_end(ts_event: int, interval: str) -> int:
    """When the ``interval`` bar opening at ``ts_event`` closes (the next bar's open time).

    Intervals are ``<count><unit>`` with units ns, us, ms, s, m, h, d, w (fixed lengths) and M
    (calendar months, UTC, clamped to the month's last day). Raises ``ValueError`` for anything else.
    """
    match = _INTERVAL.fullmatch(interval)
    if match is None:
        raise ValueError(f"invalid bar interval {interval!r}: expected e.g. 1m, 5m, 1h, 1d, 1w, 1M")
    count, unit = int(match.group(1)), match.group(2)
    if unit != "M":
        return ts_event + count * _NS[unit]
    seconds, rest = divmod(ts_event, 10**9)
    start = datetime.fromtimestamp(seconds, UTC)
    months = start.year * 12 + start.month - 1 + count
    year, month = months // 12, months % 12 + 1
    # a bar opening on the 31st closes on the last day of a shorter month
    end = start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))
    return int(end.timestamp()) * 10**9 + rest


def triggered(side: Side, trigger: Decimal, bar: Bar) -> bool:
    """Whether a stop triggers on ``bar``: a BUY stop when ``high >= trigger``, a SELL when ``low <= trigger``."""
    return bar.high >= trigger if side is Side.BUY else bar.low <= trigger


def trigger_fill_price(side: Side, trigger: Decimal, bar: Bar) -> Decimal:
    """The price a stop meets on its trigger bar: the trigger, or the open when the bar gapped through it."""
    return max(bar.open, trigger) if side is Side.BUY else min(bar.open, trigger)


def limit_quote(side: Side, limit: Decimal, bar: Bar) -> tuple[Decimal, Liquidity] | None:
    """A limit order's fill price and liquidity on ``bar`` (None: the bar does not reach the limit).

    At the limit it rests (MAKER); a bar opening through the limit fills at the better open (TAKER).
    """
    if side is Side.BUY:
        if bar.low > limit:
            return None
        return (bar.open, Liquidity.TAKER) if bar.open < limit else (limit, Liquidity.MAKER)
    if bar.high < limit:
        return None
    return (bar.open, Liquidity.TAKER) if bar.open > limit else (limit, Liquidity.MAKER)


def fill_quote(
    order: SubmitOrder, bar: Bar, *, trigger_bar: bool, exit: bool, exit_level: Decimal | None
) -> Quote | None:
    """How an eligible (and, for stops, triggered) order fills on ``bar``; None: it does not fill there.

    ``trigger_bar``: a stop order triggered on this bar. ``exit``: a bracket exit, which fills at
    ``exit_level`` on the bar that fired it (its ``ts_event``) and at the open on later bars.
    """
    kind = order.order_type
    if exit:
        level = exit_level if bar.ts_event == order.ts_event else None
        return (bar.open if level is None else level), Liquidity.TAKER, True
    if kind is OrderType.MARKET:
        # Only a fill_at="close" order is eligible on its signal bar; later bars fill at the open.
        return (bar.close if bar.ts_event == order.ts_event else bar.open), Liquidity.TAKER, True
    if kind is OrderType.STOP_MARKET:
        assert order.trigger_price is not None  # SubmitOrder guarantees it for stop orders
        base = trigger_fill_price(order.side, order.trigger_price, bar) if trigger_bar else bar.open
        return base, Liquidity.TAKER, True
    limit = order.limit_price
    assert limit is not None  # SubmitOrder guarantees it for limit and stop-limit orders
    if kind is OrderType.STOP_LIMIT and trigger_bar:
        assert order.trigger_price is not None
        price = trigger_fill_price(order.side, order.trigger_price, bar)
        within = price <= limit if order.side is Side.BUY else price >= limit
        return (price, Liquidity.TAKER, False) if within else None
    quote = limit_quote(order.side, limit, bar)
    return None if quote is None else (quote[0], quote[1], False)


class Costs:
    """Fees, slippage and the volume cap of one venue's configuration."""

    def __init__(self, config: PaperConfig) -> None:
        self.step = config.quantity_step
        self.fee_currency = config.fee_currency
        self.taker_rate = bps(config.fee_bps)
        self.maker_rate = self.taker_rate if config.maker_fee_bps is None else bps(config.maker_fee_bps)
        self.per_order = config.fee_per_order
        self.slippage = bps(config.slippage_bps)
        self.impact = config.slippage_model == "sqrt_impact"
        self.impact_coefficient = Decimal(str(config.impact_coefficient))
        self.max_impact = bps(config.max_impact_bps)
        share = Decimal(str(config.max_volume_share))
        #: None: the volume cap is disabled.
        self.volume_share: Decimal | None = None if share >= 1 else share

    def fee(self, qty: Decimal, price: Decimal, liquidity: Liquidity, first_fill: bool) -> Decimal:
        """``qty * price * rate`` (maker or taker rate), plus the per-order fee on an order's first fill."""
        rate = self.maker_rate if liquidity is Liquidity.MAKER else self.taker_rate
        fee = CONTEXT.multiply(CONTEXT.multiply(qty, price), rate)
        if first_fill and self.per_order:
            fee = CONTEXT.add(fee, self.per_order)
        return fee

    def slippage_fraction(self, qty: Decimal, bar: Bar) -> Decimal:
        """The adverse price move of a taker fill of ``qty`` on ``bar``, as a fraction of the price.

        ``fixed_bps``: ``slippage_bps / 1e4``. ``sqrt_impact``: that plus ``impact_coefficient *
        sqrt(qty / bar.volume)``, at most ``max_impact_bps / 1e4``; a bar without volume costs the cap.
        """
        if not self.impact:
            return self.slippage
        if bar.volume <= 0:
            return self.max_impact
        ctx = CONTEXT
        impact = ctx.multiply(self.impact_coefficient, ctx.sqrt(ctx.divide(qty, bar.volume)))
        return min(ctx.add(self.slippage, impact), self.max_impact)

    def slipped(self, price: Decimal, side: Side, qty: Decimal, bar: Bar) -> Decimal:
        """``price`` moved against the trader: a BUY pays ``price * (1 + s)``, a SELL gets ``price * (1 - s)``."""
        fraction = self.slippage_fraction(qty, bar)
        factor = CONTEXT.add(1, fraction) if side is Side.BUY else CONTEXT.subtract(1, fraction)
        return CONTEXT.multiply(price, factor)

    def cap(self, bar: Bar) -> Decimal | None:
        """Most quantity one order may fill on ``bar``, rounded down to the step (None: no cap)."""
        if self.volume_share is None:
            return None
        cap: Decimal = quantize_down(self.volume_share * bar.volume, self.step)
        return max(cap, ZERO)
