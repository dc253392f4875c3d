"""The metrics catalog: every service's metrics, named by the convention, with bounded labels.

``exported_series_names()`` is the one list the dashboard and alert-rule tests check against.
"""

from __future__ import annotations

import re

import pytest

from tradewire_common.metrics_catalog import exported_metrics, exported_series_names
from tradewire_common.registry import SERVICE_NAMES

#: What the monitoring issue asks every deployment to see, by the series name PromQL selects.
REQUIRED = {
    # market events in/out, lag per instrument, staleness
    "tradewire_datafeed_bars_published_total", "tradewire_signals_market_events_total",
    "tradewire_signals_market_event_lag_seconds_bucket", "tradewire_signals_last_market_event_timestamp_seconds",
    "tradewire_datafeed_last_bar_published_timestamp_seconds", "tradewire_datafeed_replay_done_info",
    # signals, strategy errors
    "tradewire_signals_signals_total", "tradewire_signals_strategy_errors_total",
    # orders by status and venue, fills, rejects, denials by reason
    "tradewire_execution_orders_total", "tradewire_execution_fills_total", "tradewire_execution_order_commands_total",
    "tradewire_risk_orders_denied_total", "tradewire_risk_orders_submitted_total",
    # latencies
    "tradewire_execution_order_round_trip_seconds_bucket", "tradewire_ledger_tick_to_order_seconds_bucket",
    "tradewire_risk_decision_latency_seconds_bucket",
    # portfolio
    "tradewire_ledger_equity_value", "tradewire_ledger_realized_pnl_value", "tradewire_ledger_unrealized_pnl_value",
    "tradewire_ledger_drawdown_ratio", "tradewire_ledger_gross_exposure_value", "tradewire_ledger_exposure_ratio",
    "tradewire_ledger_position_notional_value",
    # trading state, kill switch, limits
    "tradewire_risk_trading_state_value", "tradewire_risk_trading_state_info",
    "tradewire_risk_kill_switch_engaged_info", "tradewire_risk_limit_ratio",
    # reconciliation
    "tradewire_ledger_reconciliation_mismatches_total",
}
#: Per service: JetStream backlog, dead letters, process start (restarts), uptime, readiness.
PER_SERVICE = ("consumer_pending_messages", "dead_letters_total", "start_time_seconds", "uptime_seconds", "up_info",
               "messages_in_total", "messages_out_total", "handler_errors_total")
UNITS = ("seconds", "bytes", "ratio", "value", "info", "orders", "messages", "fds")
BOUNDED_LABELS = {"subject_class", "reason", "instrument", "strategy", "venue", "type", "status", "consumer",
                  "state", "limit", "kind", "scope", "breaker", "outcome"}


def test_every_metric_the_monitoring_issue_asks_for_is_exported() -> None:
    names = exported_series_names()
    assert REQUIRED - names == set()
    per_service = {f"tradewire_{s}_{n}" for s in SERVICE_NAMES for n in PER_SERVICE}
    assert per_service - names == set()


def test_every_metric_is_named_tradewire_service_noun_unit() -> None:
    metrics = exported_metrics()
    assert {m.service for m in metrics} == set(SERVICE_NAMES)
    for metric in metrics:
        assert re.fullmatch(rf"tradewire_{metric.service}_[a-z][a-z0-9_]*", metric.name), metric
        if metric.kind != "counter":  # a counter's unit is its _total suffix
            assert metric.name.endswith(tuple("_" + u for u in UNITS)), f"{metric.name} has no unit suffix"
        assert not metric.name.endswith(("_total", "_count", "_sum", "_bucket", "_created")), metric.name


def test_every_metric_label_is_one_of_the_bounded_labels() -> None:
    for metric in exported_metrics():
        assert set(metric.labels) <= BOUNDED_LABELS, f"{metric.name}: {metric.labels}"


def test_every_metric_has_a_help_text() -> None:
    for metric in exported_metrics():
        assert metric.doc.strip(), metric.name


@pytest.mark.parametrize("kind, series", [
    ("counter", ("_total", "_created")), ("histogram", ("_bucket", "_count", "_sum", "_created")), ("gauge", ("",)),
])
def test_series_names_follow_the_exposition_format(kind: str, series: tuple[str, ...]) -> None:
    metric = next(m for m in exported_metrics() if m.kind == kind)
    assert metric.series == tuple(metric.name + s for s in series)


def test_the_catalog_prints_one_line_per_metric_with_type_labels_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    from tradewire_common.metrics_catalog import main

    main()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(exported_metrics())
    assert "tradewire_execution_orders\tcounter\tvenue,status\tOrder events by resulting order status" in lines
