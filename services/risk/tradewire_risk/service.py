"""The risk service: sizes Signals into SubmitOrders (or OrderDenied events) and holds the kill switch.

Only risk publishes on ``ord.cmd.*``. A signal from event time ``t`` is sized only with a
portfolio snapshot whose ``as_of >= t`` (waiting up to ``risk.portfolio_wait_s``); without one
the signal is denied, never passed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Annotated

import msgspec
from fastapi import FastAPI, HTTPException
from msgspec import Meta

from tradewire_common import schemas, subjects
from tradewire_common.bus import Bus, Envelope
from tradewire_common.clock import Clock
from tradewire_common.config import Config
from tradewire_common.http import Actor
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.metrics import LATENCY_BUCKETS
from tradewire_common.schemas import (
    OrderDenied,
    PortfolioSnapshot,
    Signal,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
)
from tradewire_common.service import Service
from tradewire_risk.engine import RiskEngine
from tradewire_risk.state import StoredState, load_state, save_state

log = logging.getLogger(__name__)

STATE_VALUE = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class KillSwitchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    state: TradingState
    reason: Annotated[str, Meta(min_length=1, max_length=500)]


class RiskService(Service):
    name = "risk"

    def __init__(self, config: Config, bus: Bus, *, clock: Clock | None = None) -> None:
        super().__init__(config, bus, clock=clock)
        self.engine = RiskEngine(config.risk)
        self.state = StoredState(TradingState.ACTIVE, "initial", "system", 0)
        self.snapshot: PortfolioSnapshot | None = None
        self._snapshot_changed = asyncio.Condition()
        self._decisions: OrderedDict[str, tuple[str, SubmitOrder | OrderDenied]] = OrderedDict()
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

    async def on_start(self) -> None:
        self.state = await load_state(self.bus)
        self._set_state_gauges()
        log.info("trading state %s (%s)", self.state.state, self.state.reason)
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
        await self.bus.subscribe(subjects.ALL_SIGNALS, self.on_signal, durable="risk-signals")

    def _set_state_gauges(self) -> None:
        self.state_gauge.set(STATE_VALUE[self.state.state])
        self.kill_switch_gauge.set(1 if self.state.state is TradingState.HALTED else 0)
        for state in TradingState:
            self.state_info.labels(state.value).set(1 if state is self.state.state else 0)

    async def on_snapshot(self, envelope: Envelope) -> None:
        snap = envelope.message
        if not isinstance(snap, PortfolioSnapshot):
            return
        async with self._snapshot_changed:
            if self.snapshot is None or snap.as_of >= self.snapshot.as_of:
                self.snapshot = snap
                self.equity_gauge.set(float(snap.equity))
            self._snapshot_changed.notify_all()

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
        cached = self._decisions.get(signal.id)
        if cached is None:
            snapshot = await self.snapshot_covering(signal.ts_event)
            decision = self.engine.evaluate(signal, snapshot, self.state.state, now_ns=self.clock.now_ns())
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
        else:
            self.denials.labels(decision.reason_code.value).inc()
            log.info("denied %s: %s", decision.reason_code, decision.reason)

    async def set_state(self, state: TradingState, reason: str, actor: str) -> StoredState:
        previous = self.state
        now = self.clock.now_ns()
        self.state = StoredState(state, reason, actor, now)
        await save_state(self.bus, self.state)
        self._set_state_gauges()
        log.warning("trading state %s -> %s by %s: %s", previous.state, state, actor, reason)
        await self.bus.publish(
            subjects.RISK_STATE,
            TradingStateChanged(
                id=derive_id("state", now, state, reason), ts_event=now, ts_init=now, scope="global",
                state=state, previous=previous.state, reason=reason, actor=actor,
            ),
        )
        return self.state

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/v1/kill-switch")
        async def get_kill_switch() -> dict[str, object]:
            return _state_body(self.state)

        @app.post("/v1/kill-switch")
        async def post_kill_switch(body: dict[str, object], actor: Actor) -> dict[str, object]:
            try:
                request = msgspec.convert(body, KillSwitchRequest)
            except msgspec.ValidationError as exc:
                raise HTTPException(status_code=422, detail=str(exc)) from None
            return _state_body(await self.set_state(request.state, request.reason, actor))


def _state_body(state: StoredState) -> dict[str, object]:
    return {"state": state.state.value, "reason": state.reason, "actor": state.actor, "since_ns": state.since_ns}


def build(config: Config, bus: Bus, clock: Clock | None = None) -> RiskService:
    return RiskService(config, bus, clock=clock)
