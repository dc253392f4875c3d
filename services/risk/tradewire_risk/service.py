"""The risk service: sizes Signals into SubmitOrders (or OrderDenied events) and holds the kill switch.

Only risk publishes on ``ord.cmd.*``. A signal from event time ``t`` is sized only with a
portfolio snapshot whose ``as_of >= t`` (waiting up to ``risk.portfolio_wait_s``); without one
the signal is denied, never passed.

The trading states per scope, the kill switch (HTTP, ``risk.halt``) and the circuit breakers are in
:mod:`tradewire_risk.kill_switch`: a signal is decided with the most restrictive state of global, its
strategy's and its venue's.

Automation levels (``alert``, ``semi-auto``'s approval queue), promotion stages and their HTTP routes are in
:mod:`tradewire_risk.automation` (hooks: ``intercept`` before a signal is decided, ``review`` after).

Replacing a working order (``POST /v1/orders/{client_order_id}/replace``) is in :mod:`tradewire_risk.replace`:
the service remembers the orders it sent for signals (the newest :data:`SENT_KEPT`) to replace them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from decimal import Decimal

import msgspec
from fastapi import FastAPI, HTTPException

from tradewire_common import schemas, subjects
from tradewire_common.bus import Bus, Envelope
from tradewire_common.clock import Clock
from tradewire_common.config import Config
from tradewire_common.http import Actor
from tradewire_common.ids import split_instrument_id
from tradewire_common.metrics import LATENCY_BUCKETS
from tradewire_common.schemas import (
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderPendingApproval,
    OrderRejected,
    OrderReplaced,
    PortfolioSnapshot,
    ReplaceOrder,
    Signal,
    SubmitOrder,
)
from tradewire_common.service import Service
from tradewire_risk.automation import Automation
from tradewire_risk.context import OpenOrder
from tradewire_risk.engine import RiskEngine
from tradewire_risk.feed import ContextFeed
from tradewire_risk.kill_switch import TradingControl
from tradewire_risk.replace import ReplaceError, ReplaceRequest, decide, replacement_id

log = logging.getLogger(__name__)

#: Orders sent for signals that can be replaced (client order id -> the order and the price it was decided at).
SENT_KEPT = 10_000


class RiskService(Service):
    name = "risk"
    owns_trading_state = True

    def __init__(self, config: Config, bus: Bus, *, clock: Clock | None = None) -> None:
        super().__init__(config, bus, clock=clock)
        self.engine = RiskEngine(config.risk)
        # open orders, fills by strategy, prices, equity history: fed from the bus, rebuilt from the ledger
        self.context_feed = ContextFeed(config, bus, self.engine)
        self.snapshot: PortfolioSnapshot | None = None
        self._snapshot_changed = asyncio.Condition()
        self._decisions: OrderedDict[str, tuple[str, SubmitOrder | OrderDenied | OrderPendingApproval]] = (
            OrderedDict())
        self.sent: OrderedDict[str, tuple[SubmitOrder, Decimal]] = OrderedDict()
        self._replacements: OrderedDict[str, tuple[str, ReplaceOrder | OrderDenied]] = OrderedDict()
        #: Replacements sent and not answered yet: new client order id -> the old order as it was open in the
        #: context (put back if execution rejects the replacement while the old order keeps working).
        self._superseded: OrderedDict[str, OpenOrder] = OrderedDict()
        m = self.metrics
        self.orders_out = m.counter("orders_submitted_total", "SubmitOrders sent to execution", ("venue",))
        self.denials = m.counter("orders_denied_total", "Signals denied, by reason code", ("reason",))
        self.state_gauge = m.gauge("trading_state_value", "Global trading state: 0 ACTIVE, 1 REDUCING, 2 HALTED")
        self.kill_switch_gauge = m.gauge("kill_switch_engaged_info", "1 while the kill switch is engaged")
        self.equity_gauge = m.gauge("portfolio_equity_value", "Equity in the last portfolio snapshot")
        self.state_info = m.gauge("trading_state_info", "1 for the current trading state, 0 for the others", ("state",))
        self.limits = m.gauge("limit_ratio", "Configured risk limits as fractions of equity", ("limit",))
        for limit in ("max_position_pct", "max_exposure_pct", "fraction"):
            self.limits.labels(limit).set(getattr(config.risk, limit))
        self.decision_latency = m.histogram(
            "decision_latency_seconds", "From a signal's creation to risk's order or denial (portfolio wait included)",
            buckets=LATENCY_BUCKETS,
        )
        # trading states, kill switch, circuit breakers (the states are loaded before on_start)
        self.control = TradingControl(self)
        # automation levels, approval queue, promotion stages
        self.automation = Automation(self)

    async def on_start(self) -> None:
        await self.control.start()
        await self.bus.subscribe(subjects.PORTFOLIO_SNAPSHOT, self.on_snapshot)
        # a restarted risk service must not wait for the next bar to know the account
        for raw in await self.bus.gather(subjects.PORTFOLIO_REQUEST, b"", expected=1, timeout=1.0):
            if not raw:
                continue  # the ledger has no snapshot yet
            try:
                snap = schemas.decode(raw)
            except msgspec.DecodeError:
                log.warning("ignoring an undecodable portfolio reply")
                continue
            if isinstance(snap, PortfolioSnapshot) and (self.snapshot is None or snap.as_of >= self.snapshot.as_of):
                self.snapshot = snap
        await self.context_feed.start()
        await self.automation.start()  # stages and the approval queue (parked orders re-enter the context)
        await self.bus.subscribe(subjects.ALL_SIGNALS, self.on_signal, durable="risk-signals")
        await self.bus.subscribe(subjects.STRATEGY_ORDER_EVENTS, self.on_replacement_outcome)

    async def on_stop(self) -> None:
        await self.automation.stop()
        await self.control.stop()
        await self.context_feed.stop()

    async def on_snapshot(self, envelope: Envelope) -> None:
        snap = envelope.message
        if not isinstance(snap, PortfolioSnapshot):
            return
        # breakers first: a signal waiting for this snapshot is decided with what it tripped
        tripped = self.control.apply_trips(self.control.breakers.on_snapshot(snap))
        self.context_feed.on_snapshot(snap)
        async with self._snapshot_changed:
            if self.snapshot is None or snap.as_of >= self.snapshot.as_of:
                self.snapshot = snap
                self.equity_gauge.set(float(snap.equity))
            self._snapshot_changed.notify_all()
        await self.control.publish(tripped)

    async def snapshot_covering(self, ts_event: int) -> PortfolioSnapshot | None:
        """The latest snapshot once it covers ``ts_event``; None if none does in time."""

        def covers() -> bool:
            return self.snapshot is not None and self.snapshot.as_of >= ts_event

        async with self._snapshot_changed:
            try:
                await asyncio.wait_for(self._snapshot_changed.wait_for(covers),
                                       self.config.risk.portfolio_wait_s)
            except TimeoutError:
                log.warning("no portfolio snapshot covers %d; denying", ts_event)
                return None
            return self.snapshot

    async def on_signal(self, envelope: Envelope) -> None:
        signal = envelope.message
        if not isinstance(signal, Signal):
            return
        if await self.automation.intercept(signal):  # an alert-level strategy: an Alert, no order
            return
        cached = self._decisions.get(signal.id)
        fresh = cached is None
        if cached is None:
            snapshot = await self.snapshot_covering(signal.ts_event)
            await self.context_feed.wait_covering(signal)
            decision: SubmitOrder | OrderDenied | OrderPendingApproval
            decision = self.engine.evaluate(signal, snapshot, self.control.state_for(signal),
                                            now_ns=self.clock.now_ns(), context=self.context_feed.context)
            # the promotion stage; a semi-auto strategy's order is parked (OrderPendingApproval)
            decision = await self.automation.review(signal, decision)
            self.decision_latency.observe(max(0, self.clock.now_ns() - signal.ts_init) / 1e9)
            if isinstance(decision, SubmitOrder):
                _symbol, venue = split_instrument_id(decision.instrument_id)
                cached = (subjects.order_command(venue), decision)
            else:
                cached = (subjects.order_event(decision.strategy_id), decision)
            self._decisions[signal.id] = cached
            while len(self._decisions) > 10_000:
                self._decisions.popitem(last=False)
        # a redelivered signal republishes the same decision: same ids, so JetStream drops repeats
        subject, decision = cached
        await self.bus.publish(subject, decision)
        if isinstance(decision, SubmitOrder):
            self.orders_out.labels(subject.rsplit(".", 1)[-1]).inc()
            self._remember_sent(decision, signal.price)
            if fresh:
                await self.control.order_sent(decision)
        elif isinstance(decision, OrderDenied):
            self.denials.labels(decision.reason_code.value).inc()
            log.info("denied %s: %s", decision.reason_code, decision.reason)

    def _remember_sent(self, order: SubmitOrder, price: Decimal) -> None:
        self.sent[order.client_order_id] = (order, price)
        while len(self.sent) > SENT_KEPT:
            self.sent.popitem(last=False)

    async def replace(self, client_order_id: str, request: ReplaceRequest, actor: str) -> dict[str, object]:
        """Decide a replacement (:mod:`tradewire_risk.replace`) and publish the decision; a repeat of the same
        request publishes the same decision again."""
        known = self.sent.get(client_order_id)
        if known is None:
            raise ReplaceError(404, f"order {client_order_id} is not an order risk sent (since it started)")
        new_id = replacement_id(client_order_id, request)
        cached = self._replacements.get(new_id)
        if cached is None:
            order, price = known
            context = self.context_feed.context
            old_open = context.open_orders.get(client_order_id)
            state = self.control.view.effective(order.strategy_id, split_instrument_id(order.instrument_id)[1])
            decision = decide(self.engine, order, price, request, self.snapshot, state, context, self.clock.now_ns())
            if isinstance(decision, ReplaceOrder):
                subject = subjects.order_command(split_instrument_id(order.instrument_id)[1])
                if old_open is not None:
                    self._superseded[new_id] = old_open
                    while len(self._superseded) > SENT_KEPT:
                        self._superseded.popitem(last=False)
                replaced = context.open_orders.get(new_id)
                if replaced is not None:
                    self._remember_sent(msgspec.structs.replace(
                        order, client_order_id=new_id, quantity=replaced.quantity,
                        limit_price=decision.limit_price or order.limit_price,
                        trigger_price=decision.trigger_price or order.trigger_price), price)
            else:
                subject = subjects.order_event(decision.strategy_id)
            cached = self._replacements[new_id] = (subject, decision)
            while len(self._replacements) > SENT_KEPT:
                self._replacements.popitem(last=False)
            log.warning("replace %s -> %s by %s: %s", client_order_id, new_id, actor,
                        "sent" if isinstance(decision, ReplaceOrder) else f"denied ({decision.reason})",
                        extra={"audit": "replace", "actor": actor, "client_order_id": client_order_id})
        subject, decision = cached
        await self.bus.publish(subject, decision)
        if isinstance(decision, OrderDenied):
            self.denials.labels(decision.reason_code.value).inc()
            return {"decision": "DENIED", "client_order_id": client_order_id, "new_client_order_id": new_id,
                    "reason_code": decision.reason_code.value, "reason": decision.reason}
        return {"decision": "REPLACE", "client_order_id": client_order_id, "new_client_order_id": new_id,
                "command": msgspec.to_builtins(decision)}

    async def on_replacement_outcome(self, envelope: Envelope) -> None:
        """Execution's answer to a replacement: ``OrderRejected`` on the new id while the old order still works
        (a refused amend) puts the old order back into the context; anything else settles it."""
        event = envelope.message
        if isinstance(event, OrderReplaced):
            self._superseded.pop(event.new_client_order_id, None)
        elif isinstance(event, OrderCanceled | OrderExpired | OrderFilled) and not getattr(event, "partial", False):
            for new_id, old in list(self._superseded.items()):  # the old order ended: nothing to put back
                if old.client_order_id == event.client_order_id:
                    del self._superseded[new_id]
        elif isinstance(event, OrderRejected) and event.client_order_id in self._superseded:
            old = self._superseded.pop(event.client_order_id)
            context = self.context_feed.context
            if old.client_order_id not in context.open_orders:
                context.open_orders[old.client_order_id] = old
                log.warning("replacement %s rejected (%s): %s is open again", event.client_order_id, event.reason,
                            old.client_order_id)

    def add_routes(self, app: FastAPI) -> None:
        self.control.add_routes(app)  # GET/POST /v1/trading-state, /v1/kill-switch
        self.automation.add_routes(app)  # /v1/approvals, /v1/strategies

        @app.post("/v1/orders/{client_order_id}/replace")
        async def replace_order(client_order_id: str, body: dict[str, object], actor: Actor) -> dict[str, object]:
            try:
                request = msgspec.convert(body, ReplaceRequest, strict=False)
            except (msgspec.ValidationError, ValueError) as exc:
                raise HTTPException(status_code=422, detail=str(exc)) from None
            try:
                return await self.replace(client_order_id, request, actor)
            except ReplaceError as exc:
                raise HTTPException(status_code=exc.status, detail=exc.detail) from None


def build(config: Config, bus: Bus, clock: Clock | None = None) -> RiskService:
    return RiskService(config, bus, clock=clock)
