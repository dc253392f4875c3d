"""Automation levels per strategy, enforced where signals become orders (the risk service's hooks).

``signals.strategies[].automation``:

* ``alert``: a signal becomes an ``Alert`` (``alert.info``, severity ``info``, source ``risk``: the notifier
  delivers it, the ledger records it) and nothing else: no sizing, no order, no denial.
* ``semi-auto``: the order the checks produce (and the stage lets through) is parked in risk's approval
  queue (:mod:`tradewire_risk.approvals`) instead of being sent: ``OrderPendingApproval`` on
  ``ord.evt.{strategy}``. Every order waits, reduce-only ones included.
* ``full-auto`` (the default): the order goes straight to execution after the checks.
* ``adaptive``: like ``full-auto`` here; its parameters may change at run time within
  ``param_bounds`` (the signals service enforces that, ``POST /v1/strategies/{id}/params``).

Every order, at decision time and again at approval, also passes the strategy's promotion stage
(:func:`tradewire_risk.stages.check_order`): a denial there is an ``OrderDenied`` like the engine's (same
id and client order id), and the order the engine had recorded in risk's context is taken back out
(or its quantity clipped).

**Clock.** Approval TTLs and stage times use the *automation clock*: ``event`` (replays: the latest event
time risk has seen, i.e. the newest of the portfolio snapshot's ``as_of`` and the signals' event times) or
``wall`` (live: the service clock); ``auto`` picks ``event`` when ``datafeed.replay`` is configured.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import msgspec
from fastapi import FastAPI

from tradewire_common import subjects
from tradewire_common.config import AutomationClock, Config
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    Alert,
    OrderDenied,
    OrderPendingApproval,
    Signal,
    SubmitOrder,
)
from tradewire_risk.approvals import ApprovalQueue
from tradewire_risk.context import RiskContext
from tradewire_risk.promotion import Promotions
from tradewire_risk.stages import StageDenial, check_order, live_venues

if TYPE_CHECKING:
    from tradewire_risk.service import RiskService

log = logging.getLogger(__name__)

ClockMode = Literal["event", "wall"]


def resolve_clock(setting: AutomationClock, config: Config) -> ClockMode:
    if setting == "auto":
        return "event" if config.datafeed.replay else "wall"
    return setting


class EventTime:
    """The automation clock (see the module docstring)."""

    def __init__(self, mode: ClockMode, service: RiskService) -> None:
        self.mode = mode
        self.service = service
        self._latest = 0

    def observe(self, ts_event: int) -> None:
        self._latest = max(self._latest, ts_event)

    def now_ns(self) -> int:
        if self.mode == "wall":
            return self.service.clock.now_ns()
        snapshot = self.service.snapshot
        return max(self._latest, snapshot.as_of if snapshot is not None else 0)


def signal_alert(signal: Signal, now_ns: int) -> Alert:
    """The notification an ``alert``-level strategy's signal becomes."""
    what = f"{signal.side} {signal.instrument_id} at {signal.price}"
    return Alert(
        id=derive_id("automation-alert", signal.id), ts_event=signal.ts_event, ts_init=now_ns,
        correlation_id=signal.correlation_id or signal.id, severity="info",
        title=f"signal from {signal.strategy_id}: {what}",
        body=f"{signal.reason} (confidence {signal.confidence:.2f}; automation level alert: no order was placed)",
        source="risk")


class Automation:
    """Automation levels, approvals and promotion stages of one risk service."""

    def __init__(self, service: RiskService) -> None:
        self.service = service
        config = service.config
        self.levels = {s.id: s.automation for s in config.signals.strategies}
        self.instruments = {s.id: s.instruments for s in config.signals.strategies}
        self.live = live_venues(config)
        self.promotions = Promotions(service, EventTime(resolve_clock(config.promotion.clock, config), service))
        self.approvals = ApprovalQueue(service, self, EventTime(resolve_clock(config.approvals.clock, config), service))
        self.signal_alerts = service.metrics.counter("signal_alerts_total",
                                                     "Signals of alert-level strategies turned into Alerts",
                                                     ("strategy",))
        for strategy_id, level in self.levels.items():
            if level == "alert":
                self.signal_alerts.labels(strategy_id)

    def level(self, strategy_id: str) -> str:
        """A strategy's automation level (``full-auto`` for one that is not configured)."""
        return self.levels.get(strategy_id, "full-auto")

    async def start(self) -> None:
        """Load the stages and the approval queue (after risk's context is rebuilt: parked orders re-enter it)."""
        await self.promotions.start()
        await self.approvals.start()

    async def stop(self) -> None:
        await self.approvals.stop()

    # --- the service's hooks -----------------------------------------------------------------------

    async def intercept(self, signal: Signal) -> bool:
        """True when the signal is handled here: an ``alert``-level strategy's becomes an ``Alert``."""
        self.promotions.clock.observe(signal.ts_event)
        self.approvals.clock.observe(signal.ts_event)
        await self.approvals.sweep()
        if self.level(signal.strategy_id) != "alert":
            return False
        alert = signal_alert(signal, self.service.clock.now_ns())
        await self.service.bus.publish(subjects.alert(alert.severity), alert)
        self.signal_alerts.labels(signal.strategy_id).inc()
        log.info("alert-level strategy %s: %s", signal.strategy_id, alert.title)
        return True

    async def review(
        self, signal: Signal, decision: SubmitOrder | OrderDenied
    ) -> SubmitOrder | OrderDenied | OrderPendingApproval:
        """The engine's decision after the promotion stage; a ``semi-auto`` strategy's order is parked."""
        decision = self.gate(signal, decision, self.service.context_feed.context)
        if isinstance(decision, SubmitOrder) and self.level(signal.strategy_id) == "semi-auto":
            return await self.approvals.park(signal, decision)
        return decision

    def gate(self, signal: Signal, decision: SubmitOrder | OrderDenied, context: RiskContext,
             ) -> SubmitOrder | OrderDenied:
        """Apply the strategy's promotion stage to the engine's decision (recorded in ``context``)."""
        if not isinstance(decision, SubmitOrder):
            return decision
        engine = self.service.engine
        result = check_order(
            decision, self.promotions.stage(signal.strategy_id), live=self.live, config=self.service.config.promotion,
            spec=engine.instrument(decision.instrument_id), price=signal.price, portfolio=self.service.snapshot,
            context=context, follows_fills=engine.params.needs_order_events,
            instruments=self.instruments.get(signal.strategy_id, ()))
        if result is decision:
            return decision
        coid = decision.client_order_id
        if isinstance(result, StageDenial):
            context.open_orders.pop(coid, None)
            return OrderDenied(
                id=derive_id("denied", signal.id), ts_event=decision.ts_event, ts_init=self.service.clock.now_ns(),
                correlation_id=decision.correlation_id, strategy_id=decision.strategy_id,
                instrument_id=decision.instrument_id, client_order_id=coid, reason_code=result.code,
                reason=result.reason, side=decision.side, quantity=decision.quantity, signal_id=signal.id)
        recorded = context.open_orders.get(coid)
        if recorded is not None:
            recorded.quantity, recorded.reduce_only = result.quantity, result.reduce_only
        log.info("stage live-small: %s clipped from %s to %s", coid, decision.quantity, result.quantity)
        return result

    def add_routes(self, app: FastAPI) -> None:
        self.approvals.add_routes(app)
        self.promotions.add_routes(app)

    def describe(self, strategy_id: str) -> dict[str, object]:
        return {"automation": self.level(strategy_id),
                "param_bounds": {name: msgspec.to_builtins(bound) for name, bound in next(
                    (s.param_bounds for s in self.service.config.signals.strategies if s.id == strategy_id), {}
                ).items()}}
