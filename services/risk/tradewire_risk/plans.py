"""What a signal asks for, before limits: which part closes the position, which part opens, and the
entry sizing (rules 3 and 5 of :mod:`tradewire_risk.engine`'s docstring)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from tradewire_common.config import InstrumentSpec, RiskConfig
from tradewire_common.numbers import quantize_down
from tradewire_common.schemas.base import DenyReason, Side
from tradewire_common.schemas.portfolio import PortfolioSnapshot
from tradewire_common.schemas.signals import Signal
from tradewire_risk.context import RiskContext
from tradewire_risk.params import Denial, Params
from tradewire_risk.sizing import (
    all_in_flip_quantity,
    all_in_quantity,
    binary_kelly_fraction,
    capped,
    fixed_fraction_quantity,
    kelly_fraction,
    ramp_up_scale,
    volatility_target_quantity,
)

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a signal asks for, before limits: close ``close_qty`` and/or open ``open_qty``."""

    side: Side
    #: Part of the order that moves the existing position toward zero.
    close_qty: Decimal
    #: Part that opens or increases exposure in ``side``'s direction (sized, not yet limited).
    open_qty: Decimal
    #: True when the signal means to open or increase exposure (an entry or a flip).
    opening: bool
    #: True when ``close_qty`` is the whole position (exempt from ``min_quantity``).
    full_close: bool
    #: Why ``open_qty`` may be zero, for a ``SIZE_ZERO`` reason.
    size_note: str = ""


@dataclass(frozen=True, slots=True)
class Planner:
    config: RiskConfig
    params: Params

    def plan(
        self, signal: Signal, portfolio: PortfolioSnapshot, position: Decimal, spec: InstrumentSpec, ctx: RiskContext
    ) -> Plan | Denial:
        if signal.target is not None:
            return self._plan_target(signal, portfolio, position, spec)
        return self._plan_side(signal, portfolio, position, spec, ctx)

    def _plan_side(
        self, signal: Signal, portfolio: PortfolioSnapshot, position: Decimal, spec: InstrumentSpec, ctx: RiskContext
    ) -> Plan | Denial:
        config = self.config
        opposite = (position < 0) if signal.side is Side.BUY else (position > 0)
        if opposite and config.allow_short and config.reverse_on_opposite:
            sized = self.entry_quantity(signal, portfolio, spec, ctx, closing=abs(position))
            qty, note = (_ZERO, sized.reason) if isinstance(sized, Denial) else sized
            return Plan(signal.side, abs(position), qty, opening=True, full_close=True, size_note=note)
        same_way = (position > 0) if signal.side is Side.BUY else (position < 0)
        if same_way and config.sizing == "all_in":
            return Denial(
                DenyReason.ALREADY_IN_POSITION,
                f"all-in sizing holds one position at a time: {signal.side} while already holding {position} "
                f"of {signal.instrument_id}",
            )
        if signal.side is Side.BUY and position < 0:
            return Plan(Side.BUY, -position, _ZERO, opening=False, full_close=True)
        if signal.side is Side.SELL and position > 0:
            return Plan(Side.SELL, position, _ZERO, opening=False, full_close=True)
        if signal.side is Side.SELL and not config.allow_short:
            return Denial(
                DenyReason.NO_POSITION,
                f"SELL with no long position in {signal.instrument_id} (position {position}) "
                "and shorting is disabled",
            )
        sized = self.entry_quantity(signal, portfolio, spec, ctx)
        if isinstance(sized, Denial):
            return sized
        qty, note = sized
        return Plan(signal.side, _ZERO, qty, opening=True, full_close=False, size_note=note)

    def _plan_target(
        self, signal: Signal, portfolio: PortfolioSnapshot, position: Decimal, spec: InstrumentSpec
    ) -> Plan | Denial:
        assert signal.target is not None
        target = signal.target
        if target < 0 and not self.config.allow_short:
            target = _ZERO
        if target == 0:
            if position == 0:
                return Denial(
                    DenyReason.NO_POSITION,
                    f"target {signal.target} means flat (shorting "
                    f"{'enabled' if self.config.allow_short else 'disabled'}) and there is no "
                    f"position in {signal.instrument_id} to close",
                )
            side = Side.SELL if position > 0 else Side.BUY
            return Plan(side, abs(position), _ZERO, opening=False, full_close=True)

        price = signal.price
        equity = max(portfolio.equity, _ZERO)
        delta = target * equity - position * price
        side = Side.BUY if delta > 0 else Side.SELL
        total = quantize_down(abs(delta) / price, spec.quantity_step)
        note = f"target {signal.target} of equity {portfolio.equity} vs position {position} at {price}"
        if total == 0:
            return Denial(DenyReason.SIZE_ZERO, f"{note}: already at target (quantity 0 to trade)")
        opposes = (position > 0 and side is Side.SELL) or (position < 0 and side is Side.BUY)
        if not opposes:
            return Plan(side, _ZERO, total, opening=True, full_close=False, size_note=note)
        held = abs(position)
        if total < held:
            return Plan(side, total, _ZERO, opening=False, full_close=False, size_note=note)
        rest = quantize_down(total - held, spec.quantity_step)
        return Plan(side, held, rest, opening=rest > 0, full_close=True, size_note=note)

    # -- entry sizing -----------------------------------------------------------------------------

    def entry_quantity(
        self,
        signal: Signal,
        portfolio: PortfolioSnapshot,
        spec: InstrumentSpec,
        ctx: RiskContext,
        *,
        closing: Decimal = _ZERO,
    ) -> tuple[Decimal, str] | Denial:
        """Sized entry quantity and, for a zero size, a note on why (``closing``: the position a flip
        closes first, in the signal's direction); a denial when the sizing lacks an input."""
        equity = portfolio.equity
        price = signal.price
        step = spec.quantity_step
        sizing = self.config.sizing
        if equity <= 0:
            return _ZERO, f"equity {equity} is not positive"
        if sizing == "all_in":
            if closing:
                return all_in_flip_quantity(portfolio.cash, closing, signal.side, price, self.config, step)
            return all_in_quantity(portfolio.cash, price, self.config, step)
        if sizing == "kelly":
            return self._kelly(signal, equity, step, ctx)
        if sizing == "binary_kelly":
            return self._binary_kelly(signal, equity, step)
        if sizing == "volatility_target":
            return self._volatility_target(signal, equity, step, ctx)
        qty = fixed_fraction_quantity(equity, price, self.params.fraction, step)
        return qty, f"fraction {self.params.fraction} of equity {equity} at {price}"

    def _kelly(self, signal: Signal, equity: Decimal, step: Decimal, ctx: RiskContext) -> tuple[Decimal, str]:
        p = Decimal(str(signal.win_probability)) if signal.win_probability is not None else self.params.win_probability
        b = signal.payoff_ratio if signal.payoff_ratio is not None else self.params.payoff_ratio
        source = "signal" if signal.win_probability is not None or signal.payoff_ratio is not None else "defaults"
        minimum = self.config.kelly_min_trades
        record = ctx.book.record(signal.strategy_id)
        full = record.full_kelly() if minimum and record.round_trips >= minimum else None
        edge = record.edge()
        if full is not None and edge is not None:
            p, b = edge[0].quantize(Decimal("0.0001")), edge[1].quantize(Decimal("0.0001"))  # shown, not used
            source = f"live record of {record.round_trips} round trips"
            fraction = capped(full * self.params.kelly_multiplier, self.params.kelly_cap)
        else:
            fraction = capped(kelly_fraction(p, b, self.params.kelly_multiplier), self.params.kelly_cap)
        qty = fixed_fraction_quantity(equity, signal.price, fraction, step)
        if fraction == 0:
            return qty, f"no positive Kelly edge (p={p}, b={b} from {source}: (b*p - q)/b <= 0)"
        return qty, (
            f"Kelly fraction {fraction} (p={p}, b={b} from {source}, x{self.params.kelly_multiplier}, "
            f"cap {self.params.kelly_cap}) of equity {equity} at {signal.price}"
        )

    def _binary_kelly(self, signal: Signal, equity: Decimal, step: Decimal) -> tuple[Decimal, str] | Denial:
        price = signal.price
        if not 0 < price < 1:
            return Denial(DenyReason.INVALID_ORDER,
                          f"binary_kelly sizing needs a contract price within (0, 1), got {price}")
        if signal.win_probability is None:
            return Denial(DenyReason.INVALID_ORDER, "binary_kelly sizing needs the signal's win_probability")
        p = Decimal(str(signal.win_probability))
        if signal.side is Side.BUY:
            raw = binary_kelly_fraction(p, price, self.params.kelly_multiplier)
            formula = f"(p - price) / (1 - price) with p={p}, price={price}"
        else:  # selling YES is buying NO: probability 1 - p at price 1 - price
            raw = binary_kelly_fraction(1 - p, 1 - price, self.params.kelly_multiplier)
            formula = f"(price - p) / price with p={p}, price={price}"
        fraction = capped(raw, self.params.kelly_cap)
        qty = fixed_fraction_quantity(equity, price, fraction, step)
        if fraction == 0:
            return qty, f"no positive binary Kelly edge ({formula} <= 0)"
        return qty, (f"binary Kelly fraction {fraction} ({formula}, x{self.params.kelly_multiplier}, "
                     f"cap {self.params.kelly_cap}) of equity {equity}")

    def _volatility_target(
        self, signal: Signal, equity: Decimal, step: Decimal, ctx: RiskContext
    ) -> tuple[Decimal, str] | Denial:
        iid = signal.instrument_id
        interval = self.config.atr_interval
        if not interval:
            seen = ctx.bars.intervals(iid)
            if len(seen) > 1:
                return Denial(DenyReason.INVALID_ORDER,
                              f"bars of several intervals ({', '.join(seen)}) for {iid}: set risk.atr_interval")
            interval = seen[0] if seen else ""
        atr, bars = ctx.bars.atr(iid, interval, signal.ts_event) if interval else (None, 0)
        window = self.config.atr_window
        if atr is None:
            return Denial(DenyReason.UNKNOWN_PRICE,
                          f"no ATR for {iid}: {bars} bars up to the signal's time, {window + 1} needed")
        if atr <= 0:
            return _ZERO, f"ATR({window}) of {iid} is {atr}: no volatility to size with"
        multiple = self.params.atr_multiple
        qty = volatility_target_quantity(equity, atr, self.params.target_risk_fraction, multiple, step)
        return qty, (f"volatility target {self.params.target_risk_fraction} of equity {equity} / "
                     f"({multiple} x ATR({window}) {atr})")

    def ramp_up(self, plan: Plan, signal: Signal, spec: InstrumentSpec, ctx: RiskContext) -> Plan:
        """Scale the opening part by the strategy's ramp-up (unchanged when the ramp is off or over)."""
        config = self.config
        if not (config.ramp_up_days or config.ramp_up_trades) or config.sizing == "all_in" or plan.open_qty <= 0:
            return plan
        record = ctx.book.record(signal.strategy_id)
        elapsed = None if record.first_fill_ts is None else signal.ts_event - record.first_fill_ts
        scale = ramp_up_scale(self.params.ramp_start, days=self.params.ramp_days, trades=config.ramp_up_trades,
                              elapsed_ns=elapsed, filled_orders=record.filled_orders)
        if scale >= 1:
            return plan
        qty = quantize_down(plan.open_qty * scale, spec.quantity_step)
        note = (f"{plan.size_note}, ramp-up x{scale} ({record.filled_orders} trades, "
                f"{'no fill yet' if elapsed is None else f'{Decimal(elapsed) / 86_400_000_000_000:.2f} days'})")
        return replace(plan, open_qty=qty, size_note=note)


def position_quantity(portfolio: PortfolioSnapshot, instrument_id: str) -> Decimal:
    """Signed quantity held in an instrument (0 when not held)."""
    held: Decimal = sum((p.quantity for p in portfolio.positions if p.instrument_id == instrument_id), _ZERO)
    return held
