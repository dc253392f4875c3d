"""Deterministic replays: wait until the whole pipeline is quiet before the next bar.

The replay driver asks every service for its counters (``ctl.stats``): messages it published per
subject and messages its subscriptions consumed per pattern. The pipeline is quiet when, since the last
quiet point, every subscription has consumed exactly what was published on the subjects it
matches (a counting check for distributed termination; see :class:`Lockstep` for why the pushed
reports rule out a message in flight).

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


@dataclass
class Lockstep:
    """Pace a replay by the pipeline: :meth:`wait_quiet` after each published bar.

    Services push their counters after every handled message (``ctl.stats.report``); each report
    is an atomic snapshot taken after a handler finished, so it shows a consumed message together
    with everything its handling published. Balanced latest reports therefore mean no message of
    the cascade is still in flight. A ``ctl.stats`` poll refreshes the view when reports go quiet
    (a lost report, an idle service).
    """

    bus: Bus
    services: tuple[str, ...]
    timeout_s: float = 30.0
    #: Per-poll wait for replies.
    round_timeout_s: float = 2.0
    #: Poll when no report arrived for this long.
    idle_poll_s: float = 0.05
    #: Counts per instance at the last quiet point.
    baseline: dict[str, ServiceStats] = field(default_factory=dict)
    #: Latest pushed or polled counters per instance.
    latest: dict[str, ServiceStats] = field(default_factory=dict)
    #: How many stats polls were needed so far (a throughput diagnostic).
    rounds: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: The bus can tell exactly when nothing is in flight (the in-memory broker).
    _exact: bool = False
    _listening: bool = False

    @property
    def expected(self) -> int:
        # every lockstep service plus the driver's own service answers
        return len(self.services) + 1

    async def listen(self) -> None:
        if self._listening:
            return

        async def on_report(raw: bytes) -> None:
            for stats in _decode([raw]):
                self.latest[stats.instance] = stats
            self._changed.set()
            return None

        await self.bus.serve(subjects.STATS_REPORT, on_report)
        self._listening = True

    def deltas(self, stats: Sequence[ServiceStats]) -> list[ServiceStats]:
        return [s.minus(self.baseline.get(s.instance)) for s in stats]

    def rebaseline(self, stats: Sequence[ServiceStats]) -> None:
        self.baseline = {s.instance: s for s in stats}

    async def collect(self) -> list[ServiceStats]:
        """Poll every service's counters now."""
        self.rounds += 1
        request = b"" if self._exact else b"report"
        replies = await self.bus.gather(subjects.STATS, request, expected=self.expected,
                                        timeout=self.round_timeout_s)
        stats = _decode(replies)
        for s in stats:
            self.latest[s.instance] = s
        return stats

    def _own(self) -> ServiceStats:
        return ServiceStats(self.bus.service, dict(self.bus.stats.published), dict(self.bus.stats.consumed),
                            self.bus.ready, self.bus.instance)

    def view(self) -> list[ServiceStats]:
        """The latest counters of every instance, the driver's own always current."""
        own = self._own()
        return [*(s for i, s in self.latest.items() if i != own.instance), own]

    def _complete(self, stats: Sequence[ServiceStats]) -> bool:
        names = {s.service for s in stats}
        return all(name in names for name in self.services)

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until every lockstep service answers and says it is ready."""
        self._exact = await self.bus.wait_idle(0.0) is not None
        if not self._exact:
            await self.listen()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            stats = await self.collect()
            ready = {s.service for s in stats if s.ready}
            if all(name in ready for name in self.services):
                self.rebaseline(self.view())
                return
            if loop.time() >= deadline:
                missing = sorted(set(self.services) - ready)
                raise TimeoutError(f"services not ready after {timeout_s:.0f}s: {', '.join(missing)}")
            await asyncio.sleep(0.1)

    async def wait_quiet(self) -> bool:
        """Block until the pipeline is quiet; False (with a warning) after ``timeout_s``."""
        if self._exact:  # the in-memory bus sees every queue: no counting needed
            quiet = await self.bus.wait_idle(self.timeout_s)
            if not quiet:
                log.warning("pipeline not quiet after %.1fs; continuing", self.timeout_s)
            return bool(quiet)
        await self.listen()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            self._changed.clear()
            view = self.view()
            if self._complete(view) and balanced(self.deltas(view)):
                self.rebaseline(view)
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("pipeline not quiet after %.1fs; taking current counts as baseline", self.timeout_s,
                            extra={"deltas": [msgspec.to_builtins(d) for d in self.deltas(view)]})
                self.rebaseline(view)
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), min(self.idle_poll_s, remaining))
            except TimeoutError:
                await self.collect()
