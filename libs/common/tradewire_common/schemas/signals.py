"""What strategies emit."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from msgspec import Meta

from tradewire_common.ids import InstrumentId, StrategyId
from tradewire_common.numbers import check_positive
from tradewire_common.schemas.base import Message, OrderType, Side, TimeInForce
from tradewire_common.schemas.orders import check_order_shape


class Signal(Message, frozen=True, tag="Signal"):
    """A strategy's view: go ``side`` (BUY enters/increases, SELL exits/reduces), or a target.

    ``target`` (optional) is the wanted position as a fraction of equity (-1..1); when set, risk
    sizes toward it instead of using ``side`` with the default sizing.
    """

    strategy_id: StrategyId
    instrument_id: InstrumentId
    side: Side
    #: The price the strategy saw (the bar close); risk sizes and checks with it.
    price: Decimal
    confidence: float
    reason: str
    target: Decimal | None = None
    #: Optional edge estimate for Kelly sizing: win probability and win/loss ratio.
    win_probability: float | None = None
    payoff_ratio: Decimal | None = None
    #: Exits to attach to the entry, as fractions of the entry price (override risk's defaults).
    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None
    #: A trailing stop (fraction below the best price since entry) and a time stop (seconds after
    #: the entry fill) to attach likewise; see ``SubmitOrder``.
    trailing_stop_pct: Decimal | None = None
    time_stop_s: Annotated[int, Meta(gt=0)] | None = None
    #: How to enter or exit: a market order (default), or a limit/stop order with these prices and
    #: time in force (risk sizes with ``price`` either way; the venue fills against bar high/low).
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    trigger_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    #: Maker-only limit orders and GTD expiry, as on ``SubmitOrder``.
    post_only: bool = False
    expire_time_ns: int | None = None

    def __post_init__(self) -> None:
        check_positive(self.price, "price")
        if not 0.0 <= self.confidence <= 1.0:  # also rejects NaN
            raise ValueError(f"confidence must be within 0..1, got {self.confidence}")
        if self.win_probability is not None and not 0.0 <= self.win_probability <= 1.0:
            raise ValueError(f"win_probability must be within 0..1, got {self.win_probability}")
        if self.payoff_ratio is not None:
            check_positive(self.payoff_ratio, "payoff_ratio")
        if self.target is not None and not (self.target.is_finite() and -1 <= self.target <= 1):
            raise ValueError(f"target must be within -1..1, got {self.target}")
        check_order_shape(self, "signal")


class StrategyError(Message, frozen=True, tag="StrategyError"):
    """User strategy code raised; the service keeps running and reports it."""

    strategy_id: StrategyId
    error_type: str
    message: str
    instrument_id: str = ""
