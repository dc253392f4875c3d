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

**Books.** Per paper venue execution also follows ``md.book.<venue>.>``, ``md.quote.<venue>.>`` and
``md.trade.<venue>.>`` (core subscriptions): an instrument that has had no bar fills against them (the "Books"
rules of :mod:`tradewire_execution.paper`); messages of bar instruments are dropped here and move nothing. After
each message the venue state is saved like after a bar (an order changed, or every :data:`SAVE_EVERY_BARS`
messages; the books are part of the state) and, when its event time is beyond the venue's last book watermark, an
``ExecutionWatermark`` without a close is published (risk waits for it before sizing a signal from that book;
the ledger does not mark from it). A venue trading bar and book instruments side by side publishes both kinds of
watermarks; the bar replays' determinism assumes bar-only venues.

**Emulated exits.** For a venue whose adapter lacks ``CAP_BRACKET`` (a paper venue with
``native_brackets = false``, real adapters without brackets), or configured with ``native_brackets = false``
(``VenueConfig``), the service keeps the exits of the orders it sends there in an
:class:`~tradewire_execution.exits.ExitEmulator` and sends the venue the orders without them. A venue with
``CAP_BRACKET`` but without ``CAP_BRACKET_TRAILING`` / ``CAP_BRACKET_TIME`` (Alpaca: brackets hold a stop loss
and a take profit only) keeps its SL/TP brackets natively, but an entry with a trailing or a time stop goes to
the emulator *whole* (SL/TP too), so that one keeper closes the position, never two racing each other
(:func:`emulated_exits`). The emulator's docstring is its spec:
every order with exits is tracked before it reaches the venue, every event published for the venue
is observed, the venue's bars are watched (execution subscribes to them for these venues too), and a
fired exit is sent to the adapter as a reduce-only market order with a derived client order id. The
emulator's state is saved in the KV bucket under ``paper.<venue>.exits`` whenever it changed, before
the command or bar that changed it is finished, and before a fired exit is sent; at start it is loaded
before subscribing and the exits the venue never answered are sent again. Execution publishes no
order commands for this (only risk does, on ``ord.cmd.*``): an emulated exit is the venue-side part of
an order risk approved with its exits, as a native bracket would be at the venue.

**Replace** (``ReplaceOrder`` on ``ord.cmd.{venue}``, from risk): passed to the adapter's
:meth:`~tradewire_execution.venue.VenueAdapter.replace` (paper: amend in place; live venues: native amend or
cancel-then-new, :mod:`tradewire_execution.live.replace`); a replacement for a HALTED scope is rejected here.

**Prediction markets.** Paper venues learn the instruments' kinds from ``risk.instruments`` (binary contracts:
prices within (0, 1), the venue's fee schedule). When any is binary, execution follows ``pm.resolved.*`` (a
core subscription: a resolution published while execution is down is not seen; the paper venue's orders in that
market then keep working until cancelled) and a ``MarketResolved`` cancels the paper venues' open orders in that
market (reason "market resolved"); real venues close their orders themselves.

**Trading states (kill switch).** Execution follows ``risk.state`` (and reads the states from KV at
start, see :class:`~tradewire_common.service.Service`). When a scope becomes HALTED it cancels the
open orders it covers: every order at every venue for ``global``, at the venue for ``venue:<name>``,
the strategy's for ``strategy:<id>`` (an ``OrderCanceled`` each, reason ``kill switch: ...``); at
start it does the same for the scopes already HALTED. Left working: the kill switch's own closing
orders (client order ids ``tw-fl-…``, see ``tradewire_risk.kill_switch``) and bracket exits (the
paper venue's and the emulated ones, ``tw-sl-``/``tw-tp-``/``tw-tr-``/``tw-tm-``), which only reduce
exposure; armed emulated exits keep watching the bars. As a second line behind risk, a ``SubmitOrder`` arriving
for a HALTED scope is rejected (unless it is a ``tw-fl-`` reduce-only order), and one that is not
reduce-only for a REDUCING scope too (``OrderRejected``, reason ``trading HALTED/REDUCING ...``).
The paper venue tells the strategy of a working order from its exported state; for other adapters
a strategy's halt cancels nothing here (their orders are known by client order id only).

**Venue status.** An adapter call failing with ``ConnectionError`` (the adapter contract's "fault
of the adapter itself") marks the venue disconnected, the next successful call connected again;
each change is published as a ``VenueStatus`` on ``ord.evt._venue.<venue>`` (risk's
``venue_disconnected`` breaker) and shown in ``/v1/venues`` and ``tradewire_execution_venue_connected_info``.
Adapters that learn of a disconnect otherwise call :meth:`ExecutionService.report_venue_status`.
The paper venue is always connected.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence

import msgspec
from fastapi import FastAPI

from tradewire_common import subjects
from tradewire_common.bus import Bus, Envelope
from tradewire_common.clock import Clock
from tradewire_common.config import Config
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.metrics import LATENCY_BUCKETS
from tradewire_common.metrics_orders import order_status
from tradewire_common.schemas import (
    Alert,
    Bar,
    BookDelta,
    BookSnapshot,
    CancelOrder,
    ExecutionWatermark,
    MarketResolved,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    Quote,
    ReplaceOrder,
    SubmitOrder,
    TradeTick,
    TradingState,
    TradingStateChanged,
    VenueStatus,
)
from tradewire_common.service import Service
from tradewire_common.trading_state import GLOBAL, STRATEGY_PREFIX, VENUE_PREFIX, is_flatten_order, permits
from tradewire_execution.exits import ExitEmulator, has_exits
from tradewire_execution.live.base import LiveVenueAdapter
from tradewire_execution.paper import PaperVenue
from tradewire_execution.paper_brackets import is_exit_order
from tradewire_execution.paper_state import VenueState
from tradewire_execution.slippage import ArrivalSlippage
from tradewire_execution.venue import (
    CAP_BRACKET,
    CAP_BRACKET_TIME,
    CAP_BRACKET_TRAILING,
    VenueAdapter,
    replace_rejected,
)
from tradewire_execution.venues import build_adapter

log = logging.getLogger(__name__)

#: Bars after which a paper venue's state is saved even if no order changed (for the bar history).
SAVE_EVERY_BARS = 16
#: States above this size are logged: the KV bucket refuses values beyond the server's max payload.
LARGE_STATE_BYTES = 512 * 1024


def _key_token(venue: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", lambda m: "".join(f"={b:02X}" for b in m.group().encode()), venue)


def state_key(venue: str) -> str:
    """The KV key of a paper venue's state; characters KV keys cannot hold are escaped as ``=XX``."""
    return f"paper.{_key_token(venue)}.state"


def exits_key(venue: str) -> str:
    """The KV key of a venue's emulated exits (under ``paper.``, the prefix execution may write)."""
    return f"paper.{_key_token(venue)}.exits"


def emulated_exits(venue: VenueAdapter, native_brackets: bool, order: SubmitOrder) -> bool:
    """Whether execution's exit emulator keeps ``order``'s exits instead of the venue (see the module docstring)."""
    if not has_exits(order):
        return False
    caps = venue.capabilities
    if CAP_BRACKET not in caps or not native_brackets:
        return True
    if order.reduce_only:  # a reduce-only order's own exits are the venue's business (Alpaca: OCO, trailing stop)
        return False
    return ((order.trailing_stop_pct is not None and CAP_BRACKET_TRAILING not in caps)
            or (order.time_stop_s is not None and CAP_BRACKET_TIME not in caps))


def _may_emulate(venue: VenueAdapter, native_brackets: bool) -> bool:
    caps = venue.capabilities
    return not native_brackets or not {CAP_BRACKET, CAP_BRACKET_TRAILING, CAP_BRACKET_TIME} <= caps


def build_venue(name: str, adapter: str, config: Config) -> VenueAdapter:
    """The adapter of the configured venue ``name`` (``tradewire_execution.venues.build_adapter``)."""
    for venue in config.execution.venues:
        if venue.name == name:
            return build_adapter(venue, config)
    raise ValueError(f"execution.venues: no venue {name!r}")


class ExecutionService(Service):
    name = "execution"

    def __init__(self, config: Config, bus: Bus, *, clock: Clock | None = None) -> None:
        super().__init__(config, bus, clock=clock)
        self.venues: dict[str, VenueAdapter] = {
            v.name: build_venue(v.name, v.adapter, config) for v in config.execution.venues
        }
        self.native_brackets = {v.name: v.native_brackets for v in config.execution.venues}
        for venue in self.venues.values():
            if isinstance(venue, PaperVenue):
                venue.set_instruments(config.risk.instruments)
        self.binary = any(spec.kind == "binary" for spec in config.risk.instruments)
        #: Exits kept here for the venues without native brackets (or without some kinds of them).
        self.exits: dict[str, ExitEmulator] = {
            name: ExitEmulator(name) for name, venue in self.venues.items()
            if _may_emulate(venue, self.native_brackets[name])
        }
        self._exits_saved: dict[str, int] = {}
        self._lock = asyncio.Lock()
        #: Per paper venue: the ``state_revision`` last saved, and bars handled since that save.
        self._saved_revision: dict[str, int] = {}
        self._bars_unsaved: dict[str, int] = {}
        #: Per paper venue: the newest book/quote/trade event time a watermark was published for.
        self._book_watermark: dict[str, int] = {}
        m = self.metrics
        self.events_out = m.counter("order_events_total", "Order events published", ("venue", "type"))
        self.fills_out = m.counter("fills_total", "Fills published", ("venue",))
        self.commands_in = m.counter("order_commands_total", "Order commands received", ("venue", "type"))
        self.open_orders = m.gauge("open_orders", "Orders working at the venue", ("venue",))
        self.state_saves = m.counter("venue_state_saves_total", "Paper venue states saved to KV", ("venue",))
        self.state_size = m.gauge("venue_state_bytes", "Size of the paper venue state last saved", ("venue",))
        self.orders = m.counter("orders_total", "Order events by resulting order status", ("venue", "status"))
        self.emulated_exits = m.counter("emulated_exits_total", "Exits sent by execution's exit emulator",
                                        ("venue", "kind"))
        self.round_trip = m.histogram(
            "order_round_trip_seconds", "From risk issuing a SubmitOrder to the venue's answer being published",
            ("venue",), buckets=LATENCY_BUCKETS,
        )
        #: each fill against the last bar close when its order arrived (tradewire_execution_fill_slippage_ratio)
        self.slippage = ArrivalSlippage(m, self.venues)
        for venue_name in self.venues:  # at 0 from the start, so the reject ratio sees the first ones
            self.commands_in.labels(venue_name, "submit")
            self.orders.labels(venue_name, "rejected")
        # kill switch and venue status
        self.halt_cancels = m.counter("halt_cancels_total", "Open orders cancelled because a scope was HALTED",
                                      ("venue",))
        self.venue_connected_gauge = m.gauge("venue_connected_info", "1 while the venue is connected", ("venue",))
        self.venue_connected: dict[str, bool] = dict.fromkeys(self.venues, True)
        for venue_name in self.venues:
            self.halt_cancels.labels(venue_name)
            self.venue_connected_gauge.labels(venue_name).set(1)

    async def on_start(self) -> None:
        for name, venue in self.venues.items():  # every venue's state is back before any message
            if isinstance(venue, PaperVenue | LiveVenueAdapter):  # live: orders in flight, tracked ids
                await self.load_venue_state(name, venue)
            if isinstance(venue, LiveVenueAdapter):  # its stream, polling and reconciliation publish through us
                venue.attach(self)
            if name in self.exits:
                await self.load_exits(name)
        for name, venue in self.venues.items():
            await venue.start()
            if name in self.exits:  # exits decided before a restart that the venue never answered
                async with self._lock:
                    await self.send_pending_exits(name)
                    await self.save_venue_state(name)
                    await self.save_exits(name)
            await self.bus.subscribe(subjects.order_command(name), self.on_command, durable=f"execution-{name}")
            if isinstance(venue, PaperVenue) or name in self.exits:
                await self.bus.subscribe(f"md.bar.{subjects.escape_token(name)}.>", self.on_bar)
            if isinstance(venue, PaperVenue):  # instruments without bars fill against their books and quotes
                for kind in ("book", "quote", "trade"):
                    await self.bus.subscribe(f"md.{kind}.{subjects.escape_token(name)}.>", self.on_market_data)
        if self.binary and any(isinstance(v, PaperVenue) for v in self.venues.values()):
            # a core subscription (execution's NATS user may read pm.resolved.*, not consume its stream)
            await self.bus.subscribe(subjects.ALL_RESOLUTIONS, self.on_resolved)
        for scope, stored in self.trading.states.items():  # halted while this service was down
            if stored.state is TradingState.HALTED:
                await self.cancel_for_halt(scope, stored.reason, derive_id("halt-at-start", scope, stored.since_ns))

    async def on_stop(self) -> None:
        for venue in self.venues.values():
            await venue.close()

    async def _restore(self, key: str, restore: Callable[[bytes], None], what: str, empty: str) -> bytes | None:
        """Load ``key`` from the KV bucket into ``restore``; a state that cannot be loaded stops the start
        (rather than silently dropping acknowledged orders or armed stops)."""
        raw = await self.bus.kv_get(key)
        if raw:
            try:
                restore(raw)
            except ValueError as exc:
                raise RuntimeError(f"cannot restore {what} from KV key {key!r}: {exc} (delete the key to {empty})"
                                   ) from exc
        return raw

    async def load_venue_state(self, name: str, venue: VenueAdapter) -> None:
        key = state_key(name)
        raw = await self._restore(key, venue.restore_state, f"venue {name}", "start the venue empty")
        if raw:
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

    async def load_exits(self, name: str) -> None:
        key = exits_key(name)
        emulator = self.exits[name]
        raw = await self._restore(key, emulator.restore_state, f"the emulated exits of venue {name}",
                                  "start without them")
        if raw:
            log.info("venue %s: emulated exits restored: %d armed, %d pending", name, len(emulator.armed()),
                     len(emulator.pending()), extra={"key": key, "bytes": len(raw)})
        self._exits_saved[name] = emulator.revision

    async def save_exits(self, name: str) -> None:
        """Save a venue's emulated exits if they changed since the last save."""
        emulator = self.exits.get(name)
        if emulator is None or emulator.revision == self._exits_saved.get(name):
            return
        revision = emulator.revision
        await self.bus.kv_put(exits_key(name), emulator.export_state())
        self._exits_saved[name] = revision

    async def send_pending_exits(self, name: str) -> None:
        """Send the emulated exits the venue has not taken yet; one failing on the connection is tried
        again with the next bar (and at the next start)."""
        for order in self.exits[name].pending():
            try:
                await self.submit_exit(name, order)
            except ConnectionError:
                log.exception("venue %s: sending the emulated exit %s failed; tried again on the next bar", name,
                              order.client_order_id)
                return

    async def submit_exit(self, name: str, order: SubmitOrder) -> None:
        """Send an emulated exit to the venue and publish what it answers (reduce-only: every trading
        state lets it pass)."""
        now = self.clock.now_ns()
        submitted = OrderSubmitted(
            id=derive_id("OrderSubmitted", order.client_order_id), ts_event=order.ts_event, ts_init=now,
            correlation_id=order.correlation_id, strategy_id=order.strategy_id, instrument_id=order.instrument_id,
            client_order_id=order.client_order_id, venue=name)
        answer = await self._venue_call(name, self.venues[name].submit(order, now))
        self.exits[name].sent(order.client_order_id)  # at the venue now (or already: a duplicate answers [])
        self.emulated_exits.labels(name, order.client_order_id[3:5]).inc()
        await self.publish_events(name, [submitted, *answer])

    async def publish_events(self, venue: str, events: Sequence[OrderEvent]) -> None:
        emulator = self.exits.get(venue)
        if emulator is not None:
            emulator.observe(events)
        self.slippage.observe(venue, events)
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
                refusal = self._trading_refusal(command, venue_name)
                if refusal:
                    log.warning("rejected %s: %s", command.client_order_id, refusal)
                    events: list[OrderEvent] = [OrderRejected(
                        id=derive_id("OrderRejected", command.client_order_id, "trading-state"),
                        ts_event=command.ts_event, ts_init=now, correlation_id=command.correlation_id,
                        strategy_id=command.strategy_id, instrument_id=command.instrument_id,
                        client_order_id=command.client_order_id, reason=refusal)]
                elif instrument_venue != venue_name:
                    events = [OrderRejected(
                        id=derive_id("OrderRejected", command.client_order_id, "venue"), ts_event=command.ts_event,
                        ts_init=now, correlation_id=command.correlation_id, strategy_id=command.strategy_id,
                        instrument_id=command.instrument_id, client_order_id=command.client_order_id,
                        reason=f"instrument venue {instrument_venue} is not {venue_name}")]
                else:
                    emulator = self.exits.get(venue_name)
                    if emulator is not None and emulated_exits(venue, self.native_brackets[venue_name], command):
                        emulator.track(command)  # before the venue's events about it are observed
                        command = msgspec.structs.replace(command, stop_loss_pct=None, take_profit_pct=None,
                                                          trailing_stop_pct=None, time_stop_s=None)
                    submitted = OrderSubmitted(
                        id=derive_id("OrderSubmitted", command.client_order_id), ts_event=command.ts_event,
                        ts_init=now, correlation_id=command.correlation_id, strategy_id=command.strategy_id,
                        instrument_id=command.instrument_id, client_order_id=command.client_order_id,
                        venue=venue_name)
                    events = [submitted, *await self._venue_call(venue_name, venue.submit(command, now))]
            elif isinstance(command, CancelOrder):
                self.commands_in.labels(venue_name, "cancel").inc()
                events = await self._venue_call(venue_name, venue.cancel(command, now))
            elif isinstance(command, ReplaceOrder):
                self.commands_in.labels(venue_name, "replace").inc()
                state = self.trading.effective(command.strategy_id, venue_name)
                if state is TradingState.HALTED:
                    scope = self.trading.binding_scope(command.strategy_id, venue_name)
                    events = [replace_rejected(command, now, f"trading HALTED ({scope}): no replacements")]
                else:
                    events = await self._venue_call(venue_name, venue.replace(command, now))
            else:
                log.warning("ignoring %s on %s", type(command).__name__, envelope.subject)
                return
            await self.publish_events(venue_name, events)
            if isinstance(command, SubmitOrder):
                self.round_trip.labels(venue_name).observe(max(0, self.clock.now_ns() - command.ts_init) / 1e9)
            # before the command is acknowledged; if this fails the command is redelivered, the
            # venue ignores it as a duplicate, and the save is tried again
            await self.save_venue_state(venue_name)
            await self.save_exits(venue_name)

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
            self.slippage.on_bar(bar)  # the arrival price of orders from now on
            await self.publish_events(venue_name, await venue.on_bar(bar, now))
            emulator = self.exits.get(venue_name)
            if emulator is not None and (emulator.on_bar(bar) or emulator.pending()):
                try:  # saved before they reach the venue: after a crash they are sent again
                    await self.save_exits(venue_name)
                except Exception:  # sending the exits matters more; the next change saves again
                    log.exception("saving venue %s emulated exits failed", venue_name)
                await self.send_pending_exits(venue_name)
            try:
                await self.save_venue_state(venue_name, bar=True)
                await self.save_exits(venue_name)
            except Exception:  # the venue in memory is right; the next change saves again
                log.exception("saving venue %s state failed", venue_name)
            await self.bus.publish(
                subjects.execution_watermark(venue_name),
                ExecutionWatermark(id=derive_id("wm", venue_name, bar.id), ts_event=bar.ts_event, ts_init=now,
                                   correlation_id=bar.id, venue=venue_name, instrument_id=bar.instrument_id,
                                   close=bar.close),
            )

    async def on_market_data(self, envelope: Envelope) -> None:
        """A book, quote or trade for a paper venue: its orders in a book instrument match it (see "Books" in
        :mod:`tradewire_execution.paper`); then, as after a bar, the state is saved when an order changed (or
        every ``SAVE_EVERY_BARS`` messages) and an ``ExecutionWatermark`` (without a close) is published when the
        venue's book time moved forward."""
        message = envelope.message
        if not isinstance(message, BookSnapshot | BookDelta | Quote | TradeTick):
            return
        _symbol, venue_name = split_instrument_id(message.instrument_id)
        venue = self.venues.get(venue_name)
        if not isinstance(venue, PaperVenue) or not venue.trades_on_book(message.instrument_id):
            return  # a bar instrument's quotes never move the watermark its bars give
        now = self.clock.now_ns()
        async with self._lock:
            if isinstance(message, TradeTick):
                events = await venue.on_trade(message, now)
            elif isinstance(message, Quote):
                events = await venue.on_quote(message, now)
            else:
                events = await venue.on_book(message, now)
            await self.publish_events(venue_name, events)
            try:
                await self.save_venue_state(venue_name, bar=True)
            except Exception:  # the venue in memory is right; the next change saves again
                log.exception("saving venue %s state failed", venue_name)
            if message.ts_event > self._book_watermark.get(venue_name, 0):
                self._book_watermark[venue_name] = message.ts_event
                await self.bus.publish(
                    subjects.execution_watermark(venue_name),
                    ExecutionWatermark(id=derive_id("wm", venue_name, message.id), ts_event=message.ts_event,
                                       ts_init=now, correlation_id=message.id, venue=venue_name,
                                       instrument_id=message.instrument_id))

    async def on_resolved(self, envelope: Envelope) -> None:
        """A prediction market resolved: the paper venues cancel their open orders in it."""
        resolved = envelope.message
        if not isinstance(resolved, MarketResolved):
            return
        async with self._lock:
            now = self.clock.now_ns()
            for name, venue in self.venues.items():
                if not isinstance(venue, PaperVenue):
                    continue
                events = venue.resolve(resolved, now)
                if events:
                    log.info("venue %s: %d open orders cancelled: market %s resolved %s", name, len(events),
                             resolved.market_id, resolved.resolution)
                    await self.publish_events(name, events)
                await self.save_venue_state(name)

    # --- trading states (kill switch) and venue status ------------------------------------------

    def _trading_refusal(self, command: SubmitOrder, venue: str) -> str:
        """Why a SubmitOrder may not reach the venue in the current trading state ("" if it may)."""
        state = self.trading.effective(command.strategy_id, venue)
        if state is TradingState.HALTED and command.reduce_only and is_flatten_order(command.client_order_id):
            return ""
        if permits(state, reduce_only=command.reduce_only):
            return ""
        scope = self.trading.binding_scope(command.strategy_id, venue)
        what = "only the kill switch's closing orders" if state is TradingState.HALTED else "only reduce-only orders"
        return f"trading {state} ({scope}): {what} pass"

    async def on_trading_state_changed(self, change: TradingStateChanged) -> None:
        if change.state is TradingState.HALTED:
            await self.cancel_for_halt(change.scope, change.reason, change.id)
        venue = self.venues.get(change.scope.removeprefix(VENUE_PREFIX)) if change.scope.startswith(VENUE_PREFIX) \
            else None
        if isinstance(venue, LiveVenueAdapter) and change.state is TradingState.ACTIVE and venue.reducing_reason:
            venue.clear_reducing()  # a person released the venue after a reconciliation mismatch
            async with self._lock:
                await self.save_venue_state(venue.name)

    async def cancel_for_halt(self, scope: str, reason: str, correlation_id: str) -> int:
        """Cancel the open orders a HALTED ``scope`` covers (not ``tw-fl-`` closing orders nor bracket
        exits); returns how many were cancelled."""
        if scope == GLOBAL:
            names, strategy = list(self.venues), None
        elif scope.startswith(VENUE_PREFIX):
            names, strategy = [n for n in self.venues if n == scope.removeprefix(VENUE_PREFIX)], None
        elif scope.startswith(STRATEGY_PREFIX):
            names, strategy = list(self.venues), scope.removeprefix(STRATEGY_PREFIX)
        else:
            return 0
        cancelled = 0
        async with self._lock:
            for name in names:
                venue = self.venues[name]
                now = self.clock.now_ns()
                events: list[OrderEvent] = []
                for coid, strategy_id, instrument_id, ts_event in self._cancellable(venue, strategy):
                    command = CancelOrder(
                        id=derive_id("halt-cancel", correlation_id, coid), ts_event=ts_event, ts_init=now,
                        correlation_id=correlation_id, strategy_id=strategy_id, instrument_id=instrument_id,
                        client_order_id=coid, reason=f"kill switch: {scope} HALTED: {reason}"[:500])
                    events += await self._venue_call(name, venue.cancel(command, now))
                if not events:
                    continue
                await self.publish_events(name, events)
                await self.save_venue_state(name)
                await self.save_exits(name)
                self.halt_cancels.labels(name).inc(len(events))
                cancelled += len(events)
                log.warning("venue %s: %d open orders cancelled: %s HALTED (%s)", name, len(events), scope, reason,
                            extra={"audit": "halt_cancel", "venue": name, "scope": scope})
        return cancelled

    def _cancellable(self, venue: VenueAdapter, strategy: str | None) -> list[tuple[str, str, str, int]]:
        """``(client order id, strategy, instrument, event time)`` of the open orders to cancel."""
        if isinstance(venue, PaperVenue):
            state = msgspec.json.decode(venue.export_state(), type=VenueState)
            out = []
            for o in state.orders:
                order = o.order
                if o.exit or is_flatten_order(order.client_order_id) or is_exit_order(order.client_order_id):
                    continue
                if strategy is not None and order.strategy_id != strategy:
                    continue
                ts = venue.last_bar_ts(order.instrument_id)
                out.append((order.client_order_id, order.strategy_id, order.instrument_id,
                            max(ts if ts is not None else 0, order.ts_event)))
            return out
        if isinstance(venue, LiveVenueAdapter):  # it knows each order's strategy and instrument
            return [c for c in venue.cancellable(strategy) if not is_flatten_order(c[0]) and not is_exit_order(c[0])]
        if strategy is not None:
            return []
        now = self.clock.now_ns()
        return [(coid, "kill-switch", f"UNKNOWN.{venue.name}", now) for coid in venue.open_orders()
                if not is_flatten_order(coid) and not is_exit_order(coid)]

    async def _venue_call(self, name: str, call: Awaitable[list[OrderEvent]]) -> list[OrderEvent]:
        """Run an adapter call; a ``ConnectionError`` marks the venue disconnected (and is raised again)."""
        try:
            events = await call
        except ConnectionError as exc:
            await self.report_venue_status(name, False, f"{type(exc).__name__}: {exc}")
            raise
        if not self.venue_connected.get(name, True):
            await self.report_venue_status(name, True, "an adapter call succeeded")
        return events

    # --- host of the live adapters (tradewire_execution.live.base.AdapterHost) -----------------------------

    @property
    def lock(self) -> asyncio.Lock:
        """The lock every venue call and publish runs under (live adapters' own tasks take it too)."""
        return self._lock

    async def adapter_events(self, venue: str, events: Sequence[OrderEvent]) -> None:
        """Events a live adapter learnt by itself (stream, polling, in-flight resolution, reconciliation); the
        caller holds the lock. Published like a command's events, then the adapter's state is saved."""
        await self.publish_events(venue, events)
        await self.save_venue_state(venue)
        await self.save_exits(venue)

    async def adapter_state_changed(self, venue: str) -> None:
        """Save a live adapter's state now (an order is journaled before its create is sent)."""
        await self.save_venue_state(venue)

    async def adapter_status(self, venue: str, connected: bool, reason: str) -> None:
        await self.report_venue_status(venue, connected, reason)

    async def adapter_alert(self, venue: str, severity: str, title: str, body: str) -> None:
        now = self.clock.now_ns()
        await self.bus.publish(subjects.alert(severity), Alert(
            id=derive_id("venue-alert", venue, title, body), ts_event=now, ts_init=now, severity=severity,
            title=title[:200], body=body[:2000], source="execution"))

    async def adapter_resolved(self, venue: str, resolved: MarketResolved) -> None:
        """A venue adapter learnt a market's resolution: published durably for the ledger (settlement), risk
        and the strategies; the paper venues' handler cancels open orders of that market."""
        await self.bus.publish(subjects.resolution(venue), resolved)

    async def report_venue_status(self, name: str, connected: bool, reason: str = "") -> None:
        """Record a venue's connection and publish a ``VenueStatus`` when it changed."""
        if self.venue_connected.get(name) is connected:
            return
        self.venue_connected[name] = connected
        self.venue_connected_gauge.labels(name).set(1 if connected else 0)
        now = self.clock.now_ns()
        (log.info if connected else log.error)("venue %s %s: %s", name, "connected" if connected else "disconnected",
                                               reason)
        await self.bus.publish(subjects.venue_status(name), VenueStatus(
            id=derive_id("venue-status", name, connected, now), ts_event=now, ts_init=now, venue=name,
            connected=connected, reason=reason[:500]))

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/v1/venues")
        async def venues() -> dict[str, object]:
            return {
                name: {"adapter": type(v).__name__, "capabilities": sorted(v.capabilities),
                       "open_orders": v.open_orders(), "connected": self.venue_connected.get(name, True),
                       "exits": "emulated" if name in self.exits else "native",
                       "emulated_exits_armed": [list(k) for k in self.exits[name].armed()] if name in self.exits
                       else [],
                       "trading_state": self.trading.effective(None, name).value}
                for name, v in self.venues.items()
            }


def build(config: Config, bus: Bus, clock: Clock | None = None) -> ExecutionService:
    return ExecutionService(config, bus, clock=clock)
