"""The execution service: routes order commands to venue adapters and publishes their events.

Per venue it consumes ``ord.cmd.{venue}`` durably (acknowledged only after the venue's events
are stored in JetStream), feeds paper venues their bars, and after each bar publishes an
``ExecutionWatermark`` so the ledger knows every fill up to that event time has been sent.

**Paper venue state.** A paper venue's working orders (with their filled quantities), remembered
client order ids and recent bars are stored in the KV bucket under ``paper.<venue>.state``: loaded
in ``on_start`` before subscribing, and saved inside the handler, after its events are published
(so before the command is acknowledged), whenever the venue's ``state_revision`` moved (an order
accepted, rejected, filled or closed).

Cost trade-off: bars alone only extend the bar history, which is saved every
:data:`SAVE_EVERY_BARS` bars instead of on each bar (a KV put each, ~0.25 ms on a local server).
After a restart the bars since the last save are therefore missing from the history; this matters
only to an order arriving (or redelivered) after the restart whose signal bar precedes them: it then
fills on the next bar the venue sees instead. In a lockstep replay orders reach the venue before the
next bar, so the history is not needed there. Working orders never need past bars: they match the
bars that arrive after them, by event time. Bars are core NATS, so bars published while the service
is down never arrive: an order working at that moment fills on the next bar the venue sees (the
result differs from an uninterrupted run). A hard crash between publishing a bar's fills and
saving the state would re-fill the order's old remainder from the saved state; a graceful stop
finishes the handler first.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence

from fastapi import FastAPI

from tradewire_common import subjects
from tradewire_common.bus import Bus, Envelope
from tradewire_common.clock import Clock
from tradewire_common.config import Config
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.metrics import LATENCY_BUCKETS
from tradewire_common.metrics_orders import order_status
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

#: Bars after which a paper venue's state is saved even if no order changed (for the bar history).
SAVE_EVERY_BARS = 16
#: States above this size are logged: the KV bucket refuses values beyond the server's max payload.
LARGE_STATE_BYTES = 512 * 1024


def state_key(venue: str) -> str:
    """The KV key of a paper venue's state; characters KV keys cannot hold are escaped as ``=XX``."""
    token = re.sub(r"[^A-Za-z0-9_-]", lambda m: "".join(f"={b:02X}" for b in m.group().encode()), venue)
    return f"paper.{token}.state"


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
        #: Per paper venue: the ``state_revision`` last saved, and bars handled since that save.
        self._saved_revision: dict[str, int] = {}
        self._bars_unsaved: dict[str, int] = {}
        m = self.metrics
        self.events_out = m.counter("order_events_total", "Order events published", ("venue", "type"))
        self.fills_out = m.counter("fills_total", "Fills published", ("venue",))
        self.commands_in = m.counter("order_commands_total", "Order commands received", ("venue", "type"))
        self.open_orders = m.gauge("open_orders", "Orders working at the venue", ("venue",))
        self.state_saves = m.counter("venue_state_saves_total", "Paper venue states saved to KV", ("venue",))
        self.state_size = m.gauge("venue_state_bytes", "Size of the paper venue state last saved", ("venue",))
        self.orders = m.counter("orders_total", "Order events by resulting order status", ("venue", "status"))
        self.round_trip = m.histogram(
            "order_round_trip_seconds", "From risk issuing a SubmitOrder to the venue's answer being published",
            ("venue",), buckets=LATENCY_BUCKETS,
        )
        for venue_name in self.venues:  # at 0 from the start, so the reject ratio sees the first ones
            self.commands_in.labels(venue_name, "submit")
            self.orders.labels(venue_name, "rejected")

    async def on_start(self) -> None:
        for name, venue in self.venues.items():  # every venue's state is back before any message
            if isinstance(venue, PaperVenue):
                await self.load_venue_state(name, venue)
        for name, venue in self.venues.items():
            await venue.start()
            await self.bus.subscribe(subjects.order_command(name), self.on_command, durable=f"execution-{name}")
            if isinstance(venue, PaperVenue):
                await self.bus.subscribe(f"md.bar.{subjects.escape_token(name)}.>", self.on_bar)

    async def on_stop(self) -> None:
        for venue in self.venues.values():
            await venue.close()

    async def load_venue_state(self, name: str, venue: VenueAdapter) -> None:
        key = state_key(name)
        raw = await self.bus.kv_get(key)
        if raw:
            try:
                venue.restore_state(raw)
            except ValueError as exc:  # refuse to start rather than drop acknowledged orders silently
                raise RuntimeError(
                    f"cannot restore venue {name} from KV key {key!r}: {exc} "
                    "(delete the key to start the venue empty)"
                ) from exc
            log.info("venue %s restored: %d working orders", name, len(venue.open_orders()),
                     extra={"key": key, "bytes": len(raw)})
        self._saved_revision[name] = venue.state_revision
        self._bars_unsaved[name] = 0
        self.open_orders.labels(name).set(len(venue.open_orders()))

    async def save_venue_state(self, name: str, *, bar: bool = False) -> None:
        """Save a paper venue's state if an order changed, or every ``SAVE_EVERY_BARS`` bars."""
        if name not in self._saved_revision:
            return  # not a venue with state
        venue = self.venues[name]
        if bar:
            self._bars_unsaved[name] += 1
        revision = venue.state_revision
        if revision == self._saved_revision[name] and self._bars_unsaved[name] < SAVE_EVERY_BARS:
            return
        data = venue.export_state()
        if len(data) > LARGE_STATE_BYTES:
            log.warning("venue %s state is %d bytes", name, len(data))
        await self.bus.kv_put(state_key(name), data)
        self._saved_revision[name] = revision
        self._bars_unsaved[name] = 0
        self.state_saves.labels(name).inc()
        self.state_size.labels(name).set(len(data))

    async def publish_events(self, venue: str, events: Sequence[OrderEvent]) -> None:
        for event in events:
            await self.bus.publish(subjects.order_event(event.strategy_id), event)
            self.events_out.labels(venue, type(event).__name__).inc()
            self.orders.labels(venue, order_status(event)).inc()
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
            if isinstance(command, SubmitOrder):
                self.round_trip.labels(venue_name).observe(max(0, self.clock.now_ns() - command.ts_init) / 1e9)
            # before the command is acknowledged; if this fails the command is redelivered, the
            # venue ignores it as a duplicate, and the save is tried again
            await self.save_venue_state(venue_name)

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
            try:
                await self.save_venue_state(venue_name, bar=True)
            except Exception:  # the venue in memory is right; the next change saves again
                log.exception("saving venue %s state failed", venue_name)
            await self.bus.publish(
                subjects.execution_watermark(venue_name),
                ExecutionWatermark(id=derive_id("wm", venue_name, bar.id), ts_event=bar.ts_event, ts_init=now,
                                   correlation_id=bar.id, venue=venue_name, instrument_id=bar.instrument_id,
                                   close=bar.close),
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
