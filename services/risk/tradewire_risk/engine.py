"""The risk engine: turns a strategy's Signal into a SubmitOrder or an OrderDenied.

Pure decision logic: no I/O, no clock (the caller passes ``now_ns``), no floats (config
fractions are converted with ``Decimal(str(x))``). The service wires it to the bus.

Rules, in order:

1. A signal id already evaluated (bounded memory) -> ``DUPLICATE_ORDER``.
2. ``HALTED`` -> ``TRADING_HALTED``. No portfolio snapshot -> ``UNKNOWN_PORTFOLIO``.
3. Intent from ``side`` (when the signal has no ``target``):

   * BUY with a short position closes the whole short (reduce-only); otherwise it opens or
     increases a long (an *entry*).
   * SELL with a long position closes the whole long (reduce-only MARKET SELL of exactly the
     position quantity). With no long position: ``NO_POSITION`` when shorting is disabled;
     with ``allow_short`` it opens or increases a short, sized like an entry.
   * With ``allow_short`` and ``reverse_on_opposite``, a signal against the position is a *flip*:
     one (non reduce-only) order closes the whole position and opens the other way, the opening
     part sized like an entry (all-in: with the cash the close leaves, see
     :func:`~tradewire_risk.sizing.all_in_flip_quantity`).

   Intent from ``target`` (wanted position as a fraction of equity, -1..1): the order trades
   ``target * equity - position * price`` (notional) in the direction of its sign, rounded down
   to the quantity step. Long-only, a negative target counts as 0 (close the long; nothing to
   close -> ``NO_POSITION``). A target of 0 closes exactly the position quantity. A target on the
   other side of zero closes the position and opens the remainder in one (non reduce-only) order.
4. ``REDUCING`` -> only reduce-only orders pass; an entry is denied ``TRADING_REDUCING`` (a target
   flip is trimmed to its closing part).
5. Entry sizing (``side`` signals): ``fixed_fraction`` of equity, or fractional ``kelly`` with the
   signal's edge estimate (or the configured defaults), or ``all_in`` (all the cash; one position at
   a time, so an entry in the direction already held is ``ALREADY_IN_POSITION``). Rounded down to the instrument's
   ``quantity_step``; below ``min_quantity`` -> ``SIZE_ZERO``.
6. Limits on the opening quantity, at the signal's price (the bar close):

   * position: ``|resulting position| * price <= max_position_pct * equity``;
   * exposure: re-marked gross exposure (``|qty * price|`` over all positions, the signal's
     instrument at the signal price) minus what the order closes plus what it opens
     ``<= max_exposure_pct * equity``.

   Exactly at a limit is allowed. A sized quantity over a limit is first **clipped** down to the
   largest step multiple both limits allow; only if the clipped quantity is below
   ``min_quantity`` is the signal denied, with the binding limit as the reason code
   (``MAX_POSITION`` or ``MAX_EXPOSURE``).
7. Cash: the opening cost ``qty * price`` must be ``<= cash`` (after the cash effect of the
   closing part, if any), else ``INSUFFICIENT_CASH`` (not clipped). Short entries are held to the
   same rule (full collateral), which is conservative. Fees are not included.

Order type: the order is of the signal's ``order_type`` (MARKET by default; LIMIT, STOP_MARKET or
STOP_LIMIT with the signal's prices and time in force); sizing and limits use the signal's ``price``.

Exits: every order that opens exposure carries the signal's ``stop_loss_pct``/``take_profit_pct``,
or the configured defaults when the signal has none (0 = no exit), for the venue to attach as a
bracket. Reduce-only orders carry none.

Closing orders (reduce-only) skip the limit and cash checks: they only lower exposure. A full
close is never blocked by ``min_quantity`` (a position must always be exitable); a partial
reduction (from a target) below ``min_quantity`` is ``SIZE_ZERO``. When a target flip's opening
part cannot be placed (REDUCING, below minimum, limits, cash) the closing part alone is sent.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal

from tradewire_common.config import InstrumentSpec, RiskConfig
from tradewire_common.ids import client_order_id, derive_id
from tradewire_common.numbers import quantize_down
from tradewire_common.schemas.base import DenyReason, Side, TradingState
from tradewire_common.schemas.orders import OrderDenied, SubmitOrder
from tradewire_common.schemas.portfolio import PortfolioSnapshot
from tradewire_common.schemas.signals import Signal
from tradewire_risk.sizing import all_in_flip_quantity, all_in_quantity, fixed_fraction_quantity, kelly_fraction

_ZERO = Decimal(0)

#: How many recent signal ids the engine remembers for duplicate detection.
DEFAULT_MEMORY = 10_000


@dataclass(frozen=True, slots=True)
class _Plan:
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


class RiskEngine:
    """Pre-trade risk checks and sizing for one account. Not thread-safe; one per service."""

    def __init__(self, config: RiskConfig, *, memory: int = DEFAULT_MEMORY) -> None:
        if memory < 1:
            raise ValueError(f"memory must be at least 1, got {memory}")
        self.config = config
        self._fraction = Decimal(str(config.fraction))
        self._kelly_multiplier = Decimal(str(config.kelly_fraction))
        self._win_probability = Decimal(str(config.win_probability))
        self._payoff_ratio = Decimal(str(config.payoff_ratio))
        self._max_position_pct = Decimal(str(config.max_position_pct))
        self._max_exposure_pct = Decimal(str(config.max_exposure_pct))
        #: Default bracket exits (None: off).
        self._stop_loss = Decimal(str(config.stop_loss_pct)) if config.stop_loss_pct > 0 else None
        self._take_profit = Decimal(str(config.take_profit_pct)) if config.take_profit_pct > 0 else None
        self._instruments = {spec.id: spec for spec in config.instruments}
        self._memory = memory
        self._seen: OrderedDict[str, None] = OrderedDict()

    # -- public -------------------------------------------------------------------------------

    def evaluate(
        self,
        signal: Signal,
        portfolio: PortfolioSnapshot | None,
        state: TradingState,
        *,
        now_ns: int,
    ) -> SubmitOrder | OrderDenied:
        """Decide on one signal. A denial is returned, never raised."""
        if signal.id in self._seen:
            self._seen.move_to_end(signal.id)
            return self._deny(
                signal,
                now_ns,
                DenyReason.DUPLICATE_ORDER,
                f"signal {signal.id} was already evaluated",
                signal.side,
            )
        decision = self._decide(signal, portfolio, state, now_ns)
        self._remember(signal.id)
        return decision

    def seen(self, signal_id: str) -> bool:
        """Whether a signal id is in the duplicate memory."""
        return signal_id in self._seen

    def instrument(self, instrument_id: str) -> InstrumentSpec:
        """The instrument's trading rules; defaults (step 0.000001) when not configured."""
        spec = self._instruments.get(instrument_id)
        return spec if spec is not None else InstrumentSpec(id=instrument_id)

    # -- decision -----------------------------------------------------------------------------

    def _decide(
        self, signal: Signal, portfolio: PortfolioSnapshot | None, state: TradingState, now_ns: int
    ) -> SubmitOrder | OrderDenied:
        if state is TradingState.HALTED:
            return self._deny(
                signal, now_ns, DenyReason.TRADING_HALTED, "trading is HALTED: no new orders", signal.side
            )
        if portfolio is None:
            return self._deny(
                signal,
                now_ns,
                DenyReason.UNKNOWN_PORTFOLIO,
                "no portfolio snapshot: cannot size or check limits",
                signal.side,
            )

        spec = self.instrument(signal.instrument_id)
        position = _position_quantity(portfolio, signal.instrument_id)
        if signal.target is not None:
            planned = self._plan_target(signal, portfolio, position, spec)
        else:
            planned = self._plan_side(signal, portfolio, position, spec)
        if isinstance(planned, tuple):
            code, reason = planned
            return self._deny(signal, now_ns, code, reason, signal.side)
        plan = planned

        if not plan.opening:
            return self._close(signal, now_ns, plan, spec)

        if state is TradingState.REDUCING:
            if plan.close_qty > 0:
                return self._close(signal, now_ns, plan, spec)
            return self._deny(
                signal,
                now_ns,
                DenyReason.TRADING_REDUCING,
                f"trading is REDUCING: only reduce-only orders pass, {plan.side} would increase "
                f"exposure in {signal.instrument_id}",
                plan.side,
            )

        if plan.open_qty < spec.min_quantity:
            if plan.close_qty > 0:
                return self._close(signal, now_ns, plan, spec)
            note = plan.size_note or "sized quantity"
            return self._deny(
                signal,
                now_ns,
                DenyReason.SIZE_ZERO,
                f"{note}: quantity {plan.open_qty} < min quantity {spec.min_quantity}",
                plan.side,
                plan.open_qty,
            )
        return self._open(signal, portfolio, position, plan, spec, now_ns)

    def _plan_side(
        self, signal: Signal, portfolio: PortfolioSnapshot, position: Decimal, spec: InstrumentSpec
    ) -> _Plan | tuple[DenyReason, str]:
        opposite = (position < 0) if signal.side is Side.BUY else (position > 0)
        if opposite and self.config.allow_short and self.config.reverse_on_opposite:
            qty, note = self._entry_quantity(signal, portfolio, spec, closing=abs(position))
            return _Plan(signal.side, abs(position), qty, opening=True, full_close=True, size_note=note)
        same_way = (position > 0) if signal.side is Side.BUY else (position < 0)
        if same_way and self.config.sizing == "all_in":
            return (
                DenyReason.ALREADY_IN_POSITION,
                f"all-in sizing holds one position at a time: {signal.side} while already holding {position} "
                f"of {signal.instrument_id}",
            )
        if signal.side is Side.BUY:
            if position < 0:
                return _Plan(Side.BUY, -position, _ZERO, opening=False, full_close=True)
            qty, note = self._entry_quantity(signal, portfolio, spec)
            return _Plan(Side.BUY, _ZERO, qty, opening=True, full_close=False, size_note=note)
        # SELL
        if position > 0:
            return _Plan(Side.SELL, position, _ZERO, opening=False, full_close=True)
        if not self.config.allow_short:
            return (
                DenyReason.NO_POSITION,
                f"SELL with no long position in {signal.instrument_id} (position {position}) "
                "and shorting is disabled",
            )
        qty, note = self._entry_quantity(signal, portfolio, spec)
        return _Plan(Side.SELL, _ZERO, qty, opening=True, full_close=False, size_note=note)

    def _plan_target(
        self, signal: Signal, portfolio: PortfolioSnapshot, position: Decimal, spec: InstrumentSpec
    ) -> _Plan | tuple[DenyReason, str]:
        assert signal.target is not None
        target = signal.target
        if target < 0 and not self.config.allow_short:
            target = _ZERO
        if target == 0:
            if position == 0:
                return (
                    DenyReason.NO_POSITION,
                    f"target {signal.target} means flat (shorting "
                    f"{'enabled' if self.config.allow_short else 'disabled'}) and there is no "
                    f"position in {signal.instrument_id} to close",
                )
            side = Side.SELL if position > 0 else Side.BUY
            return _Plan(side, abs(position), _ZERO, opening=False, full_close=True)

        price = signal.price
        equity = max(portfolio.equity, _ZERO)
        delta = target * equity - position * price
        side = Side.BUY if delta > 0 else Side.SELL
        total = quantize_down(abs(delta) / price, spec.quantity_step)
        note = f"target {signal.target} of equity {portfolio.equity} vs position {position} at {price}"
        if total == 0:
            return (DenyReason.SIZE_ZERO, f"{note}: already at target (quantity 0 to trade)")
        opposes = (position > 0 and side is Side.SELL) or (position < 0 and side is Side.BUY)
        if not opposes:
            return _Plan(side, _ZERO, total, opening=True, full_close=False, size_note=note)
        held = abs(position)
        if total < held:
            return _Plan(side, total, _ZERO, opening=False, full_close=False, size_note=note)
        rest = quantize_down(total - held, spec.quantity_step)
        return _Plan(side, held, rest, opening=rest > 0, full_close=True, size_note=note)

    def _entry_quantity(
        self, signal: Signal, portfolio: PortfolioSnapshot, spec: InstrumentSpec, *, closing: Decimal = _ZERO
    ) -> tuple[Decimal, str]:
        """Sized entry quantity and, for a zero size, a note on why (``closing``: the position a flip
        closes first, in the signal's direction)."""
        equity = portfolio.equity
        price = signal.price
        if equity <= 0:
            return _ZERO, f"equity {equity} is not positive"
        if self.config.sizing == "kelly":
            p = (
                Decimal(str(signal.win_probability))
                if signal.win_probability is not None
                else self._win_probability
            )
            b = signal.payoff_ratio if signal.payoff_ratio is not None else self._payoff_ratio
            fraction = kelly_fraction(p, b, self._kelly_multiplier)
            qty = fixed_fraction_quantity(equity, price, fraction, spec.quantity_step)
            if fraction == 0:
                return qty, f"no positive Kelly edge (p={p}, b={b}: (b*p - q)/b <= 0)"
            return qty, (
                f"Kelly fraction {fraction} (p={p}, b={b}, x{self._kelly_multiplier}) of equity "
                f"{equity} at {price}"
            )
        if self.config.sizing == "all_in":
            if closing:
                return all_in_flip_quantity(portfolio.cash, closing, signal.side, price, self.config,
                                            spec.quantity_step)
            return all_in_quantity(portfolio.cash, price, self.config, spec.quantity_step)
        qty = fixed_fraction_quantity(equity, price, self._fraction, spec.quantity_step)
        return qty, f"fraction {self._fraction} of equity {equity} at {price}"

    def _open(
        self,
        signal: Signal,
        portfolio: PortfolioSnapshot,
        position: Decimal,
        plan: _Plan,
        spec: InstrumentSpec,
        now_ns: int,
    ) -> SubmitOrder | OrderDenied:
        """Clip the opening part to the position and exposure limits, check cash, submit."""
        if self.config.sizing == "all_in":  # no limits by definition (comparison mode)
            return self._submit(signal, now_ns, plan.side, plan.close_qty + plan.open_qty, reduce_only=False)
        price = signal.price
        equity = portfolio.equity
        step = spec.quantity_step
        sized = plan.open_qty

        # Position limit: what is held in the order's direction, plus what it opens.
        same_way = (position > 0 and plan.side is Side.BUY) or (position < 0 and plan.side is Side.SELL)
        base_qty = abs(position) if same_way else _ZERO
        position_limit = self._max_position_pct * equity
        max_by_position = _room_quantity(position_limit - base_qty * price, price, step)

        # Exposure limit: gross re-marked at the signal price, minus the closing part.
        gross = _remarked_gross(portfolio, signal.instrument_id, price) - plan.close_qty * price
        exposure_limit = self._max_exposure_pct * equity
        max_by_exposure = _room_quantity(exposure_limit - gross, price, step)

        qty = min(sized, max_by_position, max_by_exposure)
        if qty < spec.min_quantity:
            if plan.close_qty > 0:
                return self._close(signal, now_ns, plan, spec)
            if max_by_position <= max_by_exposure:
                code = DenyReason.MAX_POSITION
                reason = (
                    f"position {(base_qty + sized) * price:.2f} > limit {position_limit:.2f} "
                    f"({_pct(self._max_position_pct)}% of equity {equity}); room for "
                    f"{max_by_position} < min quantity {spec.min_quantity}"
                )
            else:
                code = DenyReason.MAX_EXPOSURE
                reason = (
                    f"gross exposure {gross + sized * price:.2f} > limit {exposure_limit:.2f} "
                    f"({_pct(self._max_exposure_pct)}% of equity {equity}); room for "
                    f"{max_by_exposure} < min quantity {spec.min_quantity}"
                )
            return self._deny(signal, now_ns, code, reason, plan.side, sized)

        # Cash: the opening cost, after what the closing part pays in or out.
        if plan.side is Side.SELL:
            cash = portfolio.cash + plan.close_qty * price
        else:
            cash = portfolio.cash - plan.close_qty * price
        cost = qty * price
        if cost > cash:
            if plan.close_qty > 0:
                return self._close(signal, now_ns, plan, spec)
            return self._deny(
                signal,
                now_ns,
                DenyReason.INSUFFICIENT_CASH,
                f"cost {cost:.2f} ({qty} at {price}) > cash {cash:.2f}",
                plan.side,
                qty,
            )
        return self._submit(signal, now_ns, plan.side, plan.close_qty + qty, reduce_only=False)

    def _close(
        self, signal: Signal, now_ns: int, plan: _Plan, spec: InstrumentSpec
    ) -> SubmitOrder | OrderDenied:
        """A reduce-only order for the closing part of the plan."""
        if plan.close_qty <= 0 or (not plan.full_close and plan.close_qty < spec.min_quantity):
            return self._deny(
                signal,
                now_ns,
                DenyReason.SIZE_ZERO,
                f"reduction of {plan.close_qty} < min quantity {spec.min_quantity}",
                plan.side,
                plan.close_qty,
            )
        return self._submit(signal, now_ns, plan.side, plan.close_qty, reduce_only=True)

    # -- messages -----------------------------------------------------------------------------

    def _submit(
        self, signal: Signal, now_ns: int, side: Side, quantity: Decimal, *, reduce_only: bool
    ) -> SubmitOrder:
        stop_loss = take_profit = None
        if not reduce_only:
            stop_loss = signal.stop_loss_pct if signal.stop_loss_pct is not None else self._stop_loss
            take_profit = signal.take_profit_pct if signal.take_profit_pct is not None else self._take_profit
        return SubmitOrder(
            id=derive_id("submit", signal.id),
            ts_event=signal.ts_event,
            ts_init=now_ns,
            correlation_id=signal.correlation_id or signal.id,
            strategy_id=signal.strategy_id,
            instrument_id=signal.instrument_id,
            client_order_id=client_order_id(signal.strategy_id, signal.id),
            side=side,
            order_type=signal.order_type,
            quantity=quantity,
            limit_price=signal.limit_price,
            trigger_price=signal.trigger_price,
            time_in_force=signal.time_in_force,
            reduce_only=reduce_only,
            signal_id=signal.id,
            stop_loss_pct=stop_loss,
            take_profit_pct=take_profit,
        )

    def _deny(
        self,
        signal: Signal,
        now_ns: int,
        code: DenyReason,
        reason: str,
        side: Side,
        quantity: Decimal | None = None,
    ) -> OrderDenied:
        return OrderDenied(
            id=derive_id("denied", signal.id),
            ts_event=signal.ts_event,
            ts_init=now_ns,
            correlation_id=signal.correlation_id or signal.id,
            strategy_id=signal.strategy_id,
            instrument_id=signal.instrument_id,
            client_order_id=client_order_id(signal.strategy_id, signal.id),
            reason_code=code,
            reason=reason,
            side=side,
            quantity=quantity,
            signal_id=signal.id,
        )

    def _remember(self, signal_id: str) -> None:
        self._seen[signal_id] = None
        while len(self._seen) > self._memory:
            self._seen.popitem(last=False)


def _position_quantity(portfolio: PortfolioSnapshot, instrument_id: str) -> Decimal:
    """Signed quantity held in an instrument (0 when not held)."""
    held: Decimal = sum((p.quantity for p in portfolio.positions if p.instrument_id == instrument_id), _ZERO)
    return held


def _remarked_gross(portfolio: PortfolioSnapshot, instrument_id: str, price: Decimal) -> Decimal:
    """Sum of ``|quantity * price|`` over positions, ``instrument_id`` marked at ``price``."""
    gross: Decimal = sum(
        (
            abs(p.quantity * (price if p.instrument_id == instrument_id else p.last_price))
            for p in portfolio.positions
        ),
        _ZERO,
    )
    return gross


def _room_quantity(room: Decimal, price: Decimal, step: Decimal) -> Decimal:
    """Largest step multiple whose notional at ``price`` fits in ``room`` (0 when none)."""
    if room <= 0:
        return _ZERO
    qty: Decimal = quantize_down(room / price, step)
    if qty * price > room:  # the division rounded up at the 28th digit
        qty -= step
    return max(qty, _ZERO)


def _pct(fraction: Decimal) -> str:
    """``0.1`` -> ``"10"``."""
    return format((fraction * 100).normalize(), "f")
