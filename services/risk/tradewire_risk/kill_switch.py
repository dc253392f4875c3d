"""Risk's control of the trading states: the kill switch, the per-scope states and the circuit breakers.

Every change goes through :meth:`TradingControl.change` (people) or :meth:`TradingControl.apply_trips`
(circuit breakers, :mod:`tradewire_risk.breakers`):

* **People**: ``POST /v1/trading-state`` ``{scope, state, reason, flatten}`` and ``POST /v1/kill-switch``
  ``{state, reason, scope = "global", flatten}`` (both need the API token; the actor is recorded),
  ``tradewire kill-switch engage|release|status`` (HTTP, or ``--via nats``), and a request on
  ``risk.halt`` (:class:`~tradewire_common.trading_state.HaltRequest`; only the operator NATS user may
  publish there, so the actor is ``nats:operator``). A change names a configured scope (``global``,
  ``strategy:<id>``, ``venue:<name>``); leaving HALTED needs a reason; ``flatten`` needs HALTED on
  ``global`` or a venue.
* **Breakers**: a trip moves its scope (an unconfigured strategy's or venue's: ``global``) to the
  breaker's state when that is more restrictive than the scope's, and never releases it. Every trip
  is logged, counted in ``tradewire_risk_breaker_trips_total{breaker}`` and published as an ``Alert``
  (``alert.critical`` for HALTED, ``alert.warning`` for REDUCING) for the notifier. A person moving a
  scope to a less restrictive state re-arms its breakers.

Each change is stored under the scope's KV key (so it survives restarts), logged as an audit line
(``audit = "trading_state"`` with scope, states, actor and reason) and published as a
``TradingStateChanged`` (scope, state, previous, reason, actor, trigger) on ``risk.state``, which every
service follows. A breaker's new state is in effect in memory at once (before the signal waiting for
the snapshot that tripped it is decided), then stored and published.

**Flatten.** Only risk publishes order commands, so the kill switch closes positions itself: with
``flatten`` it sends, for every position of the latest portfolio snapshot (of the venue's
instruments, for a venue scope), a reduce-only MARKET ``SubmitOrder`` for the whole quantity with
client order id ``tw-fl-…`` (:func:`~tradewire_common.trading_state.flatten_client_order_id`) and
event time the snapshot's ``as_of`` (it fills on the venue's next bar). Execution lets these through a
HALTED scope and does not cancel them. An order is attributed to the one configured strategy that
trades the instrument (so the paper venue's brackets of that strategy go flat with it), else to
``kill-switch``. Positions come from the ledger's snapshot: fills of orders still in flight when the
halt is engaged are not in it (engage again with ``flatten`` to close what they left).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, TypeVar

import msgspec
from fastapi import FastAPI, HTTPException
from msgspec import Meta

from tradewire_common import subjects
from tradewire_common.bus import Envelope
from tradewire_common.http import Actor
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.schemas import (
    Alert,
    Bar,
    OrderRejected,
    OrderType,
    Side,
    Signal,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
    VenueStatus,
)
from tradewire_common.trading_state import (
    GLOBAL,
    RANK,
    STRATEGY_PREFIX,
    VENUE_PREFIX,
    HaltRequest,
    StoredState,
    flatten_client_order_id,
)
from tradewire_risk.breakers import BREAKERS, CircuitBreakers, Trip
from tradewire_risk.state import save_state

if TYPE_CHECKING:
    from tradewire_risk.service import RiskService

log = logging.getLogger(__name__)

#: The strategy id of flatten orders for an instrument that no single configured strategy trades.
FLATTEN_STRATEGY = "kill-switch"
#: Seconds between two stale-data checks on the wall clock.
STALE_CHECK_S = 1.0
REASON_MAX = 500
_R = TypeVar("_R")


class KillSwitchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/kill-switch``: the global scope unless ``scope`` says otherwise."""

    state: TradingState
    reason: Annotated[str, Meta(min_length=1, max_length=REASON_MAX)]
    scope: str = GLOBAL
    flatten: bool = False


class StateRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/trading-state``."""

    scope: str
    state: TradingState
    reason: Annotated[str, Meta(max_length=REASON_MAX)] = ""
    flatten: bool = False


class StateChangeError(ValueError):
    """A state change was refused (unknown scope, no reason to leave HALTED, flatten not possible)."""


@dataclass(frozen=True, slots=True)
class _Pending:
    """A breaker's change, in effect in memory, still to store and publish."""

    trip: Trip
    scope: str
    stored: StoredState | None
    previous: TradingState


class TradingControl:
    """The trading states of one risk service (see the module docstring)."""

    def __init__(self, service: RiskService) -> None:
        self.service = service
        config = service.config
        self.view = service.trading
        self._lock = asyncio.Lock()
        strategies = {s.id: s.instruments for s in config.signals.strategies}
        clock = config.risk.breakers.stale_data_clock
        if clock == "auto":
            clock = "event" if config.datafeed.replay else "wall"
        self.breakers = CircuitBreakers(config.risk.breakers, strategies=strategies, clock=clock)
        self._traders: dict[str, list[str]] = {}
        for s in config.signals.strategies:
            for instrument in s.instruments:
                self._traders.setdefault(instrument, []).append(s.id)
        self._stale_task: asyncio.Task[None] | None = None
        self.trips = service.metrics.counter("breaker_trips_total", "Circuit breaker trips", ("breaker",))
        for name in BREAKERS:
            self.trips.labels(name)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve ``risk.halt`` and subscribe to what the enabled breakers watch (the states are loaded)."""
        self.refresh_gauges()
        for scope, stored in self.view.states.items():
            log.info("trading state of %s: %s (%s)", scope, stored.state, stored.reason)
        bus = self.service.bus
        await bus.serve(subjects.RISK_HALT, self.answer_halt)
        if self.breakers.watches_bars:
            await bus.subscribe(subjects.ALL_BARS, self.on_bar)
            if self.breakers.clock == "wall":
                self._stale_task = asyncio.create_task(self._check_stale_forever(), name="risk-stale-data")
        if self.breakers.watches_rejects:
            await bus.subscribe(subjects.STRATEGY_ORDER_EVENTS, self.on_order_event)
        if self.breakers.watches_venues:
            await bus.subscribe(subjects.ALL_VENUE_STATUS, self.on_venue_status)

    async def stop(self) -> None:
        if self._stale_task is not None:
            self._stale_task.cancel()
            await asyncio.gather(self._stale_task, return_exceptions=True)

    # --- reading -----------------------------------------------------------------------------------

    def state_for(self, signal: Signal) -> TradingState:
        """The effective state of a signal: the most restrictive of global, its strategy's and its venue's."""
        try:
            _symbol, venue = split_instrument_id(signal.instrument_id)
        except ValueError:
            venue = ""
        return self.view.effective(signal.strategy_id, venue or None)

    def body(self, scope: str) -> dict[str, object]:
        stored = self.view.get(scope)
        return {"scope": scope, "state": stored.state.value, "reason": stored.reason, "actor": stored.actor,
                "since_ns": stored.since_ns, "trigger": stored.trigger}

    def all_bodies(self) -> dict[str, object]:
        return {"scopes": {scope: self.body(scope) for scope in self.view.scopes}}

    def refresh_gauges(self) -> None:
        service = self.service
        service.show_trading_state()
        state = self.view.get(GLOBAL).state
        service.state_gauge.set(RANK[state])
        service.kill_switch_gauge.set(1 if state is TradingState.HALTED else 0)
        for each in TradingState:
            service.state_info.labels(each.value).set(1 if each is state else 0)

    # --- people ------------------------------------------------------------------------------------

    async def change(
        self, scope: str, state: TradingState, reason: str, actor: str, *, flatten: bool = False,
    ) -> dict[str, object]:
        """Set a scope's state for a person; raises :class:`StateChangeError` when refused."""
        reason = reason.strip()
        if scope not in self.view.states:
            raise StateChangeError(f"unknown scope {scope!r}; configured: {', '.join(self.view.scopes)}")
        if len(reason) > REASON_MAX:
            raise StateChangeError(f"reason longer than {REASON_MAX} characters")
        if flatten and (state is not TradingState.HALTED or scope.startswith(STRATEGY_PREFIX)):
            raise StateChangeError("flatten goes with HALTED on global or a venue (positions are per instrument, "
                                   "not per strategy)")
        async with self._lock:
            previous = self.view.get(scope)
            if previous.state is TradingState.HALTED and state is not TradingState.HALTED and not reason:
                raise StateChangeError("leaving HALTED needs a reason")
            now = self.service.clock.now_ns()
            stored = StoredState(state, reason, actor, now)
            self.view.states[scope] = stored
            self.refresh_gauges()
            if RANK[state] < RANK[previous.state]:
                self.breakers.rearm(scope, now)
            change = await self._store_and_publish(scope, stored, previous.state, now)
            body = self.body(scope)
            if flatten:
                body["flatten_orders"] = await self._flatten(scope, change)
        return body

    async def answer_halt(self, raw: bytes) -> bytes:
        """``risk.halt``: change (or, without ``state``, report) a scope's state for the operator."""
        try:
            request = msgspec.json.decode(raw, type=HaltRequest)
            if request.state is None:
                if request.scope not in self.view.states:
                    raise StateChangeError(f"unknown scope {request.scope!r}")
                body = self.body(request.scope)
            else:
                body = await self.change(request.scope, request.state, request.reason, "nats:operator",
                                         flatten=request.flatten)
        except (msgspec.DecodeError, StateChangeError) as exc:
            log.warning("risk.halt request refused: %s", exc)
            return msgspec.json.encode({"error": str(exc)})
        return msgspec.json.encode(body)

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/v1/trading-state")
        async def get_trading_state() -> dict[str, object]:
            return self.all_bodies()

        @app.post("/v1/trading-state")
        async def post_trading_state(body: dict[str, object], actor: Actor) -> dict[str, object]:
            request = _convert(body, StateRequest)
            return await self._change_or_422(request.scope, request.state, request.reason, actor, request.flatten)

        @app.get("/v1/kill-switch")
        async def get_kill_switch() -> dict[str, object]:
            return self.body(GLOBAL)

        @app.post("/v1/kill-switch")
        async def post_kill_switch(body: dict[str, object], actor: Actor) -> dict[str, object]:
            request = _convert(body, KillSwitchRequest)
            return await self._change_or_422(request.scope, request.state, request.reason, actor, request.flatten)

    async def _change_or_422(
        self, scope: str, state: TradingState, reason: str, actor: str, flatten: bool
    ) -> dict[str, object]:
        try:
            return await self.change(scope, state, reason, actor, flatten=flatten)
        except StateChangeError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None

    # --- breakers ----------------------------------------------------------------------------------

    def apply_trips(self, trips: list[Trip]) -> list[_Pending]:
        """Put the trips' states in effect in memory now; :meth:`publish` stores and announces them."""
        pending: list[_Pending] = []
        now = self.service.clock.now_ns()
        for trip in trips:
            scope = trip.scope if trip.scope in self.view.states else GLOBAL
            previous = self.view.get(scope)
            stored = None
            if RANK[trip.state] > RANK[previous.state]:
                reason = trip.reason if scope == trip.scope else f"{trip.reason} ({trip.scope} is not configured)"
                stored = StoredState(trip.state, reason, f"breaker:{trip.breaker}", now, trip.breaker)
                self.view.states[scope] = stored
            self.trips.labels(trip.breaker).inc()
            log.error("circuit breaker %s tripped: %s %s -> %s: %s", trip.breaker, scope, previous.state,
                      stored.state if stored else previous.state, trip.reason,
                      extra={"breaker": trip.breaker, "scope": scope, "ts_event": trip.ts_event})
            pending.append(_Pending(trip, scope, stored, previous.state))
        if pending:
            self.refresh_gauges()
        return pending

    async def publish(self, pending: list[_Pending]) -> None:
        """Store and publish the breakers' changes, and alert."""
        for item in pending:
            trip = item.trip
            severity = "critical" if trip.state is TradingState.HALTED else "warning"
            now = self.service.clock.now_ns()
            async with self._lock:
                if item.stored is not None and self.view.states.get(item.scope) is item.stored:
                    await self._store_and_publish(item.scope, item.stored, item.previous, item.stored.since_ns)
            await self.service.bus.publish(subjects.alert(severity), Alert(
                id=derive_id("breaker-alert", trip.breaker, item.scope, trip.ts_event, trip.reason),
                ts_event=trip.ts_event, ts_init=now, severity=severity,
                title=f"circuit breaker {trip.breaker} tripped: {item.scope} {trip.state}",
                body=trip.reason, source="risk"))

    async def trip(self, trips: list[Trip]) -> None:
        if trips:
            await self.publish(self.apply_trips(trips))

    async def order_sent(self, order: SubmitOrder) -> None:
        """Risk sent ``order`` (reject rate and runaway breakers)."""
        _symbol, venue = split_instrument_id(order.instrument_id)
        await self.trip(self.breakers.on_order(order.strategy_id, venue, order.ts_event))

    async def on_bar(self, envelope: Envelope) -> None:
        bar = envelope.message
        if isinstance(bar, Bar):
            await self.trip(self.breakers.on_bar(bar.instrument_id, bar.interval, bar.ts_event))

    async def on_order_event(self, envelope: Envelope) -> None:
        event = envelope.message
        if isinstance(event, OrderRejected):
            _symbol, venue = split_instrument_id(event.instrument_id)
            await self.trip(self.breakers.on_reject(venue, event.ts_event))

    async def on_venue_status(self, envelope: Envelope) -> None:
        status = envelope.message
        if isinstance(status, VenueStatus):
            await self.trip(self.breakers.on_venue_status(status.venue, status.connected, status.ts_event,
                                                          status.reason))

    async def _check_stale_forever(self) -> None:
        while True:
            await asyncio.sleep(STALE_CHECK_S)
            try:
                await self.trip(self.breakers.check_stale(self.service.clock.now_ns()))
            except Exception:  # a failed publish is retried on the next check's trips; keep checking
                log.exception("stale data check failed")

    # --- internals ---------------------------------------------------------------------------------

    async def _store_and_publish(
        self, scope: str, stored: StoredState, previous: TradingState, now: int
    ) -> TradingStateChanged:
        await save_state(self.service.bus, stored, scope)
        log.warning("trading state of %s: %s -> %s by %s: %s", scope, previous, stored.state, stored.actor,
                    stored.reason, extra={"audit": "trading_state", "scope": scope, "state": stored.state.value,
                                          "previous": previous.value, "actor": stored.actor,
                                          "reason": stored.reason, "trigger": stored.trigger})
        change = TradingStateChanged(
            id=derive_id("state", scope, now, stored.state, stored.reason, stored.actor), ts_event=now, ts_init=now,
            scope=scope, state=stored.state, previous=previous, reason=stored.reason, actor=stored.actor,
            trigger=stored.trigger,
        )
        await self.service.bus.publish(subjects.RISK_STATE, change)
        return change

    async def _flatten(self, scope: str, change: TradingStateChanged) -> list[str]:
        """Reduce-only market orders closing the snapshot's positions in ``scope``; their client order ids."""
        snapshot = self.service.snapshot
        if snapshot is None:
            log.error("flatten: no portfolio snapshot, no position closed")
            return []
        only_venue = scope.removeprefix(VENUE_PREFIX) if scope.startswith(VENUE_PREFIX) else None
        sent: list[str] = []
        now = self.service.clock.now_ns()
        for position in snapshot.positions:
            if position.quantity == 0:
                continue
            _symbol, venue = split_instrument_id(position.instrument_id)
            if only_venue is not None and venue != only_venue:
                continue
            traders = self._traders.get(position.instrument_id, [])
            order = SubmitOrder(
                id=derive_id("flatten-order", change.id, position.instrument_id), ts_event=snapshot.as_of,
                ts_init=now, correlation_id=change.id,
                strategy_id=traders[0] if len(traders) == 1 else FLATTEN_STRATEGY,
                instrument_id=position.instrument_id,
                client_order_id=flatten_client_order_id(change.id, position.instrument_id),
                side=Side.SELL if position.quantity > 0 else Side.BUY, order_type=OrderType.MARKET,
                quantity=abs(position.quantity), reduce_only=True,
            )
            await self.service.bus.publish(subjects.order_command(venue), order)
            self.service.orders_out.labels(venue).inc()
            log.warning("flatten: %s %s %s (%s)", order.side, order.quantity, order.instrument_id,
                        order.client_order_id, extra={"audit": "flatten", "scope": scope})
            sent.append(order.client_order_id)
        return sent


def _convert(body: dict[str, object], kind: type[_R]) -> _R:
    try:
        return msgspec.convert(body, kind)
    except msgspec.ValidationError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
