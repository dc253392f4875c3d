"""The risk configuration as ``Decimal`` values, converted once (``Decimal(str(x))``, never floats)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradewire_common.config import RiskConfig
from tradewire_common.schemas.base import DenyReason


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a signal cannot become an order (the engine turns it into an ``OrderDenied``)."""

    code: DenyReason
    reason: str
    quantity: Decimal | None = None


def _dec(value: float) -> Decimal:
    return Decimal(str(value))


def _opt(value: float) -> Decimal | None:
    """A fraction where 0 means "off"."""
    return Decimal(str(value)) if value > 0 else None


@dataclass(frozen=True, slots=True)
class Params:
    fraction: Decimal
    kelly_multiplier: Decimal
    kelly_cap: Decimal
    win_probability: Decimal
    payoff_ratio: Decimal
    max_position_pct: Decimal
    max_exposure_pct: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    target_risk_fraction: Decimal
    atr_multiple: Decimal
    ramp_start: Decimal
    ramp_days: Decimal
    price_band: Decimal | None
    max_order_notional: Decimal | None
    daily_loss: Decimal | None
    max_drawdown: Decimal | None
    allocations: dict[str, Decimal]
    #: Whether some check or sizing reads execution's order events (open orders, fills, watermark prices).
    needs_order_events: bool
    #: Whether sizing needs bars (the ATR of ``volatility_target``).
    needs_bars: bool

    @classmethod
    def from_config(cls, c: RiskConfig) -> Params:
        allocations = {sid: _dec(f) for sid, f in c.strategy_allocations.items()}
        needs_events = bool(
            c.max_open_orders or c.max_open_orders_per_strategy or c.reserve_open_orders
            or c.reduce_only_nets_open_orders or allocations or c.ramp_up_days or c.ramp_up_trades
            or (c.sizing == "kelly" and c.kelly_min_trades) or c.price_band_pct
        )
        return cls(
            fraction=_dec(c.fraction),
            kelly_multiplier=_dec(c.kelly_fraction),
            kelly_cap=_dec(c.kelly_cap),
            win_probability=_dec(c.win_probability),
            payoff_ratio=_dec(c.payoff_ratio),
            max_position_pct=_dec(c.max_position_pct),
            max_exposure_pct=_dec(c.max_exposure_pct),
            stop_loss=_opt(c.stop_loss_pct),
            take_profit=_opt(c.take_profit_pct),
            target_risk_fraction=_dec(c.target_risk_fraction),
            atr_multiple=_dec(c.atr_multiple),
            ramp_start=_dec(c.ramp_up_start_fraction),
            ramp_days=_dec(c.ramp_up_days),
            price_band=_opt(c.price_band_pct),
            max_order_notional=c.max_order_notional if c.max_order_notional > 0 else None,
            daily_loss=_opt(c.daily_loss_limit_pct),
            max_drawdown=_opt(c.max_drawdown_pct),
            allocations=allocations,
            needs_order_events=needs_events,
            needs_bars=c.sizing == "volatility_target",
        )


def pct(fraction: Decimal) -> str:
    """``0.1`` -> ``"10"``."""
    return format((fraction * 100).normalize(), "f")
