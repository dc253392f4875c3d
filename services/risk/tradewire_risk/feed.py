"""Keeps the risk service's :class:`~tradewire_risk.context.RiskContext` current from the bus, and
rebuilds it from the ledger at start.

* **Order events** (only when a check or the sizing needs them, see ``Params.needs_order_events``):
  a durable consumer ``risk-context`` on ``ord.evt.>``: fills, cancels, expiries, rejects and
  execution's watermarks (with each bar's close: the last prices), in the order execution published
  them. Applying them is idempotent (fills by ``(client_order_id, trade_id)``), so redeliveries and
  the overlap with the rebuild change nothing.
* **Bars** (only for ``volatility_target`` sizing): a core subscription for the ATR. Its pattern is
  ``md.bar.*.*.*`` (the same subjects as ``md.bar.>``) so that it is counted apart from a circuit
  breaker's ``md.bar.>`` subscription in the lockstep's per-pattern balance.
* **Resolutions** (always): a core subscription to ``pm.resolved.*`` (``MarketResolved``): resolved
  instruments stop trading (:mod:`tradewire_risk.binary`). A resolution published while risk was down
  comes from the ledger's ``/v1/resolutions`` at the rebuild (without ``risk.ledger_url`` it is missed).
* **Snapshots**: the service hands every ``pf.snapshot`` to :meth:`ContextFeed.on_snapshot` (peak and
  start-of-day equity).
* **Rebuild** (with ``risk.ledger_url``): before subscribing, the ledger's ``/v1/orders`` (the newest
  10,000 orders: open ones, and submission times for the rate limits), ``/v1/fills`` (the newest
  100,000: fills by strategy, round trips, first fill) and ``/v1/equity`` (the latest 1,000,000 points:
  peak and start-of-day equity) and ``/v1/resolutions`` (every resolved market). Until it succeeds
  (retried every ``RETRY_S``) the context is
  incomplete and the engine denies entries with ``UNKNOWN_PORTFOLIO``; closes still pass.
* **Determinism**: before a signal from event time ``t`` is decided, :meth:`wait_covering` waits (up to
  ``risk.portfolio_wait_s``) until every venue's watermark is at ``t`` (so every fill and cancel up to
  ``t`` is applied, like the snapshot that covers ``t``) and, for the ATR, a bar of the instrument at
  ``t`` has arrived. A backtest therefore makes the same decisions however messages interleave.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from tradewire_common import subjects
from tradewire_common.bus import Bus, Envelope
from tradewire_common.config import Config
from tradewire_common.schemas import PortfolioSnapshot, Signal
from tradewire_risk.context import RiskContext
from tradewire_risk.engine import RiskEngine

log = logging.getLogger(__name__)

#: The order-event consumer's durable name.
DURABLE = "risk-context"
#: Order events: every strategy's, execution's watermarks and venue status.
ORDER_EVENTS = "ord.evt.>"
#: Every bar (``md.bar.{venue}.{symbol}.{interval}``), counted apart from other ``md.bar.>`` subscribers.
BARS = "md.bar.*.*.*"
#: Seconds between attempts to rebuild from the ledger.
RETRY_S = 2.0
#: How much the rebuild asks the ledger for (its own maxima).
LIMITS = {"orders": 10_000, "fills": 100_000, "equity": 1_000_000, "resolutions": 100_000}


class ContextFeed:
    """The context of one risk service: fed from the bus, rebuilt from the ledger."""

    def __init__(self, config: Config, bus: Bus, engine: RiskEngine) -> None:
        self.config = config
        self.bus = bus
        self.params = engine.params
        self.context = RiskContext(atr_window=config.risk.atr_window)
        self._changed = asyncio.Condition()
        self._retry: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Rebuild from the ledger (if configured), then subscribe to what the checks need."""
        # first: a resolution published during the rebuild is not missed (applying one twice is harmless)
        await self.bus.subscribe(subjects.ALL_RESOLUTIONS, self.on_message)
        if self.config.risk.ledger_url:
            if not await self.rebuild():
                self.context.complete = False
                self._retry = asyncio.create_task(self._rebuild_until_done(), name="risk-context-rebuild")
        if self.params.needs_order_events:
            await self.bus.subscribe(ORDER_EVENTS, self.on_message, durable=DURABLE)
        if self.params.needs_bars:
            await self.bus.subscribe(BARS, self.on_message)

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            await asyncio.gather(self._retry, return_exceptions=True)

    async def on_message(self, envelope: Envelope) -> None:
        async with self._changed:
            self.context.apply(envelope.message)
            self._changed.notify_all()

    def on_snapshot(self, snapshot: PortfolioSnapshot) -> None:
        self.context.observe_equity(snapshot.as_of, snapshot.equity)

    async def wait_covering(self, signal: Signal) -> bool:
        """Wait until the context covers the signal's time (see the module docstring); False on timeout."""
        needs_events, needs_bars = self.params.needs_order_events, self.params.needs_bars
        if not (needs_events or needs_bars):
            return True
        ctx, t = self.context, signal.ts_event

        def covered() -> bool:
            if needs_events and not ctx.covers(t):
                return False
            if needs_bars:
                latest = [ctx.bars.latest(signal.instrument_id, i) for i in ctx.bars.intervals(signal.instrument_id)]
                return any(ts is not None and ts >= t for ts in latest)
            return True

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(covered), self.config.risk.portfolio_wait_s)
            except TimeoutError:
                log.warning("risk's context does not cover %d yet (order events or bars); deciding with what "
                            "it has", t)
                return False
        return True

    # -- rebuild ------------------------------------------------------------------------------------

    async def rebuild(self) -> bool:
        """Read the ledger's orders, fills and equity into the context; False when the ledger cannot be read."""
        url = self.config.risk.ledger_url.rstrip("/")
        try:
            async with httpx.AsyncClient(timeout=30.0) as client:
                rows = {name: await _get(client, f"{url}/v1/{name}", limit) for name, limit in LIMITS.items()}
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("cannot rebuild risk's context from the ledger at %s: %s", url, exc)
            return False
        async with self._changed:
            self.context.restore_orders(rows["orders"])
            self.context.restore_fills(rows["fills"])
            self.context.restore_equity(rows["equity"])
            self.context.restore_resolutions(rows["resolutions"])
            self.context.complete = True
            self._changed.notify_all()
        log.info("risk's context rebuilt from the ledger: %d open orders, %d fills, %d equity points",
                 len(self.context.open_orders), len(rows["fills"]), len(rows["equity"]))
        return True

    async def _rebuild_until_done(self) -> None:
        while not await self.rebuild():
            await asyncio.sleep(RETRY_S)


async def _get(client: httpx.AsyncClient, url: str, limit: int) -> list[dict[str, Any]]:
    response = await client.get(url, params={"limit": limit})
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, list):
        raise ValueError(f"{url}: expected a list, got {type(body).__name__}")
    return body
