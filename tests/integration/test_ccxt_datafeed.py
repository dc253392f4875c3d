"""Crypto market data through the real ccxt against the fake Binance on 127.0.0.1: historical OHLCV downloaded
page by page into the Parquet catalog (``tradewire catalog download``), and the datafeed's live feed publishing
closed bars, trades and quotes on a real NATS broker from the websocket, then from REST once the websocket dies."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.binance import FakeBinance
from tests.support.inproc import InProcessStack
from tradewire_common.bus import Envelope, NatsBus
from tradewire_common.config import config_from_dict
from tradewire_common.schemas import Bar, Quote, TradeTick
from tradewire_datafeed.catalog import Catalog
from tradewire_datafeed.ccxt_feed import make_exchange
from tradewire_datafeed.cli import download, register

pytestmark = pytest.mark.timeout(120)
MINUTE_MS = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def klines(n: int, start_ms: int = T0) -> list[list[Any]]:
    rows = []
    for i in range(n):
        o = Decimal(43000) + i
        rows.append([start_ms + i * MINUTE_MS, f"{o:.2f}", f"{o + 5:.2f}", f"{o - 5:.2f}", f"{o + 1:.2f}",
                     f"{Decimal('1.5') + i:.8f}"])
    return rows


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    venue = await FakeBinance().start()
    try:
        yield venue
    finally:
        await venue.stop()


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.05)


def cli_args(fake: FakeBinance, root: Path, since: str, until_: str) -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register(sub)
    return parser.parse_args(["catalog", "--root", str(root), "download", "--venue", "binance", "--symbol",
                              "BTC/USDT", "--interval", "1m", "--since", since, "--until", until_, "--url-override",
                              fake.url])


async def test_download_pages_through_the_venue_into_the_catalog_and_merges_with_what_is_there(
    fake: FakeBinance, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    fake.klines["BTCUSDT"] = klines(2500)
    args = cli_args(fake, tmp_path, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
    code = await asyncio.to_thread(download, args, Catalog(tmp_path))
    assert code == 0, capsys.readouterr().err
    assert "catalog:BTCUSDT.BINANCE/1m: 1440 bars downloaded" in capsys.readouterr().out
    series = Catalog(tmp_path).read("BTCUSDT.BINANCE", "1m")
    assert len(series.records) == 1440 and series.interval == "1m" and series.gaps == []
    first, last = series.records[0], series.records[-1]
    assert first.ts_event == T0 * 1_000_000 and first.open == Decimal("43000.00") and first.volume == Decimal("1.5")
    assert last.ts_event == (T0 + 1439 * MINUTE_MS) * 1_000_000 and last.close == Decimal("44440.00")
    pages = [r for r in fake.requests if r.path == "/api/v3/klines"]
    assert len(pages) == 2 and pages[1].query["startTime"] == str(T0 + 1000 * MINUTE_MS)
    assert all(p.startswith("/api/v3/") for p in fake.paths())  # spot only, no futures exchangeInfo
    # a second download extends the entry
    args = cli_args(fake, tmp_path, str(T0 + 1440 * MINUTE_MS), str(T0 + 2000 * MINUTE_MS))
    assert await asyncio.to_thread(download, args, Catalog(tmp_path)) == 0
    assert len(Catalog(tmp_path).read("BTCUSDT.BINANCE", "1m").records) == 2000


async def test_download_of_an_empty_period_fails_with_a_message(
    fake: FakeBinance, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    fake.klines["BTCUSDT"] = klines(10)
    args = cli_args(fake, tmp_path, "2025-01-01", "2025-01-02")
    assert await asyncio.to_thread(download, args, Catalog(tmp_path)) == 2
    assert "no 1m bars" in capsys.readouterr().err


def test_a_public_data_client_off_the_loopback_is_refused_before_any_call() -> None:
    from tradewire_datafeed.ccxt_feed import check_loopback

    with pytest.raises(RuntimeError, match="tests may only call"):
        check_loopback(make_exchange("binance"))
    assert os.environ.get("PYTEST_CURRENT_TEST")


async def test_live_feed_publishes_closed_bars_trades_and_quotes_then_falls_back_to_rest(
    fake: FakeBinance, nats_url: str,
) -> None:
    config = config_from_dict({"datafeed": {"live": [{
        "venue": "BINANCE", "exchange": "binance", "symbols": ["BTC/USDT"], "channels": ["bars", "trades", "quotes"],
        "interval": "1m", "url_override": fake.url, "poll_interval_s": 0.2, "reconnect_s": 60}]}})
    stack = InProcessStack(config, nats_url)
    probe = NatsBus("probe", nats_url)
    await probe.connect()
    got: dict[str, list[Any]] = {"bar": [], "trade": [], "quote": []}

    async def on_md(envelope: Envelope) -> None:
        message = envelope.message
        kind = {Bar: "bar", TradeTick: "trade", Quote: "quote"}.get(type(message))
        if kind is not None:
            got[kind].append((envelope.subject, message))

    await probe.subscribe("md.>", on_md)
    try:
        service: Any = await stack.start_service("datafeed")
        feed = service.live_feeds[0]
        await until(lambda: {"btcusdt@kline_1m", "btcusdt@trade", "btcusdt@bookTicker"} <= set(fake.ws_subscriptions))
        now_min = (fake.now_ms() // MINUTE_MS) * MINUTE_MS
        t1, t2 = now_min - 3 * MINUTE_MS, now_min - 2 * MINUTE_MS
        fake.push_kline("BTCUSDT", t1, "43000.00", "43010.00", "42990.00", "43005.00", "2.5", closed=False)
        fake.push_kline("BTCUSDT", t1, "43000.00", "43020.00", "42990.00", "43015.00", "3.5", closed=True)
        fake.push_kline("BTCUSDT", t2, "43015.00", "43015.00", "43015.00", "43015.00", "0.1", closed=False)
        fake.push_trade("BTCUSDT", "43015.50", "0.25")
        fake.push_book_ticker("BTCUSDT", "43015.00", "43016.00")
        await until(lambda: bool(got["bar"] and got["trade"] and got["quote"]))
        subject, bar = got["bar"][0]
        assert subject == "md.bar.BINANCE.BTCUSDT.1m"
        assert (bar.ts_event, bar.open, bar.high, bar.close, bar.volume) == (
            t1 * 1_000_000, Decimal("43000.00"), Decimal("43020.00"), Decimal("43015.00"), Decimal("3.5"))
        assert len(got["bar"]) == 1  # the forming bar t2 is not published
        _subject, tick = got["trade"][0]
        assert tick.price == Decimal("43015.50") and tick.size == Decimal("0.25")
        _subject, quote = got["quote"][0]
        assert (quote.bid, quote.ask) == (Decimal("43015.00"), Decimal("43016.00"))

        await fake.kill_websockets()  # the websocket dies and cannot reconnect: REST takes over
        fake.klines["BTCUSDT"] = [[t2, "43015.00", "43030.00", "43000.00", "43025.00", "4.0"],
                                  [t2 + MINUTE_MS, "43025.00", "43026.00", "43024.00", "43026.00", "1.0"]]
        await until(lambda: feed.mode[("BTC/USDT", "bars")] == "rest")
        await until(lambda: len(got["bar"]) >= 3)
        bars = [b for _s, b in got["bar"]]
        assert [b.ts_event // 1_000_000 for b in bars] == [t1, t2, t2 + MINUTE_MS]  # no repeat, no gap
        assert bars[1].close == Decimal("43025.00")
        assert feed.failovers >= 1
        await asyncio.sleep(0.5)  # polling again finds nothing new to publish
        assert len(got["bar"]) == 3
    finally:
        await stack.close()
        await probe.close()


async def test_data_download_without_until_stops_before_the_bar_still_forming(
    fake: FakeBinance, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """``tradewire data download`` (the ``catalog`` group's alias) with no ``--until`` takes every closed bar."""
    import argparse
    import time

    now_ms = time.time_ns() // 1_000_000
    forming = now_ms // MINUTE_MS * MINUTE_MS
    start = forming - 5 * MINUTE_MS
    fake.klines["BTCUSDT"] = klines(6, start)  # five closed bars and the one forming now
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "--root", str(tmp_path), "download", "--venue", "binance", "--symbol",
                              "BTC/USDT", "--interval", "1m", "--since", str(start), "--url-override", fake.url])
    assert await asyncio.to_thread(download, args, Catalog(tmp_path)) == 0, capsys.readouterr().err
    forming_after = time.time_ns() // 1_000_000 // MINUTE_MS * MINUTE_MS
    records = Catalog(tmp_path).read("BTCUSDT.BINANCE", "1m").records
    opens = [r.ts_event // 1_000_000 for r in records]
    # the bar forming at the start is excluded, unless its minute ended while the download ran
    expected = [start + i * MINUTE_MS for i in range(6 if forming_after > forming else 5)]
    assert opens == expected or (forming_after > forming and opens == expected[:5])
