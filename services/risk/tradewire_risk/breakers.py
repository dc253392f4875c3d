"""Circuit breakers: automatic triggers that move a trading scope to REDUCING or HALTED.

Pure logic: no I/O and no clock. The risk service feeds it events with their event times (portfolio
snapshots, bars, its own orders, order rejects, venue status) and applies the :class:`Trip` objects
it returns (store, publish ``TradingStateChanged`` with the breaker's name as ``trigger``, alert,
count). Money is ``Decimal``; configured fractions are converted with ``Decimal(str(x))``.

A breaker never releases itself: once it tripped for a scope it is *latched* and stays silent for
that scope until a person moves the scope to a less restrictive state; :meth:`CircuitBreakers.rearm`
then starts it again from the current values (the drawdown peak, the day's reference equity and the
loss-spike window restart at the current equity, the reject and order windows restart empty, stale
instruments of a venue get a fresh limit from that moment). Exactly at a limit never trips; beyond
it trips.

Breakers (configured in ``risk.breakers``, each off at its default):

* ``daily_loss`` (global): equity more than ``daily_loss_pct`` below the start-of-UTC-day equity.
  The day is the UTC day of the snapshot's ``as_of`` (event time); the day's reference is the last
  equity seen before the day began (the first snapshot's equity for the first day seen, or after a
  restart of risk: the references live in memory).
* ``drawdown`` (global): equity more than ``drawdown_pct`` below the highest equity seen.
* ``loss_spike`` (global): equity more than ``loss_spike_pct`` below the highest equity of the
  snapshots with ``as_of`` within the last ``loss_spike_window_s`` (a snapshot exactly that old counts).
* ``position_spike`` (global): a position's notional ``|quantity * last_price|`` above
  ``position_spike_pct`` of equity (any position with equity <= 0 trips).
* ``stale_data`` (the instrument's venue): an instrument that a configured strategy trades or that
  has a position got no bar for more than ``stale_data_intervals`` of its bar interval (or
  ``stale_data_s`` seconds, when set). Time is the bars' end (open + interval). With the ``event``
  clock (replays) "now" is the open of the newest bar seen, so a gap in a replayed feed trips when
  the bar after the gap arrives (checked before that bar counts); with the ``wall`` clock (live) the
  service checks every second against the wall clock. An instrument is watched from its first bar.
* ``reject_rate`` (the venue): rejected / submitted orders of the venue above ``reject_rate``
  among the orders with event time within the last ``reject_rate_window_s``, once at least
  ``reject_rate_min_orders`` were submitted in that window.
* ``venue_disconnected`` (the venue): execution reported the venue disconnected (``VenueStatus``).
  After a release it trips again only on a new disconnect.
* ``runaway_orders`` (the strategy): more than ``max_orders_per_minute`` orders with event times
  within a minute (``ts > now - 60 s``). The order that goes beyond the limit has already left; the
  strategy's later orders are stopped.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from tradewire_common.config import BreakersConfig
from tradewire_common.ids import split_instrument_id
from tradewire_common.schemas import PortfolioSnapshot, TradingState
from tradewire_common.trading_state import GLOBAL, strategy_scope, venue_scope

DAILY_LOSS = "daily_loss"
DRAWDOWN = "drawdown"
LOSS_SPIKE = "loss_spike"
POSITION_SPIKE = "position_spike"
STALE_DATA = "stale_data"
REJECT_RATE = "reject_rate"
VENUE_DISCONNECTED = "venue_disconnected"
RUNAWAY_ORDERS = "runaway_orders"
#: Every breaker's name (the ``breaker`` metric label and ``TradingStateChanged.trigger``).
BREAKERS: tuple[str, ...] = (DAILY_LOSS, DRAWDOWN, LOSS_SPIKE, POSITION_SPIKE, STALE_DATA, REJECT_RATE,
                             VENUE_DISCONNECTED, RUNAWAY_ORDERS)

NS = 1_000_000_000
DAY_NS = 86_400 * NS
MINUTE_NS = 60 * NS
_ZERO = Decimal(0)
_INTERVAL = re.compile(r"([1-9][0-9]*)(ns|us|ms|s|m|h|d|w|M)")
_UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3_600 * NS, "d": DAY_NS,
            "w": 7 * DAY_NS, "M": 31 * DAY_NS}


def interval_ns(interval: str) -> int:
    """A bar interval's length (``1m`` -> 60 s; a calendar month counts 31 days); 0 when not understood."""
    match = _INTERVAL.fullmatch(interval)
    return int(match.group(1)) * _UNIT_NS[match.group(2)] if match else 0


@dataclass(frozen=True, slots=True)
class Trip:
    """A breaker tripped: move ``scope`` to ``state`` because of ``reason``."""

    breaker: str
    scope: str
    state: TradingState
    reason: str
    #: Event time of what tripped it.
    ts_event: int


def _fraction(value: float) -> Decimal:
    return Decimal(str(value))


def _pct(fraction: Decimal) -> str:
    """``Decimal("0.0512345")`` -> ``"5.12"`` (for reasons)."""
    return format((fraction * 100).quantize(Decimal("0.01")), "f")


class CircuitBreakers:
    """The breakers of one risk service. Not thread-safe."""

    def __init__(
        self, config: BreakersConfig, *, strategies: Mapping[str, Iterable[str]] | None = None,
        clock: Literal["event", "wall"] = "event",
    ) -> None:
        """``strategies``: each configured strategy's instruments (watched for stale data);
        ``clock``: how ``stale_data`` measures time (the service resolves ``auto``)."""
        self.config = config
        self.clock = clock
        self._daily_loss = _fraction(config.daily_loss_pct)
        self._drawdown = _fraction(config.drawdown_pct)
        self._loss_spike = _fraction(config.loss_spike_pct)
        self._spike_window = int(config.loss_spike_window_s * NS)
        self._position_spike = _fraction(config.position_spike_pct)
        self._reject_rate = _fraction(config.reject_rate)
        self._reject_window = int(config.reject_rate_window_s * NS)
        self._stale_s = int(config.stale_data_s * NS)
        self._states = {
            DAILY_LOSS: TradingState(config.daily_loss_state), DRAWDOWN: TradingState(config.drawdown_state),
            LOSS_SPIKE: TradingState(config.loss_spike_state),
            POSITION_SPIKE: TradingState(config.position_spike_state),
            STALE_DATA: TradingState(config.stale_data_state), REJECT_RATE: TradingState(config.reject_rate_state),
            VENUE_DISCONNECTED: TradingState(config.venue_disconnected_state),
            RUNAWAY_ORDERS: TradingState(config.runaway_orders_state),
        }
        #: (breaker, scope) pairs that tripped and wait for a person.
        self.latched: set[tuple[str, str]] = set()
        # equity
        self._as_of = -1
        self._equity: Decimal | None = None
        self._day = -1
        self._day_start: Decimal | None = None
        self._peak: Decimal | None = None
        #: (as_of, equity), equity decreasing from the left: the window's maximum is the leftmost.
        self._spike: deque[tuple[int, Decimal]] = deque()
        # stale data
        self._strategy_instruments = {i for instruments in (strategies or {}).values() for i in instruments}
        self._held: set[str] = set()
        self._last_end: dict[str, int] = {}
        self._interval: dict[str, int] = {}
        self._event_now = 0
        # orders
        self._orders: dict[str, deque[int]] = {}
        self._rejects: dict[str, deque[int]] = {}
        self._reject_now: dict[str, int] = {}
        self._strategy_orders: dict[str, deque[int]] = {}
        self._strategy_now: dict[str, int] = {}
        self._disconnected: set[str] = set()

    # --- which breakers run ------------------------------------------------------------------------

    @property
    def watches_bars(self) -> bool:
        return self.config.stale_data_intervals > 0 or self._stale_s > 0

    @property
    def watches_rejects(self) -> bool:
        return self._reject_rate > 0

    @property
    def watches_venues(self) -> bool:
        return self.config.venue_disconnected

    # --- events --------------------------------------------------------------------------------

    def on_snapshot(self, snap: PortfolioSnapshot) -> list[Trip]:
        """Equity and position breakers; snapshots older than the newest seen are ignored."""
        if snap.as_of < self._as_of:
            return []
        self._as_of = snap.as_of
        self._held = {p.instrument_id for p in snap.positions if p.quantity != 0}
        equity = snap.equity
        trips: list[Trip] = []
        day = snap.as_of // DAY_NS
        if day != self._day:
            self._day_start = self._equity if self._equity is not None else equity
            self._day = day
        self._equity = equity
        self._peak = equity if self._peak is None else max(self._peak, equity)
        while self._spike and self._spike[-1][1] <= equity:
            self._spike.pop()
        self._spike.append((snap.as_of, equity))
        while self._spike[0][0] < snap.as_of - self._spike_window:
            self._spike.popleft()

        if self._daily_loss > 0 and self._day_start is not None and self._day_start > 0:
            loss = (self._day_start - equity) / self._day_start
            if loss > self._daily_loss:
                self._trip(trips, DAILY_LOSS, GLOBAL, snap.as_of,
                           f"equity {equity} is {_pct(loss)}% below the start-of-day equity {self._day_start} "
                           f"(limit {_pct(self._daily_loss)}%)")
        if self._drawdown > 0 and self._peak > 0:
            drawdown = (self._peak - equity) / self._peak
            if drawdown > self._drawdown:
                self._trip(trips, DRAWDOWN, GLOBAL, snap.as_of,
                           f"equity {equity} is {_pct(drawdown)}% below its peak {self._peak} "
                           f"(limit {_pct(self._drawdown)}%)")
        high = self._spike[0][1]
        if self._loss_spike > 0 and high > 0:
            drop = (high - equity) / high
            if drop > self._loss_spike:
                self._trip(trips, LOSS_SPIKE, GLOBAL, snap.as_of,
                           f"equity {equity} fell {_pct(drop)}% from {high} within "
                           f"{self.config.loss_spike_window_s:g} s (limit {_pct(self._loss_spike)}%)")
        if self._position_spike > 0:
            limit = self._position_spike * equity
            for p in snap.positions:
                notional = abs(p.quantity * p.last_price)
                if p.quantity != 0 and (equity <= 0 or notional > limit):
                    self._trip(trips, POSITION_SPIKE, GLOBAL, snap.as_of,
                               f"position {p.quantity} {p.instrument_id} is worth {notional}, above "
                               f"{_pct(self._position_spike)}% of equity {equity}")
                    break
        return trips

    def on_bar(self, instrument_id: str, interval: str, ts_event: int) -> list[Trip]:
        """A bar arrived. With the event clock, first checks every watched instrument at its open."""
        trips: list[Trip] = []
        if not self.watches_bars:
            return trips
        if self.clock == "event":
            self._event_now = max(self._event_now, ts_event)
            trips = self.check_stale(self._event_now)
        length = interval_ns(interval)
        self._interval[instrument_id] = length
        self._last_end[instrument_id] = max(self._last_end.get(instrument_id, 0), ts_event + length)
        return trips

    def check_stale(self, now_ns: int) -> list[Trip]:
        """Every watched instrument whose newest bar ended more than its limit before ``now_ns``."""
        trips: list[Trip] = []
        if not self.watches_bars:
            return trips
        for instrument_id in sorted(self._strategy_instruments | self._held):
            last_end = self._last_end.get(instrument_id)
            limit = self._stale_limit(instrument_id)
            if last_end is None or limit is None or now_ns - last_end <= limit:
                continue
            _symbol, venue = split_instrument_id(instrument_id)
            self._trip(trips, STALE_DATA, venue_scope(venue), now_ns,
                       f"no bar of {instrument_id} for {(now_ns - last_end) / NS:g} s "
                       f"(limit {limit / NS:g} s)")
        return trips

    def on_order(self, strategy_id: str, venue: str, ts_event: int) -> list[Trip]:
        """Risk sent an order: counts toward the venue's reject rate and the strategy's order rate."""
        trips: list[Trip] = []
        if self.watches_rejects:
            self._orders.setdefault(venue, deque()).append(ts_event)
            self._reject_now[venue] = max(self._reject_now.get(venue, 0), ts_event)
        limit = self.config.max_orders_per_minute
        if limit > 0:
            window = self._strategy_orders.setdefault(strategy_id, deque())
            window.append(ts_event)
            now = self._strategy_now[strategy_id] = max(self._strategy_now.get(strategy_id, ts_event), ts_event)
            while window and window[0] <= now - MINUTE_NS:
                window.popleft()
            count = sum(1 for ts in window if ts > now - MINUTE_NS)
            if count > limit:
                self._trip(trips, RUNAWAY_ORDERS, strategy_scope(strategy_id), ts_event,
                           f"{count} orders of {strategy_id} within a minute (limit {limit})")
        return trips

    def on_reject(self, venue: str, ts_event: int) -> list[Trip]:
        """The venue (or execution) rejected an order with event time ``ts_event``."""
        trips: list[Trip] = []
        if not self.watches_rejects:
            return trips
        rejects = self._rejects.setdefault(venue, deque())
        rejects.append(ts_event)
        now = self._reject_now[venue] = max(self._reject_now.get(venue, 0), ts_event)
        orders = self._orders.setdefault(venue, deque())
        for window in (orders, rejects):
            while window and window[0] < now - self._reject_window:
                window.popleft()
        count = sum(1 for ts in orders if ts >= now - self._reject_window)
        rejected = sum(1 for ts in rejects if ts >= now - self._reject_window)
        if count >= self.config.reject_rate_min_orders:
            rate = Decimal(rejected) / Decimal(count)
            if rate > self._reject_rate:
                self._trip(trips, REJECT_RATE, venue_scope(venue), ts_event,
                           f"{rejected} of {count} orders at {venue} rejected within "
                           f"{self.config.reject_rate_window_s:g} s ({_pct(rate)}%, limit "
                           f"{_pct(self._reject_rate)}%)")
        return trips

    def on_venue_status(self, venue: str, connected: bool, ts_event: int, reason: str = "") -> list[Trip]:
        trips: list[Trip] = []
        if connected:
            self._disconnected.discard(venue)
            return trips
        new = venue not in self._disconnected
        self._disconnected.add(venue)
        if self.watches_venues and new:
            self._trip(trips, VENUE_DISCONNECTED, venue_scope(venue), ts_event,
                       f"execution reports {venue} disconnected" + (f": {reason}" if reason else ""))
        return trips

    # --- release ---------------------------------------------------------------------------------

    def rearm(self, scope: str, now_ns: int | None = None) -> None:
        """A person released ``scope``: its breakers run again, from the current values."""
        self.latched = {(b, s) for b, s in self.latched if s != scope}
        if scope == GLOBAL and self._equity is not None:
            self._day_start = self._peak = self._equity
            self._spike = deque([(self._as_of, self._equity)])
        elif scope.startswith("venue:"):
            venue = scope.removeprefix("venue:")
            self._orders.pop(venue, None)
            self._rejects.pop(venue, None)
            ref = self._event_now if self.clock == "event" or now_ns is None else now_ns
            for instrument_id, last_end in self._last_end.items():
                if split_instrument_id(instrument_id)[1] == venue:
                    self._last_end[instrument_id] = max(last_end, ref)
        elif scope.startswith("strategy:"):
            self._strategy_orders.pop(scope.removeprefix("strategy:"), None)

    # --- helpers ---------------------------------------------------------------------------------

    def _stale_limit(self, instrument_id: str) -> int | None:
        if self._stale_s > 0:
            return self._stale_s
        length = self._interval.get(instrument_id, 0)
        if length <= 0 or self.config.stale_data_intervals <= 0:
            return None
        return self.config.stale_data_intervals * length

    def _trip(self, trips: list[Trip], breaker: str, scope: str, ts_event: int, reason: str) -> None:
        key = (breaker, scope)
        if key in self.latched:
            return
        self.latched.add(key)
        trips.append(Trip(breaker, scope, self._states[breaker], f"{breaker}: {reason}", ts_event))
