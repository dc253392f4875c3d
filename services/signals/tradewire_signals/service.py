"""The signals service: runs strategies on bars (and, for strategies that ask, on order books and market
resolutions) and publishes Signals.

Book-driven strategies (``Strategy.market_data``): the service subscribes to quotes, books and resolutions
only when some strategy asks for them, keeps one local book per instrument (snapshot + deltas; a quote is a
one-level book for instruments without a snapshot book; :mod:`tradewire_signals.prediction.book`) and calls
``on_book`` of every strategy trading the instrument after each change, and ``on_resolution`` on every
``MarketResolved``. Their signals' ids derive from the strategy, the triggering event and the intent's index.

A strategy that raises is reported as a StrategyError event (and a metric); the service and the
other strategies carry on. ``adaptive`` strategies' parameters may change at run time within their
bounds (:mod:`tradewire_signals.adaptive`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import partial
from typing import Any

from fastapi import FastAPI

from tradewire_common import schemas, subjects
from tradewire_common.bus import Bus, Envelope
from tradewire_common.clock import Clock
from tradewire_common.config import Config
from tradewire_common.ids import derive_id
from tradewire_common.metrics_market import MarketEventMetrics
from tradewire_common.schemas import Bar, BookDelta, BookSnapshot, MarketResolved, Message, Quote, Signal, StrategyError
from tradewire_common.service import Service
from tradewire_signals import breakout, rsi_reversion, sma_cross  # noqa: F401  (register built-ins)
from tradewire_signals.adaptive import AdaptiveParams
from tradewire_signals.prediction.book import LocalBook
from tradewire_signals.strategy import Intent, Strategy, build_strategy

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
        specs = {spec.id: spec for spec in config.risk.instruments}
        for strategy, _ in self.strategies:
            strategy.bind(specs)
        #: Local books of the instruments book-driven strategies trade (quotes and snapshots + deltas).
        self.books: dict[str, LocalBook] = {}

    async def on_start(self) -> None:
        await self.bus.subscribe(subjects.ALL_BARS, self.on_bar)
        wanted = set().union(*(s.market_data for s, _ in self.strategies)) if self.strategies else set()
        if "quotes" in wanted:
            await self.bus.subscribe(subjects.ALL_QUOTES, self.on_market_event)
        if "books" in wanted:
            await self.bus.subscribe(subjects.ALL_BOOKS, self.on_market_event)
        if "resolutions" in wanted:
            await self.bus.subscribe(subjects.ALL_RESOLUTIONS, self.on_market_event)

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
            if intent is not None:
                await self.emit(strategy, intent, bar, derive_id("signal", strategy.strategy_id, bar.id), bar.close)

    async def on_market_event(self, envelope: Envelope) -> None:
        """Quotes, book snapshots and deltas update the local book, then the strategies trading it run;
        a resolution goes to every strategy asking for resolutions."""
        event = envelope.message
        if isinstance(event, MarketResolved):
            for strategy, _ in self.strategies:
                if "resolutions" in strategy.market_data:
                    await self.run_hook(strategy, event, partial(strategy.on_resolution, event))
            return
        if not isinstance(event, Quote | BookSnapshot | BookDelta):
            return
        iid = event.instrument_id
        interested = [s for s, _ in self.strategies if s.market_data and iid in s.instruments]
        if not interested:
            return
        book = self.books.setdefault(iid, LocalBook(iid))
        if isinstance(event, BookSnapshot):
            book.apply_snapshot(event)
        elif isinstance(event, BookDelta):
            if not book.apply_delta(event):
                return
        elif book.source == "book":  # a snapshot book is better than a quote
            return
        else:
            book.apply_quote(event)
        fresh = {k: b for k, b in self.books.items() if not b.stale}
        for strategy in interested:
            await self.run_hook(strategy, event, partial(strategy.on_book, iid, fresh))

    async def run_hook(self, strategy: Strategy[Any], event: Message, hook: Callable[[], Sequence[Intent]]) -> None:
        try:
            intents = list(hook())
        except Exception as exc:
            await self.report_error(strategy, event, exc)
            return
        for index, intent in enumerate(intents):
            if intent.price is None:
                await self.report_error(strategy, event, ValueError("a book-driven intent needs a price"))
                continue
            await self.emit(strategy, intent, event, derive_id("signal", strategy.strategy_id, event.id, index),
                            intent.price)

    async def emit(self, strategy: Strategy[Any], intent: Intent, event: Message, signal_id: str,
                   price: Decimal) -> None:
        now = self.clock.now_ns()
        try:
            signal = Signal(
                id=signal_id,
                ts_event=event.ts_event,
                ts_init=now,
                correlation_id=intent.correlation_id or event.id,
                strategy_id=strategy.strategy_id,
                instrument_id=intent.instrument_id or event_instrument(event),
                side=intent.side,
                price=intent.price if intent.price is not None else price,
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
                post_only=intent.post_only,
                expire_time_ns=intent.expire_time_ns,
            )
            # the constructor checks values but not types: make sure it is a valid wire message
            schemas.decode_as(schemas.encode(signal), Signal)
        except Exception as exc:  # a bad intent is the strategy's fault, like raising
            await self.report_error(strategy, event, exc)
            return
        await self.bus.publish(subjects.signal(strategy.strategy_id), signal)
        self.signals_out.labels(strategy.strategy_id).inc()

    async def report_error(self, strategy: Strategy[Any], bar: Message, exc: Exception) -> None:
        log.exception("strategy %s failed on %s", strategy.strategy_id, event_instrument(bar))
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
                instrument_id=event_instrument(bar),
            ),
        )


def event_instrument(event: Message) -> str:
    """The instrument of a market-data event ("" for a resolution)."""
    return str(getattr(event, "instrument_id", ""))


def build(config: Config, bus: Bus, clock: Clock | None = None) -> SignalsService:
    return SignalsService(config, bus, clock=clock)
