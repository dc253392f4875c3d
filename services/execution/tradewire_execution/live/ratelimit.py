"""Rate limits per venue: a token bucket from the venue's published limit, and ``Retry-After``.

Each adapter owns one :class:`TokenBucket`: ``rate`` tokens per second (``VenueConfig.rate_limit_per_s``, or
the venue's published limit as its client library declares it), up to ``burst`` tokens banked. Every request
:meth:`TokenBucket.acquire` s its cost first and waits while the bucket is empty. When the venue answers
429/418 (rate limited) the adapter calls :meth:`TokenBucket.penalize` with the answer's ``Retry-After``
(seconds; a default when absent): no request of that venue leaves before then, whoever asks. Time comes
from an injectable monotonic clock and sleep, so tests check the waits without timing anything.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

#: Wait after a rate-limit answer without a usable Retry-After.
DEFAULT_RETRY_AFTER_S = 1.0
#: Longest Retry-After honoured (a longer one is capped, logged by the caller).
MAX_RETRY_AFTER_S = 300.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (delta-seconds; HTTP dates are not used by venues), or None."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked; ``rate <= 0`` means no limit (only penalties)."""

    def __init__(
        self, rate: float, burst: float | None = None, *, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()
        #: Seconds waited in total (for metrics and tests).
        self.waited_s = 0.0
        #: Penalties received (429s).
        self.penalties = 0

    def _refill(self, now: float) -> None:
        if self.rate > 0:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def penalize(self, retry_after_s: float | None) -> float:
        """The venue said "too many requests": block every request for ``retry_after_s``; returns the wait."""
        wait = retry_after_s if retry_after_s is not None else DEFAULT_RETRY_AFTER_S
        wait = min(max(wait, 0.0), MAX_RETRY_AFTER_S)
        self._blocked_until = max(self._blocked_until, self._clock() + wait)
        self._tokens = 0.0
        self._updated = self._clock()
        self.penalties += 1
        return wait

    @property
    def blocked_for(self) -> float:
        return max(0.0, self._blocked_until - self._clock())

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until ``cost`` tokens are there (and any Retry-After has passed), then take them."""
        cost = min(cost, self.burst)  # a request dearer than the bucket waits for a full one
        async with self._lock:  # first come, first served
            while True:
                now = self._clock()
                if now < self._blocked_until:
                    await self._wait(self._blocked_until - now)
                    continue
                if self.rate <= 0:
                    return
                self._refill(now)
                if self._tokens < cost:  # wait exactly for what is missing (no float-resolution spinning)
                    await self._wait((cost - self._tokens) / self.rate)
                    self._refill(self._clock())
                    if self._clock() < self._blocked_until:
                        continue  # a Retry-After arrived meanwhile
                self._tokens = max(0.0, self._tokens - cost)
                return

    async def _wait(self, seconds: float) -> None:
        self.waited_s += seconds
        await self._sleep(seconds)
