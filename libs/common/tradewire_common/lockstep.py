"""Deterministic replays: wait until the whole pipeline is quiet before the next bar.

The replay driver asks every service for its counters (``ctl.stats``): messages it published per
subject and messages its subscriptions consumed per pattern. The pipeline is quiet when, since the last
quiet point, every subscription has consumed exactly what was published on the subjects it
matches, and two consecutive rounds agree (the classic two-wave counting check for distributed
termination, which rules out a message being in flight between two answers).

Counts are compared as deltas per process instance, so a restarted service (fresh counters, new
instance id) starts from zero. If a service dies with messages in flight the pipeline cannot
balance; after ``timeout_s`` the driver logs a warning, takes the current counts as the new
baseline and carries on (a restart costs at most one timeout).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from tradewire_common import subjects
from tradewire_common.bus import Bus

log = logging.getLogger(__name__)


class ServiceStats(msgspec.Struct, frozen=True):
    service: str
    published: dict[str, int]
    consumed: dict[str, int]
    ready: bool = False
    instance: str = ""

    def minus(self, base: ServiceStats | None) -> ServiceStats:
        """Counts since ``base`` (the same instance at the last quiet point)."""
        if base is None:
            return self
        return ServiceStats(
            self.service,
            {k: v - base.published.get(k, 0) for k, v in self.published.items()},
            {k: v - base.consumed.get(k, 0) for k, v in self.consumed.items()},
            self.ready,
            self.instance,
        )


def _decode(replies: Iterable[bytes]) -> list[ServiceStats]:
    out = []
    for raw in replies:
        try:
            out.append(msgspec.json.decode(raw, type=ServiceStats))
        except msgspec.DecodeError:
            log.warning("ignoring malformed ctl.stats reply")
    return out


def balanced(stats: Sequence[ServiceStats]) -> bool:
    """Every subscription consumed all that was published on what it matches."""
    published: Counter[str] = Counter()
    consumed: dict[tuple[str, str], int] = {}
    for s in stats:
        published.update(s.published)
        for pattern, n in s.consumed.items():
            consumed[(s.service, pattern)] = consumed.get((s.service, pattern), 0) + n
    for (_service, pattern), n in consumed.items():
        expected = sum(count for subject, count in published.items() if subjects.matches(pattern, subject))
        if n != expected:
            return False
    return True


def _fingerprint(stats: Sequence[ServiceStats]) -> tuple[Any, ...]:
    return tuple(
        sorted((s.service, tuple(sorted(s.published.items())), tuple(sorted(s.consumed.items()))) for s in stats)
    )


@dataclass
class Lockstep:
    bus: Bus
    services: tuple[str, ...]
    timeout_s: float = 30.0
    #: Per-round wait for replies.
    round_timeout_s: float = 2.0
    #: Counts per instance at the last quiet point.
    baseline: dict[str, ServiceStats] = field(default_factory=dict)

    def deltas(self, stats: Sequence[ServiceStats]) -> list[ServiceStats]:
        return [s.minus(self.baseline.get(s.instance)) for s in stats]

    def rebaseline(self, stats: Sequence[ServiceStats]) -> None:
        self.baseline = {s.instance: s for s in stats}

    @property
    def expected(self) -> int:
        # every lockstep service plus the driver's own service answers
        return len(self.services) + 1

    async def collect(self) -> list[ServiceStats]:
        replies = await self.bus.gather(subjects.STATS, b"", expected=self.expected, timeout=self.round_timeout_s)
        return _decode(replies)

    def _complete(self, stats: Sequence[ServiceStats]) -> bool:
        names = {s.service for s in stats}
        return all(name in names for name in self.services)

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until every lockstep service answers and says it is ready."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            stats = await self.collect()
            ready = {s.service for s in stats if s.ready}
            if all(name in ready for name in self.services):
                return
            if loop.time() >= deadline:
                missing = sorted(set(self.services) - ready)
                raise TimeoutError(f"services not ready after {timeout_s:.0f}s: {', '.join(missing)}")
            await asyncio.sleep(0.1)

    async def wait_quiet(self) -> bool:
        """Block until the pipeline is quiet; False (with a warning) after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        previous: tuple[Any, ...] | None = None
        while True:
            stats = await self.collect()
            if self._complete(stats) and balanced(self.deltas(stats)):
                fp = _fingerprint(stats)
                if fp == previous:
                    self.rebaseline(stats)
                    return True
                previous = fp
                continue
            previous = None
            if loop.time() >= deadline:
                log.warning("pipeline not quiet after %.1fs; taking current counts as baseline", self.timeout_s)
                self.rebaseline(stats)
                return False
            await asyncio.sleep(0.0005)
