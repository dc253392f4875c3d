"""The five services on the in-memory bus replay real bars; their metrics tell what happened.

Every value is checked against an independent count (the ledger's stored messages, the feed's
bars), and every sample the services render is in the metrics catalog.
"""

from __future__ import annotations

import asyncio
import shutil
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.stack import demo_config
from tradewire_common.bus import MemoryBroker, MemoryBus
from tradewire_common.clock import SimulatedClock
from tradewire_common.config import Config, load_config
from tradewire_common.metrics_catalog import exported_series_names
from tradewire_common.registry import service_factory
from tradewire_common.service import Service

START_ORDER = ("ledger", "execution", "risk", "signals", "datafeed")
BARS = 400
BTC = "BTCUSDT.BINANCE"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "tw.toml"
    path.write_text(demo_config(limit=BARS, volume_share="0.1", extra=f'path = "{tmp_path / "ledger.db"}"'))
    return load_config(path, environ={})


@pytest.fixture
async def replayed(config: Config) -> AsyncIterator[dict[str, Service]]:
    broker, clock = MemoryBroker(), SimulatedClock()
    services: dict[str, Service] = {}
    try:
        for name in START_ORDER:
            service = service_factory(name)(config, MemoryBus(name, broker, clock=clock), clock)
            await service.start()
            services[name] = service
        feed = cast(Any, services["datafeed"])
        async with asyncio.timeout(100):
            while not feed.done:
                await asyncio.sleep(0.01)
        yield services
    finally:
        for name in reversed(START_ORDER):
            if name in services:
                await services[name].stop()


def value(services: dict[str, Service], service: str, name: str, **labels: str) -> float:
    sample = services[service].metrics.registry.get_sample_value(f"tradewire_{service}_{name}", labels)
    return 0.0 if sample is None else sample


async def test_replay_metrics_agree_with_the_ledger_and_the_feed(replayed: dict[str, Service]) -> None:
    s = replayed
    summary = await cast(Any, s["ledger"]).summary()
    assert summary["fills"] > 0, "the test data must trade"

    assert value(s, "datafeed", "bars_published_total", instrument=BTC) == BARS
    assert value(s, "datafeed", "replay_progress_ratio") == 1.0
    assert value(s, "datafeed", "replay_done_info") == 1.0
    assert value(s, "datafeed", "last_bar_published_timestamp_seconds", instrument=BTC) > 0

    assert value(s, "signals", "market_events_total", instrument=BTC) == BARS
    assert value(s, "signals", "market_event_lag_seconds_count", instrument=BTC) == BARS
    assert value(s, "signals", "signals_total", strategy="sma_cross") == summary["signals"]

    assert value(s, "risk", "trading_state_info", state="ACTIVE") == 1.0
    assert value(s, "risk", "trading_state_info", state="HALTED") == 0.0
    assert value(s, "risk", "limit_ratio", limit="max_position_pct") == 0.10
    assert value(s, "risk", "decision_latency_seconds_count") == summary["signals"]
    assert value(s, "risk", "orders_submitted_total", venue="BINANCE") == summary["orders"]

    fills = value(s, "execution", "fills_total", venue="BINANCE")
    assert fills == summary["fills"]
    by_status = value(s, "execution", "orders_total", venue="BINANCE", status="filled") + value(
        s, "execution", "orders_total", venue="BINANCE", status="partially_filled")
    assert by_status == fills
    assert value(s, "execution", "orders_total", venue="BINANCE", status="submitted") == summary["orders"]
    assert value(s, "execution", "order_round_trip_seconds_count", venue="BINANCE") == summary["orders"]

    assert value(s, "ledger", "equity_value") == pytest.approx(float(summary["final_equity"]))
    peak = value(s, "ledger", "peak_equity_value")
    assert peak >= max(10_000.0, float(summary["final_equity"]))
    assert value(s, "ledger", "drawdown_ratio") == pytest.approx(1 - float(summary["final_equity"]) / peak)
    portfolio = cast(Any, s["ledger"]).portfolio
    position, last = portfolio.position(BTC), portfolio.last_price(BTC)
    notional = float(position.quantity * last)
    assert value(s, "ledger", "position_notional_value", instrument=BTC) == pytest.approx(notional)
    assert value(s, "ledger", "net_exposure_value") == pytest.approx(notional)
    assert value(s, "ledger", "tick_to_order_seconds_count", strategy="sma_cross") == summary["orders"]
    assert value(s, "ledger", "reconciliation_mismatches_total", kind="overfill") == 0.0


async def test_counters_that_alerts_watch_exist_at_zero_before_their_first_increment(
    replayed: dict[str, Service],
) -> None:
    def exact(service: str, name: str, **labels: str) -> float | None:
        return replayed[service].metrics.registry.get_sample_value(f"tradewire_{service}_{name}", labels)

    assert exact("signals", "strategy_errors_total", strategy="sma_cross") == 0
    assert exact("execution", "orders_total", venue="BINANCE", status="rejected") == 0


async def test_every_rendered_sample_is_in_the_metrics_catalog(replayed: dict[str, Service]) -> None:
    catalog = exported_series_names()
    rendered = {
        sample.name
        for service in replayed.values()
        for family in text_string_to_metric_families(service.metrics.render().decode())
        for sample in family.samples
    }
    assert "tradewire_ledger_tick_to_order_seconds_bucket" in rendered
    assert rendered - catalog == set()


async def test_promtool_finds_no_problem_in_what_the_services_render(replayed: dict[str, Service]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (bash tools/ops/install-prometheus.sh installs it as root)")
    for name, service in replayed.items():
        check = await asyncio.create_subprocess_exec(
            promtool, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=PIPE
        )
        out, err = await asyncio.wait_for(check.communicate(service.metrics.render()), 60)
        assert check.returncode == 0 and not out and not err, (name, out, err)
