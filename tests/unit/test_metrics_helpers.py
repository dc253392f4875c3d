"""The metric helpers: bounded labels, order status, reconciliation, latencies, portfolio gauges."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tradewire_common.metrics import ServiceMetrics
from tradewire_common.metrics_market import MarketEventMetrics
from tradewire_common.metrics_orders import OrderReconciler, TickToOrder, order_status
from tradewire_common.metrics_portfolio import PortfolioMetrics
from tradewire_common.schemas import (
    Bar,
    Liquidity,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderType,
    PortfolioSnapshot,
    PositionSnapshot,
    Side,
    SubmitOrder,
)

BTC = "BTCUSDT.BINANCE"
ETH = "ETHUSDT.BINANCE"
S = 1_000_000_000


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(f"tradewire_{metrics.service}_{name}", labels)


def bar(i: int, ts_init: int) -> Bar:
    p = Decimal(100)
    return Bar(id=f"bar-{i}", ts_event=i * 60 * S, ts_init=ts_init, instrument_id=BTC, interval="1m",
               open=p, high=p, low=p, close=p, volume=Decimal(1))


def submit(coid: str, qty: str, *, correlation_id: str = "", ts_init: int = 0) -> SubmitOrder:
    return SubmitOrder(id=f"s-{coid}", ts_event=0, ts_init=ts_init, correlation_id=correlation_id, strategy_id="sma",
                       instrument_id=BTC, client_order_id=coid, side=Side.BUY, order_type=OrderType.MARKET,
                       quantity=Decimal(qty))


def fill(coid: str, trade: str, qty: str, leaves: str) -> OrderFilled:
    return OrderFilled(id=f"f-{coid}-{trade}", ts_event=0, ts_init=0, strategy_id="sma", instrument_id=BTC,
                       client_order_id=coid, venue_order_id="v", trade_id=trade, side=Side.BUY,
                       last_qty=Decimal(qty), last_px=Decimal(100), fee=Decimal(0), fee_currency="USD",
                       liquidity=Liquidity.TAKER, partial=Decimal(leaves) > 0, leaves_qty=Decimal(leaves))


@pytest.mark.parametrize("label", ["order_id", "client_order_id", "price", "client", "trade_id", "ids"])
def test_a_metric_label_that_would_hold_ids_or_prices_is_refused(label: str) -> None:
    with pytest.raises(ValueError, match="unbounded"):
        ServiceMetrics("risk").counter("things_total", "things", (label,))


@pytest.mark.parametrize("label", ["service", "job", "instance"])
def test_a_metric_label_named_like_a_scrape_target_label_is_refused(label: str) -> None:
    with pytest.raises(ValueError, match="scrape target label"):
        ServiceMetrics("risk").gauge("things_count", "things", (label,))


def test_start_time_and_uptime_describe_the_process() -> None:
    before = time.time()
    metrics = ServiceMetrics("ledger")
    start = sample(metrics, "start_time_seconds")
    uptime = sample(metrics, "uptime_seconds")
    assert start is not None and before <= start <= time.time()
    assert uptime is not None and 0 <= uptime <= time.time() - before
    assert sample(metrics, "process_start_time_seconds") is not None  # the process collector, on Linux


def test_consumer_backlog_is_recorded_per_durable_consumer() -> None:
    metrics = ServiceMetrics("ledger")
    metrics.set_consumer_pending("ledger-events", 120)
    metrics.set_consumer_pending("ledger-signals", 3)
    metrics.set_consumer_pending("ledger-events", 7)
    assert sample(metrics, "consumer_pending_messages", consumer="ledger-events") == 7
    assert sample(metrics, "consumer_pending_messages", consumer="ledger-signals") == 3


def test_order_status_names_each_event_and_tells_partial_fills_apart() -> None:
    assert order_status(fill("a", "1", "1", "2")) == "partially_filled"
    assert order_status(fill("a", "2", "2", "0")) == "filled"
    accepted = OrderAccepted(id="x", ts_event=0, ts_init=0, strategy_id="s", instrument_id=BTC,
                             client_order_id="a", venue_order_id="v")
    rejected = OrderRejected(id="y", ts_event=0, ts_init=0, strategy_id="s", instrument_id=BTC,
                             client_order_id="a", reason="no")
    assert (order_status(accepted), order_status(rejected)) == ("accepted", "rejected")


def test_fills_that_add_up_to_the_ordered_quantity_are_no_mismatch() -> None:
    metrics = ServiceMetrics("ledger")
    reconciler = OrderReconciler(metrics)
    for message in (submit("a", "3"), fill("a", "1", "1", "2"), fill("a", "2", "2", "0")):
        reconciler.observe(message)
    assert sample(metrics, "reconciliation_mismatches_total", kind="overfill") == 0


def test_an_overfilled_order_counts_one_mismatch_whichever_stream_arrives_first() -> None:
    metrics = ServiceMetrics("ledger")
    reconciler = OrderReconciler(metrics)
    for message in (fill("a", "1", "2", "2"), submit("a", "3"), fill("a", "2", "2", "0"), fill("a", "3", "1", "0")):
        reconciler.observe(message)
    assert sample(metrics, "reconciliation_mismatches_total", kind="overfill") == 1


def test_fills_missed_while_the_ledger_was_down_raise_no_false_mismatch() -> None:
    metrics = ServiceMetrics("ledger")
    reconciler = OrderReconciler(metrics)
    for message in (submit("a", "3"), fill("a", "3", "1", "0"), fill("exit-1", "1", "5", "0")):
        reconciler.observe(message)  # fills 1 and 2 of "a" went unseen; "exit-1" was never ordered by risk
    assert sample(metrics, "reconciliation_mismatches_total", kind="overfill") == 0


def test_tick_to_order_measures_from_the_bar_publication_to_the_order_it_caused() -> None:
    metrics = ServiceMetrics("ledger")
    tick = TickToOrder(metrics)
    tick.on_bar(bar(1, ts_init=10 * S))
    tick.on_order(submit("a", "1", correlation_id="bar-1", ts_init=10 * S + 3_000_000))
    tick.on_order(submit("b", "1", correlation_id="bar-unknown", ts_init=99 * S))
    assert sample(metrics, "tick_to_order_seconds_count", strategy="sma") == 1
    assert sample(metrics, "tick_to_order_seconds_sum", strategy="sma") == pytest.approx(0.003)
    assert sample(metrics, "tick_to_order_seconds_bucket", strategy="sma", le="0.0025") == 0
    assert sample(metrics, "tick_to_order_seconds_bucket", strategy="sma", le="0.005") == 1


def test_market_events_record_count_lag_and_arrival_time_per_instrument() -> None:
    metrics = ServiceMetrics("signals")
    market = MarketEventMetrics(metrics)
    market.observe(bar(1, ts_init=100 * S), now_ns=100 * S + 20_000_000)
    market.observe(bar(2, ts_init=160 * S), now_ns=161 * S)
    assert sample(metrics, "market_events_total", instrument=BTC) == 2
    assert sample(metrics, "market_event_lag_seconds_sum", instrument=BTC) == pytest.approx(1.02)
    assert sample(metrics, "last_market_event_timestamp_seconds", instrument=BTC) == 161


def snapshot(equity: str, *positions: tuple[str, str, str]) -> PortfolioSnapshot:
    pos = tuple(PositionSnapshot(instrument_id=i, quantity=Decimal(q), avg_price=Decimal(p), last_price=Decimal(p),
                                 realized_pnl=Decimal(0), unrealized_pnl=Decimal(0)) for i, q, p in positions)
    gross = sum((abs(p.quantity * p.last_price) for p in pos), Decimal(0))
    return PortfolioSnapshot(id="pf", ts_event=0, ts_init=0, account="paper", cash=Decimal(equity) - gross,
                             equity=Decimal(equity), realized_pnl=Decimal(0), unrealized_pnl=Decimal(0),
                             gross_exposure=gross, positions=pos, as_of=0)


def test_drawdown_is_the_fall_from_the_highest_equity_and_never_starts_above_the_starting_cash() -> None:
    metrics = ServiceMetrics("ledger")
    gauges = PortfolioMetrics(metrics, Decimal(10_000))
    gauges.update(snapshot("9500"))
    assert sample(metrics, "drawdown_ratio") == pytest.approx(0.05)
    gauges.update(snapshot("12000"))
    gauges.update(snapshot("10800"))
    assert sample(metrics, "peak_equity_value") == 12_000
    assert sample(metrics, "drawdown_ratio") == pytest.approx(0.10)


def test_exposure_and_positions_follow_the_snapshot_and_a_closed_position_reads_zero() -> None:
    metrics = ServiceMetrics("ledger")
    gauges = PortfolioMetrics(metrics, Decimal(10_000))
    gauges.update(snapshot("10000", (BTC, "0.02", "50000"), (ETH, "-1", "3000")))
    assert sample(metrics, "position_notional_value", instrument=BTC) == pytest.approx(1000)
    assert sample(metrics, "position_notional_value", instrument=ETH) == pytest.approx(-3000)
    assert sample(metrics, "net_exposure_value") == pytest.approx(-2000)
    assert sample(metrics, "exposure_ratio") == pytest.approx(0.4)
    gauges.update(snapshot("10000", (BTC, "0.02", "50000")))
    assert sample(metrics, "position_notional_value", instrument=ETH) == 0
    gauges.update(snapshot("-5"))
    assert sample(metrics, "exposure_ratio") == 0
