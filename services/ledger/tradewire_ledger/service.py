"""The ledger service: records every decision and event, keeps the portfolio, publishes snapshots.

Every message is written (SQLite WAL or PostgreSQL) before its JetStream delivery is
acknowledged, and recording is idempotent: a redelivered message or a repeated trade id changes
nothing. The portfolio is rebuilt from the stored fills at start.

Snapshots carry an ``as_of`` watermark: the minimum of the latest market data marked (bars, and quotes
and books) and, for every paper or live venue of a bar-marked instrument, the execution watermark (every
fill up to that time applied).

**Quotes and books** (core subscriptions to ``md.quote.>`` and ``md.book.>``): a live pipeline without bars
(a prediction feed publishes books, quotes and trades) still advances the watermark, so risk finds a snapshot
covering a signal's time. A ``Quote`` marks its instrument at the mid ``(bid + ask) / 2``, a ``BookSnapshot``
at the mid of its top (not while a side is empty or crossed), a ``BookDelta`` marks nothing; each moves the
market-data watermark to its event time. The mid, not the bid for longs: a position is valued where it
trades between both sides (a fresh long marked at the bid would show half the spread as a loss at once),
like a bar's close. Venues seen only in quotes or books send no execution watermarks (execution sends them
after bars), so they do not hold the watermark back; a venue with bars still does.

Quotes do not publish a snapshot each (a busy stream would write an equity row per quote): the watermark
advances in memory and a snapshot goes out when (a) it moved :data:`QUOTE_SNAPSHOT_EVERY_NS` of event time
past the last published ``as_of``, or (b) a recorded ``Signal`` (``sig.*``) has an event time the published
snapshots do not cover yet and the watermark does (at once if it already does, else with the market data
that moves it there; every such signal counts, not only the latest): exactly what risk waits for. Both rules
depend only on the sequence of messages (event times), never on wall-clock timers, so a lockstep replay
publishes the same snapshots every time; bars, execution watermarks, fills, reversals and resolutions still
publish at once.

Prediction markets:

* ``MarketResolved`` (durable consumer on ``pm.resolved.*``): every instrument of ``payouts`` with an open
  position is settled at its payout (:meth:`Portfolio.settle`), a settlement row per instrument is stored
  with the message (``/v1/settlements``), and the position leaves the snapshots. The same resolution
  twice settles once (its id, and a settled position is gone), across restarts too.
* Provisional fills (``OrderFilled.provisional``) count at once; ``FillConfirmed`` marks them
  ``confirmed``; ``FillReversed`` marks them ``reversed`` and the portfolio and per-strategy book are
  rebuilt from the journal (the fills that count and the settlements, in order; marks kept), so they are
  exactly what they would be had the fill never happened. ``/v1/fills`` shows each fill's ``status``.
* Messages that move the portfolio (fills, reversals, resolutions) are recorded and applied under one
  lock, so the order the store saw (a settlement's ``after_fill_seq``) is the order applied.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
from fastapi import FastAPI

from tradewire_common import schemas, subjects
from tradewire_common.bus import Bus, Envelope
from tradewire_common.clock import Clock
from tradewire_common.config import Config
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.metrics_orders import OrderReconciler, TickToOrder
from tradewire_common.metrics_portfolio import PortfolioMetrics
from tradewire_common.schemas import (
    Bar,
    BookDelta,
    BookSnapshot,
    ExecutionWatermark,
    FillReversed,
    MarketResolved,
    OrderFilled,
    Quote,
    ReplayCompleted,
    ReplayStarted,
    Signal,
    SubmitOrder,
)
from tradewire_common.service import Service
from tradewire_ledger.accounting import Portfolio, Settled
from tradewire_ledger.store import LedgerStore, open_store
from tradewire_ledger.store_lifecycle import Journal
from tradewire_ledger.store_sql import REVERSED
from tradewire_ledger.strategy_book import StrategyMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")

DURABLE_SUBJECTS: tuple[tuple[str, str], ...] = (
    (subjects.ALL_SIGNALS, "ledger-signals"),
    (subjects.ALL_STRATEGY_ERRORS, "ledger-strategy-errors"),
    (subjects.ALL_ORDER_COMMANDS, "ledger-commands"),
    (subjects.ALL_ORDER_EVENTS, "ledger-events"),
    (subjects.RISK_STATE, "ledger-state"),
    (subjects.ALL_DEAD_LETTERS, "ledger-dead-letters"),
    (subjects.ALL_ALERTS, "ledger-alerts"),
    (subjects.REPLAY, "ledger-replay"),
    (subjects.ALL_GOVERNANCE, "ledger-governance"),
    (subjects.ALL_RESOLUTIONS, "ledger-resolutions"),
)
#: Event time the watermark must move, on quotes and books alone, before they publish a snapshot (rule (a)).
QUOTE_SNAPSHOT_EVERY_NS = 1_000_000_000


class LedgerService(Service):
    name = "ledger"

    def __init__(self, config: Config, bus: Bus, *, clock: Clock | None = None,
                 store: LedgerStore | None = None) -> None:
        super().__init__(config, bus, clock=clock)
        self._store = store
        #: Call the store inline instead of in a thread (set by the backtester).
        self.inline_store = False
        lc = config.ledger
        self.portfolio = Portfolio(lc.account, lc.starting_cash, lc.currency)
        self.executing_venues = {v.name for v in config.execution.venues}
        self.bar_watermark = 0
        #: event time of the latest quote or book seen
        self.quote_watermark = 0
        #: event times of recorded signals no published snapshot covers yet, a min-heap (rule (b))
        self.uncovered_signals: list[int] = []
        self.exec_watermarks: dict[str, int] = {}
        self.marked_venues: set[str] = set()
        self.first_fill_wall_s: float | None = None
        #: ``(client_order_id, trade_id)`` of every fill applied to the portfolio (reversed ones included)
        self._applied: set[tuple[str, str]] = set()
        #: ... and of those that still count (not reversed)
        self._counted: set[tuple[str, str]] = set()
        #: reversals and settlements so far: part of the snapshot id, which must change with them
        self._revision = 0
        #: serialises recording and applying what moves the portfolio (fills, reversals, resolutions)
        self._book_lock = asyncio.Lock()
        #: ``as_of`` of the latest snapshot published
        self._published_as_of = 0
        self._last_snapshot: bytes | None = None
        self.replay: dict[str, Any] = {}
        m = self.metrics
        self.recorded = m.counter("messages_recorded_total", "Messages stored", ("type",))
        self.duplicates = m.counter("duplicates_total", "Redelivered messages or trades ignored", ("type",))
        self.equity = m.gauge("equity_value", "Portfolio equity")
        self.cash = m.gauge("cash_value", "Portfolio cash")
        self.realized = m.gauge("realized_pnl_value", "Realised PnL")
        self.unrealized = m.gauge("unrealized_pnl_value", "Unrealised PnL")
        self.exposure = m.gauge("gross_exposure_value", "Gross exposure")
        self.portfolio_metrics = PortfolioMetrics(m, lc.starting_cash)
        self.tick_to_order = TickToOrder(m)
        self.reconciler = OrderReconciler(m)
        #: positions and PnL per strategy (gauges), from the same fills as the portfolio
        self.strategy_metrics = StrategyMetrics(m)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store call: in a worker thread (services), or inline (backtests, where the
        event loop has nothing else to do and the thread hop would dominate)."""
        if self.inline_store:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    @property
    def store(self) -> LedgerStore:
        assert self._store is not None, "ledger store not opened"
        return self._store

    async def on_start(self) -> None:
        if self._store is None:
            self._store = await self._db(open_store, self.config.ledger)
        journal = await self._db(self.store.load_journal)
        self._rebuild(journal)
        self._applied = {(f.fill.client_order_id, f.fill.trade_id) for f in journal.fills}
        log.info("ledger open: %d fills and %d settlements replayed into the portfolio", len(journal.fills),
                 len(journal.settlements))
        await self.bus.subscribe(subjects.ALL_BARS, self.on_bar)
        await self.bus.subscribe(subjects.ALL_QUOTES, self.on_quote)
        await self.bus.subscribe(subjects.ALL_BOOKS, self.on_quote)
        await self.bus.serve(subjects.PORTFOLIO_REQUEST, self.answer_portfolio)
        for subject, durable in DURABLE_SUBJECTS:
            await self.bus.subscribe(subject, self.on_record, durable=durable)

    async def on_stop(self) -> None:
        if self._store is not None:
            await self._db(self._store.close)

    def _rebuild(self, journal: Journal) -> None:
        """Portfolio and per-strategy book from the journal (marks and watermark kept)."""
        lc = self.config.ledger
        entries = journal.entries()
        portfolio = Portfolio.rebuild(lc.account, lc.starting_cash, lc.currency, entries)
        portfolio.keep_marks(self.portfolio)
        self.portfolio = portfolio
        self.strategy_metrics.rebuild(entries)
        self._counted = {(f.fill.client_order_id, f.fill.trade_id) for f in journal.fills if f.status != REVERSED}
        self._revision = journal.revision

    async def answer_portfolio(self, _request: bytes) -> bytes | None:
        """The latest published snapshot, for a (re)starting risk service; empty before the first."""
        return self._last_snapshot or b""

    async def on_record(self, envelope: Envelope) -> None:
        message = envelope.message
        kind = type(message).__name__
        if isinstance(message, ExecutionWatermark):
            if message.instrument_id and message.close is not None:
                # the bar's mark, durable: covers a bar this ledger missed while restarting
                self.portfolio.mark(message.instrument_id, message.close, message.ts_event + 1)
                self.bar_watermark = max(self.bar_watermark, message.ts_event)
                self.marked_venues.add(message.venue)
            self.exec_watermarks[message.venue] = max(self.exec_watermarks.get(message.venue, 0), message.ts_event)
            await self.publish_snapshot_if_advanced()
            return
        if isinstance(message, ReplayStarted | ReplayCompleted):
            self.replay[kind] = {"dataset": message.dataset, "ts_init": message.ts_init}
            if isinstance(message, ReplayCompleted):
                self.replay[kind]["bars"] = message.bars
        if isinstance(message, OrderFilled):
            async with self._book_lock:
                new = await self._apply_fill(message, envelope.subject)
        elif isinstance(message, FillReversed):
            async with self._book_lock:
                new = await self._reverse(message, envelope.subject)
        elif isinstance(message, MarketResolved):
            async with self._book_lock:
                new = await self._resolve(message, envelope.subject)
        else:
            new = await self._db(self.store.record, message, envelope.subject)
        (self.recorded if new else self.duplicates).labels(kind).inc()
        if isinstance(message, Signal) and message.ts_event > self._published_as_of:
            heapq.heappush(self.uncovered_signals, message.ts_event)
            await self.publish_snapshot_if_advanced(throttled=True)
        if new:
            self.reconciler.observe(message)
            if isinstance(message, SubmitOrder):
                self.tick_to_order.on_order(message)

    async def _apply_fill(self, fill: OrderFilled, subject: str) -> bool:
        new = await self._db(self.store.record_fill, fill, subject)
        key = (fill.client_order_id, fill.trade_id)
        # not only when new: an earlier attempt may have committed and then failed (a lost
        # commit acknowledgement), so the redelivery finds it stored but never applied
        if key not in self._applied:
            self._applied.add(key)
            if fill.provisional and await self._db(self.store.fill_status, *key) == REVERSED:
                return new  # its reversal came first
            self._counted.add(key)
            self.portfolio.apply_fill(fill)
            self.strategy_metrics.apply_fill(fill)
            if self.first_fill_wall_s is None:
                self.first_fill_wall_s = time.time()
            await self.publish_snapshot()
        return new

    async def _reverse(self, event: FillReversed, subject: str) -> bool:
        new = await self._db(self.store.record, event, subject)
        key = (event.client_order_id, event.trade_id)
        if key in self._counted and await self._db(self.store.fill_status, *key) == REVERSED:
            self._rebuild(await self._db(self.store.load_journal))
            log.warning("fill %s of %s reversed (%s): portfolio rebuilt without it", event.trade_id,
                        event.client_order_id, event.reason or "no reason given")
            await self.publish_snapshot()
        return new

    async def _resolve(self, resolved: MarketResolved, subject: str) -> bool:
        settling = [s for p in resolved.payouts
                    if (s := self.portfolio.preview_settle(p.instrument_id, p.payout)) is not None]
        new = await self._db(self.store.record_resolution, resolved, subject, settling)
        done: list[Settled] = []
        for payout in resolved.payouts:
            if (settled := self.portfolio.settle(payout.instrument_id, payout.payout)) is not None:
                done.append(settled)
            self.strategy_metrics.book.settle(payout.instrument_id, payout.payout)
        if done:
            self._revision += 1
            log.info("market %s of %s resolved %s: settled %s", resolved.market_id, resolved.venue,
                     resolved.resolution, ", ".join(f"{s.quantity} {s.instrument_id} at {s.payout}" for s in done))
            await self.publish_snapshot()
        return new

    async def on_bar(self, envelope: Envelope) -> None:
        bar = envelope.message
        if not isinstance(bar, Bar):
            return
        # a bar's close comes after its open: mark just after ts_event so a fill at this bar's
        # open (same ts_event) never overrides the close as the last price
        self.portfolio.mark(bar.instrument_id, bar.close, bar.ts_event + 1)
        self.bar_watermark = max(self.bar_watermark, bar.ts_event)
        self.tick_to_order.on_bar(bar)
        _symbol, venue = split_instrument_id(bar.instrument_id)
        if venue in self.executing_venues:
            self.marked_venues.add(venue)
        await self.publish_snapshot_if_advanced()

    async def on_quote(self, envelope: Envelope) -> None:
        """A quote or book: marks at the mid, moves the watermark (see the module docstring)."""
        message = envelope.message
        if isinstance(message, Quote):
            self.portfolio.mark(message.instrument_id, (message.bid + message.ask) / 2, message.ts_event)
        elif isinstance(message, BookSnapshot):
            if message.bids and message.asks and message.bids[0].price <= message.asks[0].price:
                mid = (message.bids[0].price + message.asks[0].price) / 2
                self.portfolio.mark(message.instrument_id, mid, message.ts_event)
        elif not isinstance(message, BookDelta):
            return
        if message.ts_event > self.quote_watermark:
            self.quote_watermark = message.ts_event
            await self.publish_snapshot_if_advanced(throttled=True)

    def watermark(self) -> int:
        marks = [max(self.bar_watermark, self.quote_watermark)]
        marks += [self.exec_watermarks.get(v, 0) for v in self.marked_venues]
        return min(marks)

    async def publish_snapshot_if_advanced(self, *, throttled: bool = False) -> None:
        """Advance ``as_of`` to the watermark and publish a snapshot if it moved; ``throttled`` (quotes, books,
        signals): only by the rules (a) and (b) of the module docstring."""
        wm = self.watermark()
        if wm > self.portfolio.as_of:
            self.portfolio.advance(wm)
        as_of, published = self.portfolio.as_of, self._published_as_of
        # compared with what was published, not with as_of alone: if storing or publishing the
        # snapshot failed, the retried message must still get it out (risk waits for it)
        if as_of <= published:
            return
        waiting = self.uncovered_signals
        while waiting and waiting[0] <= published:
            heapq.heappop(waiting)  # covered by a snapshot published since
        if not throttled or as_of >= published + QUOTE_SNAPSHOT_EVERY_NS or (waiting and waiting[0] <= as_of):
            await self.publish_snapshot()

    async def publish_snapshot(self) -> None:
        now = self.clock.now_ns()
        # reversals and settlements change the account without a new fill or watermark
        revision = (self._revision,) if self._revision else ()
        snap = self.portfolio.snapshot(
            message_id=derive_id("pf", self.config.ledger.account, self.portfolio.as_of, self.portfolio.fills,
                                 *revision),
            ts_init=now,
        )
        await self._db(self.store.append_equity, snap)
        await self.bus.publish(subjects.PORTFOLIO_SNAPSHOT, snap)
        self._last_snapshot = schemas.encode(snap)
        self._published_as_of = max(self._published_as_of, snap.as_of)
        self.equity.set(float(snap.equity))
        self.cash.set(float(snap.cash))
        self.realized.set(float(snap.realized_pnl))
        self.unrealized.set(float(snap.unrealized_pnl))
        self.exposure.set(float(snap.gross_exposure))
        self.portfolio_metrics.update(snap)
        self.strategy_metrics.update(self.portfolio.last_price)

    async def summary(self) -> dict[str, Any]:
        def count(kind: str) -> int:
            return self.store.count_messages(kind)

        now = self.clock.now_ns()
        snap = self.portfolio.snapshot(message_id=derive_id("summary", now), ts_init=now)
        start = self.config.ledger.starting_cash
        counts = {name: await self._db(count, name) for name in (
            "SubmitOrder", "OrderFilled", "OrderDenied", "Signal", "DeadLetter", "StrategyError")}
        return_pct = (snap.equity / start - 1) * 100 if start else Decimal(0)
        return {
            "orders": counts["SubmitOrder"],
            "fills": counts["OrderFilled"],
            "denials": counts["OrderDenied"],
            "signals": counts["Signal"],
            "dead_letters": counts["DeadLetter"],
            "strategy_errors": counts["StrategyError"],
            "starting_cash": str(start),
            "final_equity": str(snap.equity),
            "cash": str(snap.cash),
            "realized_pnl": str(snap.realized_pnl),
            "unrealized_pnl": str(snap.unrealized_pnl),
            "return_pct": float(return_pct),
            "as_of": snap.as_of,
            "first_fill_wall_s": self.first_fill_wall_s,
            "replay": self.replay,
        }

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/v1/summary")
        async def summary() -> dict[str, Any]:
            return await self.summary()

        @app.get("/v1/positions")
        async def positions() -> dict[str, Any]:
            now = self.clock.now_ns()
            snap = self.portfolio.snapshot(message_id=derive_id("positions", now), ts_init=now)
            body: dict[str, Any] = msgspec.to_builtins(snap)
            return body

        @app.get("/v1/orders")
        async def orders(limit: int = 100, strategy_id: str | None = None) -> list[dict[str, Any]]:
            return await self._db(self.store.list_orders, min(limit, 10_000), strategy_id)

        @app.get("/v1/fills")
        async def fills(limit: int = 100) -> list[dict[str, Any]]:
            return await self._db(self.store.list_fills, min(limit, 100_000))

        @app.get("/v1/settlements")
        async def settlements(limit: int = 100) -> list[dict[str, Any]]:
            """Positions closed by market resolutions, most recent first."""
            return await self._db(self.store.list_settlements, min(limit, 100_000))

        @app.get("/v1/resolutions")
        async def resolutions(limit: int = 1000) -> list[dict[str, Any]]:
            """Every recorded ``MarketResolved``, oldest first (risk rebuilds its untradable markets)."""
            return await self._db(self.store.messages_of_type, "MarketResolved", min(limit, 100_000), None)

        @app.get("/v1/equity")
        async def equity(limit: int = 1000) -> list[dict[str, Any]]:
            return await self._db(self.store.equity_curve, min(limit, 1_000_000))

        @app.get("/v1/promotions")
        async def promotions(limit: int = 1000, strategy_id: str | None = None) -> list[dict[str, Any]]:
            """Every recorded stage change (``StrategyStageChanged``), oldest first."""
            return await self._db(self.store.messages_of_type, "StrategyStageChanged", min(limit, 10_000),
                                  strategy_id)

        @app.get("/v1/dead-letters")
        async def dead_letters(limit: int = 100) -> list[dict[str, Any]]:
            return await self._db(self.store.dead_letters, min(limit, 10_000))


def build(config: Config, bus: Bus, clock: Clock | None = None) -> LedgerService:
    return LedgerService(config, bus, clock=clock)
