"""Alpaca market data through the unmodified alpaca-py clients against the fake on 127.0.0.1:
history over several pages into the Parquet catalog, and the live msgpack stream as bars, trades and
quotes on a real NATS broker."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fakes.alpaca_fake import KEY_ID, SECRET, AlpacaFake, alpaca_fake
from tradewire_common import subjects
from tradewire_common.bus import Envelope, NatsBus
from tradewire_common.schemas import Bar, Quote, TradeTick
from tradewire_datafeed.alpaca_data import AlpacaLiveFeed, data_client, download_bars, download_to_catalog
from tradewire_datafeed.catalog import Catalog

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 1_000_000_000


def loopback(url: str) -> str:
    host = urlsplit(url).hostname
    assert host == "127.0.0.1", f"tests only talk to loopback, not {url}"
    return url


@pytest.fixture
def fake() -> Iterator[AlpacaFake]:
    with alpaca_fake(page_size=4) as venue:
        yield venue


def minute_bars(n: int) -> list[dict[str, object]]:
    return [{"t": f"2024-01-02T14:{30 + i:02d}:00Z", "o": 185.5 + i, "h": 186.25 + i, "l": 185.01 + i,
             "c": 185.93 + i, "v": 1200 + i, "n": 17, "vw": 185.7 + i} for i in range(n)]


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_history_follows_next_page_token_until_the_last_page(fake: AlpacaFake) -> None:
    fake.add_bars("AAPL", minute_bars(10))
    client = data_client(loopback(fake.url), KEY_ID, SECRET)

    records = download_bars(client, "AAPL", "1m", T0)

    assert len(records) == 10
    tokens = [q.get("page_token") for m, p, q, _b in fake.requests if p == "/v2/stocks/bars"]
    assert tokens == [None, "4", "8"]  # three pages of at most four bars
    assert records[0].ts_event == T0_NS
    assert [r.ts_event for r in records] == [T0_NS + i * 60_000_000_000 for i in range(10)]
    assert records[3].open == Decimal("188.5") and records[3].low == Decimal("188.01")
    assert records[9].close == Decimal("194.93")  # exact text, no binary float noise


def test_history_lands_in_the_catalog_and_reads_back_equal(fake: AlpacaFake, tmp_path: Path) -> None:
    fake.add_bars("MSFT", minute_bars(7))
    client = data_client(loopback(fake.url), KEY_ID, SECRET)
    catalog = Catalog(tmp_path / "catalog")

    entry = download_to_catalog(client, catalog, "MSFT", "1m", T0, venue="ALPACA")

    assert entry.name == "catalog:MSFT.ALPACA/1m"
    series = catalog.read("MSFT.ALPACA", "1m")
    assert series.interval == "1m"
    assert len(series.records) == 7
    assert series.records[6].high == Decimal("192.25")
    assert [e.name for e in catalog.entries()] == ["catalog:MSFT.ALPACA/1m"]


def test_history_with_wrong_keys_is_refused_by_the_venue(fake: AlpacaFake) -> None:
    from alpaca.common.exceptions import APIError

    fake.add_bars("AAPL", minute_bars(2))
    client = data_client(loopback(fake.url), KEY_ID, "wrong-secret")
    with pytest.raises(APIError) as info:
        download_bars(client, "AAPL", "1m", T0)
    assert info.value.status_code == 401
    assert fake.bad_auth == 1


def test_an_interval_alpaca_does_not_have_is_refused_before_any_request(fake: AlpacaFake) -> None:
    client = data_client(loopback(fake.url), KEY_ID, SECRET)
    with pytest.raises(ValueError, match="no bar interval"):
        download_bars(client, "AAPL", "7s", T0)
    assert fake.requests == []


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[NatsBus]:
    bus = NatsBus("alpaca_test_" + uuid.uuid4().hex[:8], nats_url, connect_timeout=10.0)
    await bus.connect()
    yield bus
    await bus.close()


async def test_live_stream_bars_trades_and_quotes_reach_nats(
    fake: AlpacaFake, bus: NatsBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    venue = "ALP" + uuid.uuid4().hex[:6].upper()
    got: list[Envelope] = []

    async def record(envelope: Envelope) -> None:
        got.append(envelope)

    for pattern in (f"md.bar.{venue}.>", f"md.trade.{venue}.>", f"md.quote.{venue}.>"):
        await bus.subscribe(pattern, record)
    await bus.nc.flush()
    feed = AlpacaLiveFeed(bus.publish, ["AAPL"], venue=venue, trades=True, quotes=True,
                          stream_url=loopback(fake.url).replace("http", "ws") + "/v2/iex", key=KEY_ID, secret=SECRET)
    await feed.start()
    try:
        await eventually(lambda: any(s["bars"] and s["trades"] and s["quotes"] for s in fake.data_subscriptions()))
        assert fake.data_subscriptions()[0]["bars"] == {"AAPL"}

        await asyncio.to_thread(fake.push_bar, "AAPL", T0_NS, 185.5, 186.25, 185.01, 185.93, 1200)
        await asyncio.to_thread(fake.push_trade, "AAPL", T0_NS + 1_500, 185.94, 100, 52983525029461)
        await asyncio.to_thread(fake.push_quote, "AAPL", T0_NS + 2_000, 185.92, 185.95, 300, 200)
        await asyncio.to_thread(fake.push_quote, "AAPL", T0_NS + 3_000, 185.99, 185.95, 300, 200)  # crossed
        await eventually(lambda: len(got) == 3 and feed.counters.skipped == 1)
    finally:
        await feed.stop()

    by_type = {type(e.message): e for e in got}
    bar = by_type[Bar]
    assert bar.subject == subjects.bar(venue, "AAPL", "1m")
    assert isinstance(bar.message, Bar)
    assert bar.message.instrument_id == f"AAPL.{venue}"
    assert bar.message.ts_event == T0_NS
    assert (bar.message.open, bar.message.high, bar.message.low, bar.message.close, bar.message.volume) == (
        Decimal("185.5"), Decimal("186.25"), Decimal("185.01"), Decimal("185.93"), Decimal("1200.0"))
    trade = by_type[TradeTick].message
    assert isinstance(trade, TradeTick)
    assert (trade.price, trade.size, trade.trade_id) == (Decimal("185.94"), Decimal("100.0"), "52983525029461")
    quote = by_type[Quote].message
    assert isinstance(quote, Quote)
    assert (quote.bid, quote.ask) == (Decimal("185.92"), Decimal("185.95"))
    assert SECRET not in caplog.text


async def test_live_stream_with_wrong_keys_publishes_nothing_and_logs_no_secret(
    fake: AlpacaFake, bus: NatsBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    feed = AlpacaLiveFeed(bus, ["AAPL"], venue="ALPBAD", stream_url=fake.ws_url + "/v2/iex", key=KEY_ID,
                          secret="wrong-" + SECRET)
    await feed.start()
    try:
        await eventually(lambda: fake.bad_auth >= 1)
    finally:
        await feed.stop()
    assert fake.data_subscriptions() == []
    assert feed.counters.bars == 0
    assert SECRET not in caplog.text


def test_catalog_download_venue_alpaca_pages_the_history_into_the_catalog(
    fake: AlpacaFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tradewire_common.cli.main import main

    monkeypatch.setenv("APCA_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    fake.add_bars("AAPL", minute_bars(9))
    code = main(["catalog", "--root", str(tmp_path), "download", "--venue", "alpaca", "--symbol", "AAPL",
                 "--interval", "1m", "--since", "2024-01-02T14:30:00Z", "--until", "2024-01-02T15:00:00Z",
                 "--url-override", loopback(fake.url)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "catalog:AAPL.ALPACA/1m: 9 bars downloaded" in out.out
    assert len([1 for _m, p, _q, _b in fake.requests if p == "/v2/stocks/bars"]) == 3
    assert Catalog(tmp_path).read("AAPL.ALPACA", "1m").records[8].close == Decimal("193.93")
    assert SECRET not in out.out + out.err


def test_catalog_download_venue_alpaca_says_what_is_missing_without_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tradewire_common.cli.main import main

    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    code = main(["catalog", "--root", str(tmp_path), "download", "--venue", "alpaca", "--symbol", "AAPL",
                 "--since", "2024-01-02", "--until", "2024-01-03", "--url-override", "http://127.0.0.1:9"])
    assert code == 2
    assert "APCA_API_KEY_ID" in capsys.readouterr().err


async def test_a_datafeed_live_entry_with_exchange_alpaca_publishes_the_stream_as_bars(
    fake: AlpacaFake, fresh_nats: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.inproc import InProcessStack
    from tradewire_common.config import config_from_dict

    monkeypatch.setenv("APCA_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    config = config_from_dict({"datafeed": {"live": [{"venue": "ALPACA", "symbols": ["AAPL"], "exchange": "alpaca",
                                                      "channels": ["bars"], "url_override": loopback(fake.url)}]}})
    probe = NatsBus("probe", fresh_nats.url, auth=None)
    await probe.connect()
    got: list[Envelope] = []

    async def record(envelope: Envelope) -> None:
        got.append(envelope)

    await probe.subscribe("md.bar.ALPACA.>", record)
    await probe.nc.flush()
    stack = InProcessStack(config, fresh_nats.url)
    await stack.start(("datafeed",))
    try:
        await eventually(lambda: any(s["bars"] for s in fake.data_subscriptions()))
        await asyncio.to_thread(fake.push_bar, "AAPL", T0_NS, 185.5, 186.25, 185.01, 185.93, 1200)
        await eventually(lambda: len(got) == 1)
        status = (await stack.get("datafeed", "/v1/replay")).json()
    finally:
        await stack.close()
        await probe.close()
    assert got[0].subject == "md.bar.ALPACA.AAPL.1m"
    assert isinstance(got[0].message, Bar) and got[0].message.close == Decimal("185.93")
    assert status["live"]["ALPACA"]["published"]["bars"] == 1
