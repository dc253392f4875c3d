"""The signals service: runs strategies on bars and publishes Signals.

A strategy that raises is reported as a StrategyError event (and a metric); the service and the
other strategies carry on. ``adaptive`` strategies' parameters may change at run time within their
bounds (:mod:`tradewire_signals.adaptive`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

from tradewire_common import schemas, subjects
from tradewire_common.bus import Bus, Envelope
from tradewire_common.clock import Clock
from tradewire_common.config import Config
from tradewire_common.ids import derive_id
from tradewire_common.metrics_market import MarketEventMetrics
from tradewire_common.schemas import Bar, Signal, StrategyError
from tradewire_common.service import Service
from tradewire_signals import breakout, rsi_reversion, sma_cross  # noqa: F401  (register built-ins)
from tradewire_signals.adaptive import AdaptiveParams
from tradewire_signals.strategy import Strategy, build_strategy

log = logging.getLogger(__name__)


class SignalsService(Service):
    name = "signals"

    def __init__(self, config: Config, bus: Bus, *, clock: Clock | None = None) -> None:
        super().__init__(config, bus, clock=clock)
        self.strategies: list[tuple[Strategy[Any], str]] = [
            (build_strategy(sc, i), sc.interval) for i, sc in enumerate(config.signals.strategies)
        ]
        self.signals_out = self.metrics.counter("signals_total", "Signals emitted", ("strategy",))
        self.errors = self.metrics.counter("strategy_errors_total", "Strategy code failures", ("strategy",))
        self.market_events = MarketEventMetrics(self.metrics)
        for strategy, _ in self.strategies:  # at 0 from the start, so increase() sees the first error
            self.signals_out.labels(strategy.strategy_id)
            self.errors.labels(strategy.strategy_id)
        self.adaptive = AdaptiveParams(self)

    async def on_start(self) -> None:
        await self.bus.subscribe(subjects.ALL_BARS, self.on_bar)

    def add_routes(self, app: FastAPI) -> None:
        self.adaptive.add_routes(app)  # GET /v1/strategies, POST /v1/strategies/{id}/params (adaptive only)

    async def on_bar(self, envelope: Envelope) -> None:
        bar = envelope.message
        if not isinstance(bar, Bar):
            return
        self.market_events.observe(bar, self.clock.now_ns())
        for strategy, interval in self.strategies:
            if bar.instrument_id not in strategy.instruments or interval not in ("*", bar.interval):
                continue
            try:
                intent = strategy.on_bar(bar)
            except Exception as exc:
                await self.report_error(strategy, bar, exc)
                continue
            if intent is None:
                continue
            now = self.clock.now_ns()
            try:
                signal = Signal(
                    id=derive_id("signal", strategy.strategy_id, bar.id),
                    ts_event=bar.ts_event,
                    ts_init=now,
                    correlation_id=bar.id,
                    strategy_id=strategy.strategy_id,
                    instrument_id=bar.instrument_id,
                    side=intent.side,
                    price=bar.close,
                    confidence=intent.confidence,
                    reason=intent.reason,
                    target=intent.target,
                    win_probability=intent.win_probability,
                    payoff_ratio=intent.payoff_ratio,
                    stop_loss_pct=intent.stop_loss_pct,
                    take_profit_pct=intent.take_profit_pct,
                    trailing_stop_pct=intent.trailing_stop_pct,
                    time_stop_s=intent.time_stop_s,
                    order_type=intent.order_type,
                    limit_price=intent.limit_price,
                    trigger_price=intent.trigger_price,
                    time_in_force=intent.time_in_force,
                )
                # the constructor checks values but not types: make sure it is a valid wire message
                schemas.decode_as(schemas.encode(signal), Signal)
            except Exception as exc:  # a bad intent is the strategy's fault, like raising
                await self.report_error(strategy, bar, exc)
                continue
            await self.bus.publish(subjects.signal(strategy.strategy_id), signal)
            self.signals_out.labels(strategy.strategy_id).inc()

    async def report_error(self, strategy: Strategy[Any], bar: Bar, exc: Exception) -> None:
        log.exception("strategy %s failed on %s", strategy.strategy_id, bar.instrument_id)
        self.errors.labels(strategy.strategy_id).inc()
        now = self.clock.now_ns()
        await self.bus.publish(
            subjects.strategy_error(strategy.strategy_id),
            StrategyError(
                id=derive_id("strategy-error", strategy.strategy_id, bar.id),
                ts_event=bar.ts_event,
                ts_init=now,
                correlation_id=bar.id,
                strategy_id=strategy.strategy_id,
                error_type=type(exc).__name__,
                message=str(exc)[:1000],
                instrument_id=bar.instrument_id,
            ),
        )


def build(config: Config, bus: Bus, clock: Clock | None = None) -> SignalsService:
    return SignalsService(config, bus, clock=clock)
