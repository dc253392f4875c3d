"""The datafeed service: replays bar files onto ``md.bar.{venue}.{symbol}.{interval}``.

At ``speed = "max"`` with ``lockstep`` (the default) it waits for the whole pipeline to go quiet
after each bar (see ``tradewire_common.lockstep``), which makes a replay over NATS produce exactly
the fills a backtest does. At ``speed = N`` it paces bars at N× real time. Progress is kept in
the KV bucket, so a restarted feed resumes where it stopped instead of replaying from the start.
A source with a recorded prediction-market ``resolution`` has it published as ``MarketResolved`` on
``pm.resolved.<venue>`` after the last bar, so the ledger settles what the replay opened.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from pathlib import Path
from typing import Any

import msgspec
from fastapi import FastAPI

from tradewire_common import subjects
from tradewire_common.bus import Bus
from tradewire_common.clock import Clock, SimulatedClock
from tradewire_common.config import Config
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.lockstep import Lockstep
from tradewire_common.schemas import Bar, ReplayCompleted, ReplayStarted
from tradewire_common.service import Service
from tradewire_datafeed.catalog import read_source
from tradewire_datafeed.readers import to_bars
from tradewire_datafeed.readers_resolution import read_resolution

log = logging.getLogger(__name__)

PROGRESS_EVERY = 100


def load_replay(config: Config) -> list[Bar]:
    """Every configured source's bars, merged in event-time order (ties by instrument)."""
    streams: list[list[Bar]] = []
    for source in config.datafeed.replay:
        series = read_source(source.path, limit=source.limit)
        streams.append(to_bars(series, source.instrument_id, interval=source.interval or None))
    merged = list(heapq.merge(*streams, key=lambda b: (b.ts_event, b.instrument_id)))
    return [msgspec.structs.replace(bar, seq=i) for i, bar in enumerate(merged)]


class DatafeedService(Service):
    name = "datafeed"

    def __init__(self, config: Config, bus: Bus, *, clock: Clock | None = None) -> None:
        super().__init__(config, bus, clock=clock)
        self.bars = load_replay(config)
        #: Recorded market resolutions to publish when the replay ends (one per file).
        self.resolutions = [read_resolution(p) for p in dict.fromkeys(s.resolution for s in config.datafeed.replay
                                                                     if s.resolution)]
        self.dataset = ",".join(Path(s.path).name for s in config.datafeed.replay) or "none"
        self.progress_key = "replay.progress." + derive_id("replay", self.dataset, len(self.bars))[:16]
        self.published = 0
        self.done = False
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        #: Live market-data feeds (``datafeed.live``: ``tradewire_datafeed.ccxt_feed``), next to any replay.
        self.live_feeds: list[Any] = []
        if config.datafeed.live:
            from tradewire_datafeed.alpaca_data import live_feed as alpaca_live_feed
            from tradewire_datafeed.ccxt_feed import LiveFeed

            self.live_feeds = [(alpaca_live_feed if feed.exchange == "alpaca" else LiveFeed)(
                feed, self.bus.publish, now_ns=self.clock.now_ns) for feed in config.datafeed.live]
        #: Prediction-market feeds (``datafeed.prediction``: ``tradewire_datafeed.prediction.feed``).
        from tradewire_datafeed.prediction.feed import PredictionFeed, PredictionFeedMetrics

        self.prediction_metrics = PredictionFeedMetrics(self.metrics)
        self.prediction_feeds = [PredictionFeed(feed, self.bus.publish, metrics=self.prediction_metrics,
                                                now_ns=self.clock.now_ns) for feed in config.datafeed.prediction]
        self.lockstep: Lockstep | None = None
        m = self.metrics
        self.bars_out = m.counter("bars_published_total", "Bars published", ("instrument",))
        self.lockstep_timeouts = m.counter(
            "lockstep_timeouts_total", "Bars after which the pipeline did not go quiet"
        )
        self.last_bar_ts = m.gauge(
            "last_bar_timestamp_seconds", "Event time of the last bar", ("instrument",)
        )
        self.last_publish_ts = m.gauge(
            "last_bar_published_timestamp_seconds", "Clock time the last bar was published", ("instrument",)
        )
        self.replay_progress = m.gauge("replay_progress_ratio", "Share of the replay's bars published")
        self.replay_done = m.gauge(
            "replay_done_info", "1 once the replay published every bar (its data then ages legitimately)"
        )

    async def on_start(self) -> None:
        for feed in self.live_feeds:
            await feed.start()
        for prediction in self.prediction_feeds:
            await prediction.start()
        self._task = asyncio.create_task(self._run_replay(), name="replay")
        self._task.add_done_callback(self._replay_finished)

    def _replay_finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("replay failed", exc_info=task.exception())

    async def on_stop(self) -> None:
        for feed in self.live_feeds:
            await feed.stop()
        for prediction in self.prediction_feeds:
            await prediction.stop()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run_replay(self) -> None:
        dc = self.config.datafeed
        if not self.bars:
            self.done = True
            self.replay_done.set(1)
            return
        lockstep = self.lockstep = Lockstep(self.bus, dc.lockstep_services, timeout_s=dc.lockstep_timeout_s)
        await lockstep.wait_ready(dc.startup_timeout_s)
        raw = await self.bus.kv_get(self.progress_key)
        start = int(raw) if raw else 0
        if start:
            log.info("resuming replay at bar %d of %d", start, len(self.bars))
        now = self.clock.now_ns()
        self.started_at = time.monotonic()
        instruments = tuple(sorted({b.instrument_id for b in self.bars}))
        await self.bus.publish(
            subjects.REPLAY,
            ReplayStarted(
                id=derive_id("replay-started", self.dataset),
                ts_event=self.bars[0].ts_event,
                ts_init=now,
                dataset=self.dataset,
                instruments=instruments,
            ),
        )
        max_speed = dc.speed == "max"
        speed = 0.0 if max_speed else float(dc.speed)
        previous_ts: int | None = None
        for index in range(start, len(self.bars)):
            bar = self.bars[index]
            if not max_speed and previous_ts is not None:
                await asyncio.sleep(max(0, bar.ts_event - previous_ts) / 1e9 / speed)
            previous_ts = bar.ts_event
            if isinstance(self.clock, SimulatedClock):  # backtests: time is the bars' time
                self.clock.advance_to(max(self.clock.now_ns(), bar.ts_event))
            symbol, venue = split_instrument_id(bar.instrument_id)
            await self.bus.publish(
                subjects.bar(venue, symbol, bar.interval),
                msgspec.structs.replace(bar, ts_init=self.clock.now_ns()),
            )
            self.published = index + 1
            self.bars_out.labels(bar.instrument_id).inc()
            self.last_bar_ts.labels(bar.instrument_id).set(bar.ts_event / 1e9)
            self.last_publish_ts.labels(bar.instrument_id).set(self.clock.now_ns() / 1e9)
            self.replay_progress.set(self.published / len(self.bars))
            if max_speed and dc.lockstep and not await lockstep.wait_quiet():
                self.lockstep_timeouts.inc()
            if self.published % PROGRESS_EVERY == 0:
                await self.bus.kv_put(self.progress_key, str(self.published).encode())
        await self.bus.kv_put(self.progress_key, str(len(self.bars)).encode())
        await lockstep.wait_quiet()
        await self._publish_resolutions()
        self.finished_at = time.monotonic()
        await self.bus.publish(
            subjects.REPLAY,
            ReplayCompleted(
                id=derive_id("replay-completed", self.dataset),
                ts_event=self.bars[-1].ts_event,
                ts_init=self.clock.now_ns(),
                dataset=self.dataset,
                bars=len(self.bars),
            ),
        )
        await lockstep.wait_quiet()
        self.done = True
        self.replay_done.set(1)
        log.info("replay done: %d bars in %.2fs", len(self.bars), self.finished_at - self.started_at)

    async def _publish_resolutions(self) -> None:
        """The recorded resolutions, at their event time, after the last bar (the ledger settles)."""
        for resolved in self.resolutions:
            if isinstance(self.clock, SimulatedClock):
                self.clock.advance_to(max(self.clock.now_ns(), resolved.ts_event))
            await self.bus.publish(subjects.resolution(resolved.venue),
                                   msgspec.structs.replace(resolved, ts_init=self.clock.now_ns()))
            log.info("replayed the resolution of %s %s: %s", resolved.venue, resolved.market_id, resolved.resolution)
            if self.lockstep is not None:
                await self.lockstep.wait_quiet()

    def status(self) -> dict[str, Any]:
        elapsed = None
        if self.started_at is not None:
            elapsed = round((self.finished_at or time.monotonic()) - self.started_at, 3)
        return {
            "dataset": self.dataset,
            "done": self.done,
            "bars_published": self.published,
            "bars_total": len(self.bars),
            "elapsed_s": elapsed,
            "lockstep_rounds": self.lockstep.rounds if self.lockstep else 0,
            "live": {feed.venue: {"published": feed.published, "failovers": feed.failovers,
                                  "mode": {f"{s}/{c}": m for (s, c), m in feed.mode.items()}}
                     for feed in self.live_feeds},
            "prediction": {feed.venue: feed.status() for feed in self.prediction_feeds},
        }

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/v1/replay")
        async def replay() -> dict[str, Any]:
            return self.status()


def build(config: Config, bus: Bus, clock: Clock | None = None) -> DatafeedService:
    return DatafeedService(config, bus, clock=clock)
