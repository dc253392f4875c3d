"""The risk engine: turns a strategy's Signal into a SubmitOrder or an OrderDenied.

Pure decision logic: no I/O, no clock (the caller passes ``now_ns``; every rule that looks at time
uses event times), no floats (config fractions are converted with ``Decimal(str(x))``). The service
wires it to the bus and keeps its :class:`~tradewire_risk.context.RiskContext` (open orders, fills by
strategy, last prices, equity history, bars) current. Every denial names the numbers that caused it.

Rules, in order:

1. A signal id already evaluated (bounded memory), or a client order id the context already knows
   (an order decided before a restart, rebuilt from the ledger) -> ``DUPLICATE_ORDER``. Such a denial
   carries a client order id of its own, so it never overwrites the original order's record.
2. ``HALTED`` -> ``TRADING_HALTED``. No portfolio snapshot -> ``UNKNOWN_PORTFOLIO``.
   Instrument: not in ``instruments`` with ``require_known_instruments`` -> ``UNKNOWN_INSTRUMENT``;
   ``tradable = false`` -> ``INSTRUMENT_NOT_TRADABLE`` (closes included).
   Prices: a limit or trigger price off the instrument's ``price_tick`` grid -> ``INVALID_ORDER``
   (never rounded); with ``price_band_pct``, a limit or trigger price further than the band from the
   last bar close (else the signal's price) -> ``PRICE_BAND`` (every order, closes included).
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

   4a. Entry gates (an entry is denied, a flip sends only its closing part): the context not yet
   rebuilt from the ledger -> ``UNKNOWN_PORTFOLIO``; the signal's price (what the entry is sized at)
   further than ``price_band_pct`` from the last bar close -> ``PRICE_BAND``; equity more than ``daily_loss_limit_pct``
   below the start-of-UTC-day equity -> ``DAILY_LOSS_LIMIT``; more than ``max_drawdown_pct`` below
   its peak -> ``MAX_DRAWDOWN``; ``max_open_orders`` / ``max_open_orders_per_strategy`` reached ->
   ``MAX_OPEN_ORDERS``; ``max_orders_per_minute_per_strategy`` / ``_per_venue`` reached (orders with
   event time in ``(t - 60 s, t]``) -> ``RATE_LIMIT``. Reduce-only orders pass all of them: a
   position must always be exitable.
5. Entry sizing (``side`` signals): ``fixed_fraction`` of equity, fractional ``kelly`` (the signal's
   edge estimate, the configured defaults, or the strategy's live record once it has
   ``kelly_min_trades`` round trips; capped at ``kelly_cap``), ``volatility_target`` (ATR of the
   instrument's bars; no ATR yet -> ``UNKNOWN_PRICE``), ``binary_kelly`` (contract price in (0, 1),
   the signal's ``win_probability``; else ``INVALID_ORDER``), or ``all_in`` (all the cash; one position
   at a time, so an entry in the direction already held is ``ALREADY_IN_POSITION``). Then the
   strategy's ramp-up scale (``ramp_up_*``, not for ``all_in``) applies to the opening part of every
   entry. Rounded down to the instrument's ``quantity_step``; below ``min_quantity`` -> ``SIZE_ZERO``.
6. Limits on the opening quantity, at the signal's price (the bar close):

   * position: ``|resulting position| * price <= max_position_pct * equity``;
   * exposure: re-marked gross exposure (``|qty * price|`` over all positions, the signal's
     instrument at the signal price) minus what the order closes plus what it opens
     ``<= max_exposure_pct * equity``;
   * allocation (strategies in ``strategy_allocations``): the strategy's positions by its own fills
     (re-marked likewise) minus what the order closes of them, plus its open entry orders, plus
     what the order opens ``<= allocation * equity``;
   * per order, at the order's price (limit, else trigger, else the signal's), the whole order
     (closing part included): ``max_order_notional``; the instrument's ``max_quantity`` and
     ``max_notional`` (``INVALID_ORDER``).

   Exactly at a limit is allowed. A sized quantity over a limit is first **clipped** down to the
   largest step multiple every limit allows; only if the clipped quantity is below ``min_quantity``
   is the signal denied, with the binding limit as the reason code (the first of ``MAX_POSITION``,
   ``MAX_EXPOSURE``, ``STRATEGY_ALLOCATION``, ``MAX_ORDER_NOTIONAL``, ``INVALID_ORDER`` with the
   smallest room). An order below the instrument's ``min_notional`` -> ``SIZE_ZERO``.
7. Cash: the opening cost ``qty * price`` must be ``<= cash`` (after the cash effect of the
   closing part, if any; with ``reserve_open_orders`` less the notional of the open BUY orders),
   else ``INSUFFICIENT_CASH`` (not clipped). Short entries are held to the same rule (full
   collateral), which is conservative. Fees are not included. An open order whose price is unknown
   (rebuilt without one, no last price) -> ``UNKNOWN_PRICE``.

Order type: the order is of the signal's ``order_type`` (MARKET by default; LIMIT, STOP_MARKET or
STOP_LIMIT with the signal's prices and time in force, ``post_only`` and a ``GTD`` order's ``expire_time_ns``);
sizing and limits use the signal's ``price``.

Exits: every order that opens exposure carries the signal's ``stop_loss_pct``/``take_profit_pct``/
``trailing_stop_pct``/``time_stop_s``, or the configured defaults when the signal has none (0 = no
exit), for the venue to attach as a bracket. Reduce-only orders carry none.

Closing orders (reduce-only) skip the limit, gate and cash checks: they only lower exposure. They must
be opposite to the position and no larger than it (with ``reduce_only_nets_open_orders``: than the
position less the open reduce-only orders on their side; trimmed to that, ``REDUCE_ONLY`` when nothing
is left), and are trimmed to the instrument's ``max_quantity`` / ``max_notional``. A full close is never
blocked by ``min_quantity`` or ``min_notional`` (a position must always be exitable); a partial
reduction (from a target) below them is ``SIZE_ZERO``. When a flip's opening part cannot be placed
(REDUCING, gates, below minimum, limits, cash) the closing part alone is sent.

Every order sent is recorded in the context (open orders, submission times), every decision's client
order id too, so the next decision sees it.
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal

from tradewire_common.config import InstrumentSpec, RiskConfig
from tradewire_common.ids import client_order_id, derive_id
from tradewire_common.schemas.base import DenyReason, Side, TradingState
from tradewire_common.schemas.orders import OrderDenied, SubmitOrder
from tradewire_common.schemas.portfolio import PortfolioSnapshot
from tradewire_common.schemas.signals import Signal
from tradewire_risk import checks
from tradewire_risk.context import RiskContext
from tradewire_risk.limits import close_quantity, entry_rooms, free_cash
from tradewire_risk.params import Denial, Params
from tradewire_risk.plans import Plan, Planner, position_quantity

_ZERO = Decimal(0)

#: How many recent signal ids the engine remembers for duplicate detection.
DEFAULT_MEMORY = 10_000


class RiskEngine:
    """Pre-trade risk checks and sizing for one account. Not thread-safe; one per service."""

    def __init__(self, config: RiskConfig, *, memory: int = DEFAULT_MEMORY) -> None:
        if memory < 1:
            raise ValueError(f"memory must be at least 1, got {memory}")
        self.config = config
        self.params = Params.from_config(config)
        self.planner = Planner(config, self.params)
        #: The context used when ``evaluate`` is given none (the service passes the one it maintains).
        self.context = RiskContext(atr_window=config.atr_window, memory=memory)
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
        context: RiskContext | None = None,
    ) -> SubmitOrder | OrderDenied:
        """Decide on one signal. A denial is returned, never raised."""
        ctx = context if context is not None else self.context
        coid = client_order_id(signal.strategy_id, signal.id)
        if signal.id in self._seen or ctx.knows(coid):
            if signal.id in self._seen:
                self._seen.move_to_end(signal.id)
                reason = f"signal {signal.id} was already evaluated"
            else:
                reason = f"client order id {coid} of signal {signal.id} is already known (an earlier decision)"
            return self._deny(signal, now_ns, Denial(DenyReason.DUPLICATE_ORDER, reason), signal.side,
                              coid=client_order_id(signal.strategy_id, derive_id("duplicate", signal.id)))
        if portfolio is not None:
            ctx.observe_equity(portfolio.as_of, portfolio.equity)
        decision = self._decide(signal, portfolio, state, now_ns, ctx)
        self._remember(signal.id)
        if isinstance(decision, SubmitOrder):
            ctx.record_submit(decision, signal.price)
        else:
            ctx.record_denial(decision.client_order_id)
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
        self, signal: Signal, portfolio: PortfolioSnapshot | None, state: TradingState, now_ns: int,
        ctx: RiskContext,
    ) -> SubmitOrder | OrderDenied:
        if state is TradingState.HALTED:
            return self._deny(signal, now_ns, Denial(DenyReason.TRADING_HALTED, "trading is HALTED: no new orders"),
                              signal.side)
        if portfolio is None:
            return self._deny(signal, now_ns, Denial(DenyReason.UNKNOWN_PORTFOLIO,
                                                     "no portfolio snapshot: cannot size or check limits"),
                              signal.side)
        spec = checks.instrument(self.config, self._instruments, signal)
        if isinstance(spec, Denial):
            return self._deny(signal, now_ns, spec, signal.side)
        denial = checks.prices(signal, spec, ctx, self.params.price_band)
        if denial is not None:
            return self._deny(signal, now_ns, denial, signal.side)

        position = position_quantity(portfolio, signal.instrument_id)
        plan = self.planner.plan(signal, portfolio, position, spec, ctx)
        if isinstance(plan, Denial):
            return self._deny(signal, now_ns, plan, signal.side)

        if not plan.opening:
            return self._close(signal, now_ns, plan, position, spec, ctx)

        if state is TradingState.REDUCING:
            if plan.close_qty > 0:
                return self._close(signal, now_ns, plan, position, spec, ctx)
            return self._deny(signal, now_ns, Denial(
                DenyReason.TRADING_REDUCING,
                f"trading is REDUCING: only reduce-only orders pass, {plan.side} would increase "
                f"exposure in {signal.instrument_id}"), plan.side)

        gate = checks.entry_gates(self.config, self.params, signal, portfolio, ctx)
        if gate is not None:
            if plan.close_qty > 0:
                return self._close(signal, now_ns, plan, position, spec, ctx)
            return self._deny(signal, now_ns, gate, plan.side)

        plan = self.planner.ramp_up(plan, signal, spec, ctx)
        if plan.open_qty < spec.min_quantity:
            if plan.close_qty > 0:
                return self._close(signal, now_ns, plan, position, spec, ctx)
            note = plan.size_note or "sized quantity"
            return self._deny(signal, now_ns, Denial(
                DenyReason.SIZE_ZERO, f"{note}: quantity {plan.open_qty} < min quantity {spec.min_quantity}",
                plan.open_qty), plan.side)
        return self._open(signal, portfolio, position, plan, spec, now_ns, ctx)

    def _open(
        self,
        signal: Signal,
        portfolio: PortfolioSnapshot,
        position: Decimal,
        plan: Plan,
        spec: InstrumentSpec,
        now_ns: int,
        ctx: RiskContext,
    ) -> SubmitOrder | OrderDenied:
        """Clip the opening part to the limits, check the minimum notional and cash, submit."""
        if self.config.sizing == "all_in":  # no limits by definition (comparison mode)
            return self._submit(signal, now_ns, plan.side, plan.close_qty + plan.open_qty, reduce_only=False)
        rooms = entry_rooms(self.config, self.params, signal, portfolio, position, plan, spec, ctx)
        if isinstance(rooms, Denial):
            return self._fallback(signal, now_ns, plan, position, spec, ctx, rooms)
        qty = min([plan.open_qty, *(room.max_qty for room in rooms)])
        if qty < spec.min_quantity:
            binding = min(rooms, key=lambda room: room.max_qty)  # the first of the tightest
            return self._fallback(signal, now_ns, plan, position, spec, ctx,
                                  Denial(binding.code, binding.reason, plan.open_qty))
        notional = (plan.close_qty + qty) * checks.order_price(signal)
        if spec.min_notional is not None and notional < spec.min_notional:
            return self._fallback(signal, now_ns, plan, position, spec, ctx, Denial(
                DenyReason.SIZE_ZERO, f"order notional {notional:.2f} < min notional {spec.min_notional} of "
                                      f"{signal.instrument_id}", qty))
        cash = free_cash(self.config, plan, signal, portfolio, ctx)
        if isinstance(cash, Denial):
            return self._fallback(signal, now_ns, plan, position, spec, ctx, cash)
        available, described = cash
        cost = qty * signal.price
        if cost > available:
            return self._fallback(signal, now_ns, plan, position, spec, ctx, Denial(
                DenyReason.INSUFFICIENT_CASH, f"cost {cost:.2f} ({qty} at {signal.price}) > {described}", qty))
        if qty % spec.quantity_step != 0:  # sizing and clipping round down: a bug if it ever happens
            return self._deny(signal, now_ns, Denial(
                DenyReason.INVALID_ORDER, f"quantity {qty} is not a multiple of the quantity step "
                                          f"{spec.quantity_step}", qty), plan.side)
        return self._submit(signal, now_ns, plan.side, plan.close_qty + qty, reduce_only=False)

    def _fallback(
        self, signal: Signal, now_ns: int, plan: Plan, position: Decimal, spec: InstrumentSpec, ctx: RiskContext,
        denial: Denial,
    ) -> SubmitOrder | OrderDenied:
        """The opening part cannot be placed: send the closing part alone, or deny."""
        if plan.close_qty > 0:
            return self._close(signal, now_ns, plan, position, spec, ctx)
        return self._deny(signal, now_ns, denial, plan.side)

    def _close(
        self, signal: Signal, now_ns: int, plan: Plan, position: Decimal, spec: InstrumentSpec, ctx: RiskContext
    ) -> SubmitOrder | OrderDenied:
        """A reduce-only order for the closing part of the plan."""
        if plan.close_qty <= 0:
            return self._deny(signal, now_ns, Denial(
                DenyReason.SIZE_ZERO, f"reduction of {plan.close_qty} < min quantity {spec.min_quantity}",
                plan.close_qty), plan.side)
        allowed = close_quantity(self.config, plan, signal, position, spec, ctx)
        if isinstance(allowed, Denial):
            return self._deny(signal, now_ns, allowed, plan.side, plan.close_qty)
        qty, full = allowed
        if not full and qty < spec.min_quantity:
            return self._deny(signal, now_ns, Denial(
                DenyReason.SIZE_ZERO, f"reduction of {qty} < min quantity {spec.min_quantity}", qty), plan.side)
        notional = qty * checks.order_price(signal)
        if not full and spec.min_notional is not None and notional < spec.min_notional:
            return self._deny(signal, now_ns, Denial(
                DenyReason.SIZE_ZERO, f"reduction notional {notional:.2f} < min notional {spec.min_notional} of "
                                      f"{signal.instrument_id}", qty), plan.side)
        return self._submit(signal, now_ns, plan.side, qty, reduce_only=True)

    # -- messages -----------------------------------------------------------------------------

    def _submit(
        self, signal: Signal, now_ns: int, side: Side, quantity: Decimal, *, reduce_only: bool
    ) -> SubmitOrder:
        stop_loss = take_profit = trailing_stop = None
        time_stop: int | None = None
        if not reduce_only:
            stop_loss = signal.stop_loss_pct if signal.stop_loss_pct is not None else self.params.stop_loss
            take_profit = signal.take_profit_pct if signal.take_profit_pct is not None else self.params.take_profit
            # exits: trailing and time stops, the signal's or the configured defaults (0 = none)
            trailing_stop = signal.trailing_stop_pct
            if trailing_stop is None and self.config.trailing_stop_pct > 0:
                trailing_stop = Decimal(str(self.config.trailing_stop_pct))
            time_stop = signal.time_stop_s if signal.time_stop_s is not None else self.config.time_stop_s or None
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
            post_only=signal.post_only,
            expire_time_ns=signal.expire_time_ns,
            reduce_only=reduce_only,
            signal_id=signal.id,
            stop_loss_pct=stop_loss,
            take_profit_pct=take_profit,
            trailing_stop_pct=trailing_stop,
            time_stop_s=time_stop,
        )

    def _deny(
        self,
        signal: Signal,
        now_ns: int,
        denial: Denial,
        side: Side,
        quantity: Decimal | None = None,
        *,
        coid: str | None = None,
    ) -> OrderDenied:
        return OrderDenied(
            id=derive_id("denied", signal.id),
            ts_event=signal.ts_event,
            ts_init=now_ns,
            correlation_id=signal.correlation_id or signal.id,
            strategy_id=signal.strategy_id,
            instrument_id=signal.instrument_id,
            client_order_id=coid or client_order_id(signal.strategy_id, signal.id),
            reason_code=denial.code,
            reason=denial.reason,
            side=side,
            quantity=denial.quantity if denial.quantity is not None else quantity,
            signal_id=signal.id,
        )

    def _remember(self, signal_id: str) -> None:
        self._seen[signal_id] = None
        while len(self._seen) > self._memory:
            self._seen.popitem(last=False)
