"""The service base: lifecycle (start, ready, drain on SIGTERM, stop), bus, HTTP, metrics.

A service subclasses :class:`Service`, subscribes in ``on_start`` and adds routes in
``add_routes``. The same object runs over NATS in production, and on the in-memory bus in
tests and the backtester.

Every service sees the trading state: before ``on_start`` it loads each configured scope's state
from the KV bucket and follows ``TradingStateChanged`` events on ``risk.state`` (risk, which owns
the states, only loads them). ``/readyz`` shows the view, the gauge
``tradewire_<service>_trading_state_observed_value{scope}`` (0 ACTIVE, 1 REDUCING, 2 HALTED)
exports it, and a service reacts to changes in :meth:`Service.on_trading_state_changed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from tradewire_common import subjects
from tradewire_common.bus import Bus, Envelope, NatsBus, stats_reply
from tradewire_common.clock import Clock, LiveClock
from tradewire_common.config import Config
from tradewire_common.http import create_app
from tradewire_common.metrics import ServiceMetrics
from tradewire_common.nats_auth import client_auth
from tradewire_common.schemas import TradingStateChanged
from tradewire_common.trading_state import RANK, TradingStateView, configured_scopes

log = logging.getLogger(__name__)


class Service:
    """Base of the five services."""

    name: str = "service"
    #: True for the service that owns the trading states (risk): it loads them but follows no events.
    owns_trading_state: bool = False

    def __init__(self, config: Config, bus: Bus, *, clock: Clock | None = None) -> None:
        self.config = config
        self.bus = bus
        self.metrics: ServiceMetrics = bus.metrics
        self.clock = clock or LiveClock()
        self.ready = False
        self._stopped = asyncio.Event()
        #: The trading state of every configured scope, as this service knows it.
        self.trading = TradingStateView(configured_scopes(config))
        self.trading_state_observed = self.metrics.gauge(
            "trading_state_observed_value",
            "Trading state of each scope as this service sees it: 0 ACTIVE, 1 REDUCING, 2 HALTED", ("scope",))
        self.show_trading_state()

    # --- hooks --------------------------------------------------------------------------------
    async def on_start(self) -> None:
        """Subscribe and load state. Runs after the bus is connected."""

    async def on_stop(self) -> None:
        """Release resources. Runs after subscriptions drained."""

    def add_routes(self, app: FastAPI) -> None:
        """Add the service's own HTTP routes."""

    async def on_trading_state_changed(self, change: TradingStateChanged) -> None:
        """React to a scope's new trading state (already in ``self.trading``). No-op by default."""

    # --- trading state ------------------------------------------------------------------------
    async def watch_trading_state(self) -> None:
        """Follow ``risk.state`` (unless this service owns the states), then load every scope from KV."""
        if not self.owns_trading_state:
            await self.bus.subscribe(subjects.RISK_STATE, self._on_trading_state)
        await self.trading.load(self.bus)
        self.show_trading_state()

    async def _on_trading_state(self, envelope: Envelope) -> None:
        change = envelope.message
        if not isinstance(change, TradingStateChanged) or not self.trading.apply(change):
            return
        self.show_trading_state()
        log.info("trading state of %s is %s (%s by %s)", change.scope, change.state, change.reason, change.actor)
        await self.on_trading_state_changed(change)

    def show_trading_state(self) -> None:
        for scope, stored in self.trading.states.items():
            self.trading_state_observed.labels(scope).set(RANK[stored.state])

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.bus.connect()

        async def answer_stats(request: bytes) -> bytes:
            if request == b"report":
                self.bus.report_stats = True  # a lockstep driver is listening from now on
            return stats_reply(self.bus)

        await self.bus.serve(subjects.STATS, answer_stats)
        await self.watch_trading_state()
        await self.on_start()
        self.ready = self.bus.ready = True
        self.metrics.up.set(1)
        await self.bus.report()
        log.info("service ready")

    async def stop(self) -> None:
        """Drain: stop being ready, finish in-flight messages, then close."""
        if not self.ready and self._stopped.is_set():
            return
        self.ready = self.bus.ready = False
        self.metrics.up.set(0)
        await self.bus.close()
        await self.on_stop()
        self._stopped.set()
        log.info("service stopped")

    def app(self) -> FastAPI:
        return create_app(self, self.add_routes)


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service's lifecycle owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_forever(service: Service, *, host: str, port: int, stop: asyncio.Event | None = None) -> None:
    """Run a service with its HTTP server until SIGTERM/SIGINT (or ``stop`` is set)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    server = _QuietServer(
        uvicorn.Config(service.app(), host=host, port=port, log_level="warning", access_log=False,
                       lifespan="off")
    )
    http_task = asyncio.create_task(server.serve(), name=f"{service.name}-http")
    try:
        await service.start()
        stop_task = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({stop_task, http_task}, return_when=asyncio.FIRST_COMPLETED)
        if http_task in done and http_task.exception() is not None:
            raise RuntimeError(f"HTTP server failed on {host}:{port}") from http_task.exception()
        stop_task.cancel()
    finally:
        await service.stop()
        server.should_exit = True
        await asyncio.gather(http_task, return_exceptions=True)


def nats_bus_for(service_name: str, config: Config, url: str | None = None) -> NatsBus:
    return NatsBus(
        service_name,
        url or config.bus.url,
        credentials_file=config.bus.credentials_file,
        # bus.user from the file (or its env override) wins; else the service-side environment
        auth=client_auth(config.bus) if config.bus.user else "env",
        connect_timeout=config.bus.connect_timeout_s,
        stream_replicas=config.bus.stream_replicas,
        publish_retry_s=config.bus.publish_retry_s,
        max_deliver=config.bus.max_deliver,
    )
