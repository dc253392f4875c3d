"""The notifier service: delivers alerts and trade notifications through apprise, and evaluates
price alert rules on market data (it never trades).

* Alert events (``alert.*``, durable) of every service, its own price alerts included, are delivered;
* order events (``ord.evt.*``, durable) give ``fill``, ``order_rejected`` and ``denial_burst``
  notifications, the trading state (``risk.state``, durable) a ``trading_state`` one;
* the latest portfolio snapshot (``pf.snapshot``) makes the ``daily_summary`` at ``notifier.daily_summary_time``;
* bars, trades and quotes (``md.bar.>``, ``md.trade.>``, ``md.quote.>``) drive the price alert rules: a
  rule that fires publishes an ``Alert`` on ``alert.{severity}`` (the ledger records it, and the
  notifier's own Alert consumer delivers it);
* Alertmanager's webhook (``POST /v1/alertmanager``) is delivered directly, not through the broker:
  it may be the broker that is down.

Rules live in the JetStream KV bucket (see ``store``). Delivery problems never reach the handlers:
the dispatcher queues per URL, retries, counts and records (``GET /v1/deliveries``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from fastapi import FastAPI, Header, HTTPException, Request

from tradewire_common import subjects
from tradewire_common.bus import Bus, Envelope
from tradewire_common.clock import Clock
from tradewire_common.config import Config
from tradewire_common.http import Actor
from tradewire_common.ids import new_id
from tradewire_common.schemas import (
    Alert,
    Bar,
    OrderDenied,
    OrderFilled,
    OrderRejected,
    PortfolioSnapshot,
    Quote,
    TradeTick,
    TradingStateChanged,
)
from tradewire_common.security import api_token, read_secret, token_matches
from tradewire_common.service import Service
from tradewire_notifier import messages
from tradewire_notifier.delivery import Dispatcher, Notification, level_of, load_urls, quiet_apprise
from tradewire_notifier.rules import AlertRule, RuleEngine, RuleError, RuleRequest, build_rule
from tradewire_notifier.store import load_rules, save_rules

log = logging.getLogger(__name__)

#: A token that only lets Alertmanager post to ``/v1/alertmanager`` (the API token works there too).
WEBHOOK_TOKEN_ENV = "TRADEWIRE_NOTIFIER_WEBHOOK_TOKEN"
#: How long ``POST /v1/test-notification`` waits for the outcome before answering "pending".
PROBE_WAIT_S = 60.0


def require_webhook_token(authorization: Annotated[str | None, Header()] = None) -> str:
    """``Authorization: Bearer`` with the API token or ``$TRADEWIRE_NOTIFIER_WEBHOOK_TOKEN(_FILE)``."""
    scheme, _, presented = (authorization or "").partition(" ")
    presented = presented.strip()
    if scheme.lower() == "bearer":
        if token_matches(presented, api_token()):
            return "api-token"
        if token_matches(presented, read_secret(WEBHOOK_TOKEN_ENV)):
            return "webhook-token"
    raise HTTPException(status_code=401, detail="missing or invalid bearer token",
                        headers={"WWW-Authenticate": "Bearer"})


class ProbeRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    title: str = "Tradewire test notification"
    body: str = "If you can read this, the notifier reaches this destination."
    severity: str = "info"


class NotifierService(Service):
    name = "notifier"

    def __init__(self, config: Config, bus: Bus, *, clock: Clock | None = None,
                 urls: Sequence[str] | None = None) -> None:
        super().__init__(config, bus, clock=clock)
        nc = config.notifier
        quiet_apprise()
        self.dispatcher = Dispatcher(nc, load_urls(nc) if urls is None else list(urls), self.metrics,
                                     now_ns=self.clock.now_ns)
        self.engine = RuleEngine()
        self.bursts = messages.DenialBursts(nc.denial_burst_count, nc.denial_burst_window_s)
        self.tally = messages.Tally()
        self.snapshot: PortfolioSnapshot | None = None
        self.summary_equity: Decimal | None = None
        self._lock = asyncio.Lock()
        self._summary_task: asyncio.Task[None] | None = None
        self.price_alerts = self.metrics.counter("price_alerts_total", "Price alert rules that fired")
        self.metrics.gauge("alert_rules_value", "Price alert rules").set_function(lambda: len(self.engine.rules))

    # --- lifecycle ---------------------------------------------------------------------------
    async def on_start(self) -> None:
        loaded = await load_rules(self.bus, self.engine)
        log.info("notifier starting", extra={"rules": loaded, "urls": [t.label for t in self.dispatcher.targets]})
        self.dispatcher.start()
        await self.bus.subscribe(subjects.ALL_ALERTS, self.on_alert, durable="notifier-alerts")
        await self.bus.subscribe(subjects.STRATEGY_ORDER_EVENTS, self.on_order_event, durable="notifier-orders")
        await self.bus.subscribe(subjects.RISK_STATE, self.on_state, durable="notifier-state")
        await self.bus.subscribe(subjects.PORTFOLIO_SNAPSHOT, self.on_snapshot)
        await self.bus.subscribe(subjects.ALL_BARS, self.on_market_data)
        await self.bus.subscribe(subjects.ALL_TRADES, self.on_market_data)
        await self.bus.subscribe(subjects.ALL_QUOTES, self.on_market_data)
        if self.config.notifier.daily_summary_time and "daily_summary" in self.config.notifier.kinds:
            self._summary_task = asyncio.create_task(self._summaries(), name="daily-summary")

    async def on_stop(self) -> None:
        if self._summary_task is not None:
            self._summary_task.cancel()
            await asyncio.gather(self._summary_task, return_exceptions=True)
        await self.dispatcher.stop()

    def fresh(self, ts_init: int) -> bool:
        return self.clock.now_ns() - ts_init <= self.config.notifier.max_event_age_s * 1e9

    # --- events ------------------------------------------------------------------------------
    async def on_alert(self, envelope: Envelope) -> None:
        if isinstance(envelope.message, Alert):
            self.dispatcher.submit(messages.from_alert(envelope.message))

    async def on_order_event(self, envelope: Envelope) -> None:
        event = envelope.message
        fresh = self.fresh(event.ts_init)
        if isinstance(event, OrderFilled):
            self.tally.fills += fresh
            self.dispatcher.submit(messages.from_fill(event))
        elif isinstance(event, OrderRejected):
            self.tally.rejections += fresh
            self.dispatcher.submit(messages.from_rejected(event))
        elif isinstance(event, OrderDenied):
            self.tally.denials += fresh
            burst = self.bursts.observe(event)
            if burst is not None:
                self.dispatcher.submit(burst)

    async def on_state(self, envelope: Envelope) -> None:
        event = envelope.message
        if isinstance(event, TradingStateChanged):
            if self.fresh(event.ts_init):
                self.tally.state = event.state.value
            self.dispatcher.submit(messages.from_state(event))

    async def on_snapshot(self, envelope: Envelope) -> None:
        snapshot = envelope.message
        if isinstance(snapshot, PortfolioSnapshot) and (self.snapshot is None or snapshot.as_of >= self.snapshot.as_of):
            self.snapshot = snapshot

    async def on_market_data(self, envelope: Envelope) -> None:
        message = envelope.message
        if not isinstance(message, Bar | TradeTick | Quote):
            return
        if not self.engine.has_rules_for(message.instrument_id):
            return
        async with self._lock:
            if isinstance(message, Bar):
                firings, changed = self.engine.on_bar(message.instrument_id, message.interval, message.close,
                                                      message.id, message.ts_event)
            elif isinstance(message, TradeTick):
                firings, changed = self.engine.on_price(message.instrument_id, message.price, message.id,
                                                        message.ts_event, "trade")
            else:
                firings, changed = self.engine.on_price(message.instrument_id, (message.bid + message.ask) / 2,
                                                        message.id, message.ts_event, "quote")
            now = self.clock.now_ns()
            for firing in firings:
                self.engine.states[firing.rule.id].last_fired_ns = now
                alert = messages.price_alert(firing, now)
                log.info("price alert", extra={"rule": firing.rule.id, "title": alert.title})
                await self.bus.publish(subjects.alert(firing.rule.severity), alert)
                self.price_alerts.inc()
                self.tally.price_alerts += 1
            if changed:
                await save_rules(self.bus, self.engine)

    # --- the daily summary -------------------------------------------------------------------
    async def _summaries(self) -> None:
        at = self.config.notifier.daily_summary_time
        while True:
            now = self.clock.now_ns()
            await asyncio.sleep((messages.next_summary_ns(now, at) - now) / 1e9)
            try:
                self.send_summary()
            except Exception:
                log.exception("daily summary failed")

    def send_summary(self) -> dict[str, Any]:
        note = messages.daily_summary(self.snapshot, self.tally, self.summary_equity, self.clock.now_ns())
        self.tally = messages.Tally(state=self.tally.state)
        if self.snapshot is not None:
            self.summary_equity = self.snapshot.equity
        return self._submitted(note)

    def _submitted(self, note: Notification) -> dict[str, Any]:
        record = self.dispatcher.submit(note)
        if record is None:
            return {"kind": note.kind, "outcome": "disabled"}
        return record.to_builtins()

    # --- HTTP --------------------------------------------------------------------------------
    def rule_view(self, rule: AlertRule) -> dict[str, Any]:
        state = self.engine.states[rule.id]
        return {**msgspec.to_builtins(rule), "condition": rule.condition, "fired": state.fired,
                "last_fired_ns": state.last_fired_ns, "holds": dict(state.last)}

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/v1/alerts")
        async def list_rules() -> dict[str, Any]:
            rules = sorted(self.engine.rules.values(), key=lambda r: (r.created_ns, r.id))
            return {"rules": [self.rule_view(r) for r in rules]}

        @app.post("/v1/alerts", status_code=201)
        async def add_rule(body: dict[str, Any], actor: Actor) -> dict[str, Any]:
            try:
                request = msgspec.convert(body, RuleRequest)
                rule = build_rule(request, new_id()[:12], self.clock.now_ns())
            except (msgspec.ValidationError, RuleError) as exc:
                raise HTTPException(status_code=422, detail=str(exc)) from None
            async with self._lock:
                if len(self.engine.rules) >= self.config.notifier.max_rules:
                    raise HTTPException(status_code=422,
                                        detail=f"at most {self.config.notifier.max_rules} rules (notifier.max_rules)")
                self.engine.add(rule)
                try:
                    await save_rules(self.bus, self.engine)
                except Exception as exc:
                    self.engine.remove(rule.id)
                    log.error("cannot store the rules", extra={"error": repr(exc)})
                    raise HTTPException(status_code=503, detail="cannot store the rule; try again") from None
            log.info("price alert rule added", extra={"rule": rule.id, "instrument": rule.instrument_id,
                                                      "condition": rule.condition, "actor": actor})
            return {"rule": self.rule_view(rule)}

        @app.delete("/v1/alerts/{rule_id}")
        async def remove_rule(rule_id: str, actor: Actor) -> dict[str, Any]:
            async with self._lock:
                rule = self.engine.rules.get(rule_id)
                if rule is None:
                    raise HTTPException(status_code=404, detail=f"no rule {rule_id!r}")
                state = self.engine.states[rule_id]
                self.engine.remove(rule_id)
                try:
                    await save_rules(self.bus, self.engine)
                except Exception as exc:
                    self.engine.add(rule, state)
                    log.error("cannot store the rules", extra={"error": repr(exc)})
                    raise HTTPException(status_code=503, detail="cannot store the change; try again") from None
            log.info("price alert rule removed", extra={"rule": rule_id, "actor": actor})
            return {"removed": rule_id}

        @app.get("/v1/deliveries")
        async def deliveries(limit: int = 50) -> dict[str, Any]:
            return {"targets": [t.label for t in self.dispatcher.targets],
                    "deliveries": self.dispatcher.recent(max(0, min(limit, self.config.notifier.history)))}

        @app.post("/v1/alertmanager")
        async def alertmanager(request: Request,
                               authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
            require_webhook_token(authorization)
            try:
                payload = msgspec.json.decode(await request.body(), type=messages.AlertmanagerPayload)
            except msgspec.DecodeError as exc:
                raise HTTPException(status_code=422, detail=f"not an Alertmanager webhook payload: {exc}") from None
            if payload.version != "4":
                log.warning("Alertmanager webhook version %s (expected 4)", payload.version)
            return self._submitted(messages.from_alertmanager(payload, self.clock.now_ns()))

        @app.post("/v1/test-notification")
        async def test_notification(actor: Actor, body: dict[str, Any] | None = None) -> dict[str, Any]:
            try:
                request = msgspec.convert(body or {}, ProbeRequest)
            except msgspec.ValidationError as exc:
                raise HTTPException(status_code=422, detail=str(exc)) from None
            note = Notification("alert", request.title, request.body, level_of(request.severity),
                                key=f"test|{new_id()}")
            record = self.dispatcher.submit(note)
            if record is None:
                return {"kind": note.kind, "outcome": "disabled"}
            with contextlib.suppress(TimeoutError):  # answer with the outcome when it comes in time
                await asyncio.wait_for(record.done.wait(), PROBE_WAIT_S)
            return record.to_builtins()

        @app.post("/v1/daily-summary")
        async def daily_summary(actor: Actor) -> dict[str, Any]:
            return self.send_summary()


def build(config: Config, bus: Bus, clock: Clock | None = None) -> NotifierService:
    return NotifierService(config, bus, clock=clock)
