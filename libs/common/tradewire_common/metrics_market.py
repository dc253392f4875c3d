"""Market-data metrics of a consuming service: events in, arrival lag and staleness per instrument.

Staleness is exported as the clock time of the last arrival (a timestamp gauge), not as an age:
Prometheus computes ``time() - last`` with its own clock, so a hung process still looks stale.
Instruments come from the configured replay or feed, so the ``instrument`` label is bounded.
"""

from __future__ import annotations

from typing import Any

from tradewire_common.metrics import LATENCY_BUCKETS, ServiceMetrics
from tradewire_common.schemas import Bar


class MarketEventMetrics:
    """Counts, lag and last-arrival time of the market events a service receives."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.events = metrics.counter(
            "market_events_total", "Market events received, per instrument", ("instrument",)
        )
        self.lag = metrics.histogram(
            "market_event_lag_seconds",
            "Delay from the feed publishing a market event (its ts_init) to its arrival here",
            ("instrument",),
            buckets=LATENCY_BUCKETS,
        )
        self.last_arrival = metrics.gauge(
            "last_market_event_timestamp_seconds",
            "Clock time the latest market event arrived (data staleness = time() - this)",
            ("instrument",),
        )
        #: per instrument: (events child, lag child, last arrival child), cached for the hot path
        self._children: dict[str, tuple[Any, Any, Any]] = {}

    def observe(self, bar: Bar, now_ns: int) -> None:
        children = self._children.get(bar.instrument_id)
        if children is None:
            key = bar.instrument_id
            children = self._children[key] = (
                self.events.labels(key), self.lag.labels(key), self.last_arrival.labels(key)
            )
        events, lag, last_arrival = children
        events.inc()
        lag.observe(max(0, now_ns - bar.ts_init) / 1e9)
        last_arrival.set(now_ns / 1e9)
