"""Circuit breakers, each at its boundary: exactly at a limit holds, just beyond it trips; once tripped a
breaker stays latched (it never releases itself) until a person releases its scope (``rearm``).

Time is simulated: event times come from a ``SimulatedClock`` moved by hand. Unless a test says
otherwise: equity 10000, BTC on BINANCE traded by ``sma_cross``, 1-minute bars.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from tradewire_common.clock import SimulatedClock
from tradewire_common.config import BreakersConfig
from tradewire_common.ids import derive_id
from tradewire_common.schemas import PortfolioSnapshot, PositionSnapshot, TradingState
from tradewire_risk.breakers import (
    DAY_NS,
    MINUTE_NS,
    NS,
    CircuitBreakers,
    Trip,
    interval_ns,
)

D = Decimal
BTC = "BTCUSDT.BINANCE"
ETH = "ETHUSDT.BINANCE"
T0 = 1_641_000_000 * NS - (1_641_000_000 * NS) % DAY_NS  # 2022-01-01T00:00:00Z
HALTED = TradingState.HALTED
REDUCING = TradingState.REDUCING

_ids = itertools.count()


def breakers(clock: str = "event", **config: Any) -> CircuitBreakers:
    return CircuitBreakers(BreakersConfig(**config), strategies={"sma_cross": (BTC,)},
                           clock=clock)  # type: ignore[arg-type]


def snap(as_of: int, equity: str, *positions: tuple[str, str, str]) -> PortfolioSnapshot:
    """A snapshot at ``as_of`` with ``equity`` and positions ``(instrument, quantity, last_price)``."""
    return PortfolioSnapshot(
        id=derive_id("breaker-test", next(_ids)), ts_event=as_of, ts_init=as_of, account="paper", cash=D(equity),
        equity=D(equity), realized_pnl=D(0), unrealized_pnl=D(0), gross_exposure=D(0),
        positions=tuple(PositionSnapshot(instrument_id=i, quantity=D(q), avg_price=D(p), last_price=D(p),
                                         realized_pnl=D(0), unrealized_pnl=D(0)) for i, q, p in positions),
        as_of=as_of,
    )


def only(trips: list[Trip]) -> Trip:
    assert len(trips) == 1, trips
    return trips[0]


def test_interval_lengths() -> None:
    assert interval_ns("1m") == MINUTE_NS
    assert interval_ns("4h") == 4 * 3600 * NS
    assert interval_ns("1d") == DAY_NS
    assert interval_ns("weekly") == 0


# --- daily loss ---------------------------------------------------------------------------------


def test_daily_loss_trips_just_beyond_the_limit_from_the_start_of_day_equity() -> None:
    clock = SimulatedClock(T0 + 3600 * NS)
    b = breakers(daily_loss_pct=0.05)
    assert b.on_snapshot(snap(clock.now_ns(), "10000")) == []
    clock.advance_to(T0 + 5 * 3600 * NS)
    assert b.on_snapshot(snap(clock.now_ns(), "9500")) == []  # exactly 5 % down holds
    clock.advance_to(T0 + 6 * 3600 * NS)
    trip = only(b.on_snapshot(snap(clock.now_ns(), "9499.99")))
    assert (trip.breaker, trip.scope, trip.state, trip.ts_event) == ("daily_loss", "global", HALTED, clock.now_ns())
    assert "9499.99" in trip.reason and "start-of-day equity 10000" in trip.reason and "limit 5.00%" in trip.reason


def test_the_day_starts_from_the_last_equity_before_utc_midnight() -> None:
    b = breakers(daily_loss_pct=0.05)
    assert b.on_snapshot(snap(T0 + 1 * 3600 * NS, "10000")) == []
    assert b.on_snapshot(snap(T0 + 23 * 3600 * NS, "9600")) == []  # -4 % on day one
    # day two starts at 9600: 9120 is exactly 5 % below it, 9119 beyond
    assert b.on_snapshot(snap(T0 + DAY_NS + 60 * NS, "9120")) == []
    assert only(b.on_snapshot(snap(T0 + DAY_NS + 120 * NS, "9119"))).breaker == "daily_loss"


def test_daily_loss_never_releases_itself_even_when_equity_recovers_or_a_new_day_starts() -> None:
    b = breakers(daily_loss_pct=0.05)
    b.on_snapshot(snap(T0 + 60 * NS, "10000"))
    assert only(b.on_snapshot(snap(T0 + 120 * NS, "9000"))).state is HALTED
    for i, equity in enumerate(("8000", "10000", "12000")):
        assert b.on_snapshot(snap(T0 + (180 + i) * NS, equity)) == []
    assert b.on_snapshot(snap(T0 + DAY_NS + 60 * NS, "5000")) == []  # still latched on the next day
    assert b.latched == {("daily_loss", "global")}


# --- drawdown and loss spike ----------------------------------------------------------------------


def test_drawdown_trips_just_beyond_the_limit_from_the_peak() -> None:
    b = breakers(drawdown_pct=0.10)
    assert b.on_snapshot(snap(T0 + 1, "10000")) == []
    assert b.on_snapshot(snap(T0 + 2, "11000")) == []
    assert b.on_snapshot(snap(T0 + 3, "9900")) == []  # exactly 10 % below the 11000 peak
    trip = only(b.on_snapshot(snap(T0 + 4, "9899.99")))
    assert (trip.breaker, trip.scope, trip.state) == ("drawdown", "global", HALTED)
    assert "peak 11000" in trip.reason


def test_a_loss_spike_counts_a_snapshot_exactly_the_window_old() -> None:
    window = 300 * NS
    b = breakers(loss_spike_pct=0.05, loss_spike_window_s=300)
    assert b.on_snapshot(snap(T0, "10000")) == []
    assert b.on_snapshot(snap(T0 + window, "9500")) == []  # exactly 5 % within the window holds
    trip = only(b.on_snapshot(snap(T0 + window, "9499.99")))  # same time, beyond
    assert (trip.breaker, trip.scope, trip.state) == ("loss_spike", "global", HALTED)
    assert "from 10000 within 300 s" in trip.reason


def test_a_loss_spike_ignores_a_high_just_outside_the_window() -> None:
    window = 300 * NS
    b = breakers(loss_spike_pct=0.05, loss_spike_window_s=300)
    assert b.on_snapshot(snap(T0, "10000")) == []
    assert b.on_snapshot(snap(T0 + window + 1, "9000")) == []  # the 10000 is 1 ns too old
    assert only(b.on_snapshot(snap(T0 + window + 2, "8549.99"))).breaker == "loss_spike"  # 5 % below 9000


def test_older_snapshots_are_ignored() -> None:
    b = breakers(drawdown_pct=0.10)
    b.on_snapshot(snap(T0 + 10, "10000"))
    assert b.on_snapshot(snap(T0 + 5, "1")) == []


# --- position spike -------------------------------------------------------------------------------


def test_position_spike_trips_just_beyond_the_share_of_equity() -> None:
    b = breakers(position_spike_pct=0.10)
    assert b.on_snapshot(snap(T0 + 1, "10000", (BTC, "0.02", "50000"))) == []  # 1000 = 10 % exactly
    trip = only(b.on_snapshot(snap(T0 + 2, "10000", (BTC, "-0.0200002", "50000"))))  # a short, 1000.01
    assert (trip.breaker, trip.scope, trip.state) == ("position_spike", "global", REDUCING)
    assert BTC in trip.reason and "1000.01" in trip.reason


def test_any_position_with_no_equity_left_is_a_position_spike() -> None:
    b = breakers(position_spike_pct=5)
    assert b.on_snapshot(snap(T0 + 1, "0")) == []
    assert only(b.on_snapshot(snap(T0 + 2, "0", (ETH, "1", "3000")))).breaker == "position_spike"


# --- stale market data ----------------------------------------------------------------------------


def test_stale_data_in_event_time_trips_when_the_bar_after_a_gap_arrives() -> None:
    b = breakers(stale_data_intervals=3)
    assert b.on_bar(BTC, "1m", T0) == []
    assert b.on_bar(BTC, "1m", T0 + MINUTE_NS) == []  # ends T0 + 2m
    assert b.on_bar(BTC, "1m", T0 + 5 * MINUTE_NS) == []  # 3 intervals without a bar: at the limit
    trip = only(b.on_bar(BTC, "1m", T0 + 10 * MINUTE_NS))  # 4 intervals after T0 + 6m
    assert (trip.breaker, trip.scope, trip.state, trip.ts_event) == (
        "stale_data", "venue:BINANCE", REDUCING, T0 + 10 * MINUTE_NS)
    assert f"no bar of {BTC} for 240 s (limit 180 s)" in trip.reason


def test_stale_data_watches_held_instruments_and_not_others() -> None:
    b = breakers(stale_data_intervals=2)
    b.on_bar(ETH, "1m", T0)  # ends T0 + 1m; no strategy trades ETH and nothing is held yet
    assert b.on_bar(BTC, "1m", T0 + 10 * MINUTE_NS) == []
    b.on_snapshot(snap(T0 + 10 * MINUTE_NS, "10000", (ETH, "1", "3000")))
    trip = only(b.on_bar(BTC, "1m", T0 + 11 * MINUTE_NS))
    assert ETH in trip.reason and trip.scope == "venue:BINANCE"


def test_stale_data_on_the_wall_clock_with_a_limit_in_seconds() -> None:
    clock = SimulatedClock(T0)
    b = breakers("wall", stale_data_s=30)
    assert b.on_bar(BTC, "1m", T0) == []  # ends (is published) at T0 + 60 s
    clock.advance_to(T0 + 90 * NS)
    assert b.check_stale(clock.now_ns()) == []
    clock.advance_to(T0 + 90 * NS + 1)
    trip = only(b.check_stale(clock.now_ns()))
    assert (trip.breaker, trip.scope) == ("stale_data", "venue:BINANCE")
    clock.advance_to(T0 + 3600 * NS)
    assert b.check_stale(clock.now_ns()) == []  # latched
    assert b.on_bar(BTC, "1m", T0 + 3540 * NS) == []  # fresh data does not release it either
    assert b.latched == {("stale_data", "venue:BINANCE")}


# --- reject rate, venue status, runaway orders -----------------------------------------------------


def test_reject_rate_waits_for_enough_orders_in_the_window() -> None:
    b = breakers(reject_rate=0.5, reject_rate_min_orders=4, reject_rate_window_s=300)
    for i in range(3):
        b.on_order("sma_cross", "BINANCE", T0 + i * NS)
        assert b.on_reject("BINANCE", T0 + i * NS) == []  # up to 3 of 3, but fewer than 4 orders sent
    for i in range(3, 6):
        b.on_order("sma_cross", "BINANCE", T0 + i * NS)  # 3 of 6: exactly 50 %
    trip = only(b.on_reject("BINANCE", T0 + 5 * NS))  # 4 of 6
    assert "4 of 6 orders at BINANCE rejected" in trip.reason and "66.67%" in trip.reason


def test_reject_rate_boundary_exactly_at_the_rate_holds() -> None:
    b = breakers(reject_rate=0.5, reject_rate_min_orders=4, reject_rate_window_s=300)
    for i in range(4):
        b.on_order("sma_cross", "BINANCE", T0 + i * NS)
    assert b.on_reject("BINANCE", T0) == []
    assert b.on_reject("BINANCE", T0 + NS) == []  # 2 of 4 = 50 %: at the limit
    trip = only(b.on_reject("BINANCE", T0 + 2 * NS))  # 3 of 4
    assert (trip.breaker, trip.scope, trip.state) == ("reject_rate", "venue:BINANCE", HALTED)
    assert "3 of 4 orders at BINANCE rejected" in trip.reason


def test_reject_rate_counts_what_is_exactly_the_window_old_and_forgets_what_is_older() -> None:
    window = 300 * NS
    b = breakers(reject_rate=0.5, reject_rate_min_orders=2, reject_rate_window_s=300)
    b.on_order("sma_cross", "BINANCE", T0)
    b.on_order("sma_cross", "BINANCE", T0 + 1)
    assert b.on_reject("BINANCE", T0) == []  # 1 of 2
    b.on_order("sma_cross", "BINANCE", T0 + window + 1)
    # now the order at T0 + 1 is exactly the window old (counted); the order and the reject at T0 are out
    assert b.on_reject("BINANCE", T0 + window + 1) == []  # 1 of 2
    assert only(b.on_reject("BINANCE", T0 + window + 1)).breaker == "reject_rate"  # 2 of 2


def test_a_venue_disconnect_halts_the_venue_once_until_released() -> None:
    b = breakers(venue_disconnected=True)
    assert b.on_venue_status("BINANCE", True, T0) == []
    trip = only(b.on_venue_status("BINANCE", False, T0 + 1, "websocket closed"))
    assert (trip.breaker, trip.scope, trip.state) == ("venue_disconnected", "venue:BINANCE", HALTED)
    assert "websocket closed" in trip.reason
    assert b.on_venue_status("BINANCE", False, T0 + 2) == []
    assert b.on_venue_status("BINANCE", True, T0 + 3) == []  # reconnecting releases nothing
    assert b.on_venue_status("BINANCE", False, T0 + 4) == []  # still latched
    b.rearm("venue:BINANCE")
    assert b.on_venue_status("BINANCE", False, T0 + 5) == []  # already down: no new disconnect
    assert b.on_venue_status("BINANCE", True, T0 + 6) == []
    assert only(b.on_venue_status("BINANCE", False, T0 + 7)).breaker == "venue_disconnected"


def test_runaway_orders_trip_the_strategy_beyond_the_rate_within_a_minute() -> None:
    b = breakers(max_orders_per_minute=2)
    assert b.on_order("sma_cross", "BINANCE", T0) == []
    assert b.on_order("sma_cross", "BINANCE", T0 + 30 * NS) == []
    assert b.on_order("sma_cross", "BINANCE", T0 + MINUTE_NS) == []  # T0 is exactly a minute old: out
    assert b.on_order("other", "BINANCE", T0 + MINUTE_NS) == []  # per strategy
    trip = only(b.on_order("sma_cross", "BINANCE", T0 + MINUTE_NS + 1))  # 3 within the minute
    assert (trip.breaker, trip.scope, trip.state) == ("runaway_orders", "strategy:sma_cross", HALTED)
    assert "3 orders of sma_cross within a minute (limit 2)" in trip.reason


# --- every breaker ----------------------------------------------------------------------------------


def test_the_default_configuration_never_trips() -> None:
    b = breakers()
    assert b.on_snapshot(snap(T0, "10000", (BTC, "100", "50000"))) == []
    assert b.on_snapshot(snap(T0 + 1, "1", (BTC, "100", "50000"))) == []
    assert b.on_bar(BTC, "1m", T0) == [] and b.on_bar(BTC, "1m", T0 + DAY_NS) == []
    assert all(b.on_order("sma_cross", "BINANCE", T0 + i) == [] for i in range(1000))
    assert all(b.on_reject("BINANCE", T0 + i) == [] for i in range(1000))
    assert b.on_venue_status("BINANCE", False, T0) == []
    assert b.latched == set()


def test_a_released_scope_is_watched_again_from_the_current_equity() -> None:
    b = breakers(drawdown_pct=0.10)
    b.on_snapshot(snap(T0 + 1, "10000"))
    assert only(b.on_snapshot(snap(T0 + 2, "8000"))).breaker == "drawdown"
    b.rearm("global")
    assert b.on_snapshot(snap(T0 + 3, "7200")) == []  # exactly 10 % below 8000, the new reference
    assert only(b.on_snapshot(snap(T0 + 4, "7199"))).breaker == "drawdown"


def test_releasing_a_strategy_restarts_its_order_count() -> None:
    b = breakers(max_orders_per_minute=1)
    b.on_order("sma_cross", "BINANCE", T0)
    assert only(b.on_order("sma_cross", "BINANCE", T0 + 1)).scope == "strategy:sma_cross"
    b.rearm("strategy:sma_cross")
    assert b.on_order("sma_cross", "BINANCE", T0 + 2) == []
    assert only(b.on_order("sma_cross", "BINANCE", T0 + 3)).breaker == "runaway_orders"
