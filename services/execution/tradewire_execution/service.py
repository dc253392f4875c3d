"""The execution service: routes order commands to venue adapters and publishes their events.

Per venue it consumes ``ord.cmd.{venue}`` durably (acknowledged only after the venue's events
are stored in JetStream), feeds paper venues their bars, and after each bar publishes an
``ExecutionWatermark`` so the ledger knows every fill up to that event time has been sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from fastapi import FastAPI

from tradewire_common import subjects
from tradewire_common.bus import Bus, Envelope
from tradewire_common.clock import Clock
from tradewire_common.config import Config
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.schemas import (
    Bar,
    CancelOrder,
    ExecutionWatermark,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    SubmitOrder,
)
from tradewire_common.service import Service
from tradewire_execution.paper import PaperVenue
from tradewire_execution.venue import VenueAdapter

log = logging.getLogger(__name__)


def build_venue(name: str, adapter: str, config: Config) -> VenueAdapter:
    if adapter == "paper":
        return PaperVenue(name, config.execution.paper)
    raise ValueError(f"execution.venues: unknown adapter {adapter!r} for {name}")


class ExecutionService(Service):
    name = "execution"

    def __init__(self, config: Config, bus: Bus, *, clock: Clock | None = None) -> None:
        super().__init__(config, bus, clock=clock)
        self.venues: dict[str, VenueAdapter] = {
            v.name: build_venue(v.name, v.adapter, config) for v in config.execution.venues
        }
        self._lock = asyncio.Lock()
        m = self.metrics
        self.events_out = m.counter("order_events_total", "Order events published", ("venue", "type"))
        self.fills_out = m.counter("fills_total", "Fills published", ("venue",))
        self.commands_in = m.counter("order_commands_total", "Order commands received", ("venue", "type"))
        self.open_orders = m.gauge("open_orders_count", "Orders working at the venue", ("venue",))

    async def on_start(self) -> None:
        for name, venue in self.venues.items():
            await venue.start()
            await self.bus.subscribe(subjects.order_command(name), self.on_command, durable=f"execution-{name}")
            if isinstance(venue, PaperVenue):
                await self.bus.subscribe(f"md.bar.{subjects.escape_token(name)}.>", self.on_bar)

    async def on_stop(self) -> None:
        for venue in self.venues.values():
            await venue.close()

    async def publish_events(self, venue: str, events: Sequence[OrderEvent]) -> None:
        for event in events:
            await self.bus.publish(subjects.order_event(event.strategy_id), event)
            self.events_out.labels(venue, type(event).__name__).inc()
            if isinstance(event, OrderFilled):
                self.fills_out.labels(venue).inc()
        self.open_orders.labels(venue).set(len(self.venues[venue].open_orders()))

    async def on_command(self, envelope: Envelope) -> None:
        command = envelope.message
        venue_name = envelope.subject.rsplit(".", 1)[-1]
        venue = self.venues[venue_name]
        now = self.clock.now_ns()
        async with self._lock:
            if isinstance(command, SubmitOrder):
                self.commands_in.labels(venue_name, "submit").inc()
                _symbol, instrument_venue = split_instrument_id(command.instrument_id)
                if instrument_venue != venue_name:
                    events: list[OrderEvent] = [OrderRejected(
                        id=derive_id("OrderRejected", command.client_order_id, "venue"), ts_event=command.ts_event,
                        ts_init=now, correlation_id=command.correlation_id, strategy_id=command.strategy_id,
                        instrument_id=command.instrument_id, client_order_id=command.client_order_id,
                        reason=f"instrument venue {instrument_venue} is not {venue_name}")]
                else:
                    submitted = OrderSubmitted(
                        id=derive_id("OrderSubmitted", command.client_order_id), ts_event=command.ts_event,
                        ts_init=now, correlation_id=command.correlation_id, strategy_id=command.strategy_id,
                        instrument_id=command.instrument_id, client_order_id=command.client_order_id,
                        venue=venue_name)
                    events = [submitted, *await venue.submit(command, now)]
            elif isinstance(command, CancelOrder):
                self.commands_in.labels(venue_name, "cancel").inc()
                events = await venue.cancel(command, now)
            else:
                log.warning("ignoring %s on %s", type(command).__name__, envelope.subject)
                return
            await self.publish_events(venue_name, events)

    async def on_bar(self, envelope: Envelope) -> None:
        bar = envelope.message
        if not isinstance(bar, Bar):
            return
        _symbol, venue_name = split_instrument_id(bar.instrument_id)
        venue = self.venues.get(venue_name)
        if venue is None:
            return
        now = self.clock.now_ns()
        async with self._lock:
            await self.publish_events(venue_name, await venue.on_bar(bar, now))
            await self.bus.publish(
                subjects.execution_watermark(venue_name),
                ExecutionWatermark(id=derive_id("wm", venue_name, bar.id), ts_event=bar.ts_event, ts_init=now,
                                   correlation_id=bar.id, venue=venue_name),
            )

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/v1/venues")
        async def venues() -> dict[str, object]:
            return {
                name: {"adapter": type(v).__name__, "capabilities": sorted(v.capabilities),
                       "open_orders": v.open_orders()}
                for name, v in self.venues.items()
            }


def build(config: Config, bus: Bus, clock: Clock | None = None) -> ExecutionService:
    return ExecutionService(config, bus, clock=clock)
