"""Coinbase Advanced and Kraken (fakes on 127.0.0.1, the real ccxt) through the services on a real NATS broker:
orders from the command subject to the venue and back (fills into the ledger with the venue's trade ids, the
venue's own rejection, a cancel), a fill made while execution was down reconciled at restart; market data through
``catalog download`` (every page into the Parquet catalog) and the datafeed's live feed polling REST (these two
venues have no faked websocket)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.fakes import kraken_fake
from tests.fakes.coinbase_fake import API_KEY as COINBASE_KEY
from tests.fakes.coinbase_fake import FakeCoinbase
from tests.fakes.kraken_fake import FakeKraken
from tests.support.inproc import InProcessStack
from tradewire_common import subjects
from tradewire_common.bus import Envelope, NatsBus
from tradewire_common.config import config_from_dict
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    Bar,
    CancelOrder,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderRejected,
    OrderType,
    Quote,
    Side,
    SubmitOrder,
)
from tradewire_datafeed.catalog import Catalog
from tradewire_datafeed.cli import download, register

pytestmark = pytest.mark.timeout(120)
MINUTE_MS = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


@dataclass
class Venue:
    name: str
    exchange_id: str
    fake: Any
    key: str
    secret: str

    def seed_bars(self, n: int, start_ms: int = T0) -> None:
        rows = [[start_ms + i * MINUTE_MS, f"{Decimal(43000) + i:.2f}", f"{Decimal(43005) + i:.2f}",
                 f"{Decimal(42995) + i:.2f}", f"{Decimal(43001) + i:.2f}", f"{Decimal('1.5') + i:.8f}"]
                for i in range(n)]
        if self.exchange_id == "coinbase":
            self.fake.candles["BTC-USD"] = rows
        else:
            self.fake.ohlc["XXBTZUSD"] = [[r[0] // 1000, *r[1:]] for r in rows]

    def bar_requests(self) -> list[Any]:
        path = "/api/v3/brokerage/market/products/BTC-USD/candles" if self.exchange_id == "coinbase" \
            else "/0/public/OHLC"
        return [r for r in self.fake.requests if r.path == path]


@pytest.fixture(params=["coinbase", "kraken"])
async def venue(request: pytest.FixtureRequest) -> AsyncIterator[Venue]:
    if request.param == "coinbase":
        fake: Any = await FakeCoinbase.with_new_key().start()
        v = Venue("COINBASE", "coinbase", fake, COINBASE_KEY, fake.private_pem)
    else:
        fake = await FakeKraken().start()
        v = Venue("KRAKEN", "kraken", fake, kraken_fake.API_KEY, kraken_fake.SECRET)
    try:
        yield v
    finally:
        await fake.stop()


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.05)


def limit(venue: Venue, coid: str, price: str = "42000", **kw: Any) -> SubmitOrder:
    return SubmitOrder(id=derive_id("cmd", coid), ts_event=1, ts_init=1, correlation_id=f"corr-{coid}",
                       strategy_id="sma", instrument_id=f"BTCUSD.{venue.name}", client_order_id=coid, side=Side.BUY,
                       order_type=OrderType.LIMIT, quantity=Decimal("0.5"), limit_price=Decimal(price), **kw)


async def test_orders_flow_through_the_services_and_a_fill_while_execution_was_down_is_reconciled(
    venue: Venue, nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(f"TRADEWIRE_{venue.name}_API_KEY", venue.key)
    monkeypatch.setenv(f"TRADEWIRE_{venue.name}_API_SECRET", venue.secret)
    monkeypatch.setenv("TRADEWIRE_API_TOKEN", "test-token-for-risk")
    base = config_from_dict({
        "execution": {"venues": [{"name": venue.name, "adapter": "ccxt", "mode": "sandbox",
                                  "exchange": venue.exchange_id, "symbols": ["BTC/USD"], "url_override": venue.fake.url,
                                  "poll_interval_s": 0.2, "reconcile_interval_s": 0.5, "in_flight_grace_s": 1.0,
                                  "rate_limit_per_s": 50}]},
        "ledger": {"starting_cash": "100000", "currency": "USD", "path": str(tmp_path / "ledger.db")},
    })
    stack = InProcessStack(base, nats_url)
    probe = NatsBus("probe", nats_url)
    await probe.connect()
    events: list[OrderEvent] = []

    async def on_event(envelope: Envelope) -> None:
        if isinstance(envelope.message, OrderEvent):
            events.append(envelope.message)

    def seen(kind: type[OrderEvent], coid: str) -> list[Any]:
        return [e for e in events if isinstance(e, kind) and e.client_order_id == coid]

    async def ledger_fills() -> list[dict[str, Any]]:
        try:
            rows: list[dict[str, Any]] = (await stack.get("ledger", "/v1/fills")).json()
        except httpx.HTTPError:
            return []
        return rows

    await probe.subscribe(subjects.STRATEGY_ORDER_EVENTS, on_event)
    command = subjects.order_command(venue.name)
    one, po, two = (f"tw-svc-{venue.exchange_id}-{n}" for n in ("1", "po", "2"))  # event ids derive from these
    try:
        await stack.start(("ledger", "risk"))
        stack.config = msgspec.structs.replace(base, execution=msgspec.structs.replace(
            base.execution, ledger_url=stack.url("ledger"), risk_url=stack.url("risk")))
        await stack.start_service("execution")
        await probe.publish(command, limit(venue, one))  # as risk would
        await until(lambda: bool(seen(OrderAccepted, one)))
        first = venue.fake.fill(one, "0.2")
        await until(lambda: _count(ledger_fills, 1))
        await stack.stop_service("execution")
        second = venue.fake.fill(one, "0.3")  # the rest fills while execution is down
        await stack.start_service("execution")  # resolves and reconciles at start
        await until(lambda: _count(ledger_fills, 2))
        rows = await ledger_fills()
        ids = [str(getattr(t, "trade_id", "") if venue.exchange_id == "coinbase" else t.txid) for t in (first, second)]
        assert sorted(r["trade_id"] for r in rows) == sorted(ids)
        assert sum(Decimal(r["last_qty"]) for r in rows) == Decimal("0.5")
        body = (await stack.get("execution", "/v1/venues")).json()[venue.name]
        assert body["adapter"] == "CcxtVenue" and body["open_orders"] == []

        await probe.publish(command, limit(venue, po, price="43500", post_only=True))  # would cross
        await until(lambda: bool(seen(OrderRejected, po)))
        own_error = "INVALID_LIMIT_PRICE_POST_ONLY" if venue.exchange_id == "coinbase" else "EOrder:Post only order"
        assert own_error in seen(OrderRejected, po)[0].reason

        await probe.publish(command, limit(venue, two))
        await until(lambda: bool(seen(OrderAccepted, two)))
        await probe.publish(command, CancelOrder(id=derive_id("cancel", two), ts_event=2, ts_init=2,
                                                 strategy_id="sma", instrument_id=f"BTCUSD.{venue.name}",
                                                 client_order_id=two, reason="test"))
        await until(lambda: bool(seen(OrderCanceled, two)))
        assert str(venue.fake.order_by_client_id(two).status).lower() in ("cancelled", "canceled")
        trading = (await stack.get("risk", "/v1/trading-state")).json()["scopes"]
        assert trading.get(f"venue:{venue.name}", {}).get("state", "ACTIVE") == "ACTIVE"  # reconciliation agrees
    finally:
        await stack.close()
        await probe.close()


async def _count(fetch: Callable[[], Awaitable[list[dict[str, Any]]]], n: int) -> bool:
    return len(await fetch()) >= n


def cli_args(venue: Venue, root: Path, since: str, until_: str) -> Any:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register(sub)
    return parser.parse_args(["catalog", "--root", str(root), "download", "--venue", venue.exchange_id, "--symbol",
                              "BTC/USD", "--interval", "1m", "--since", since, "--until", until_, "--url-override",
                              venue.fake.url])


async def test_download_pages_through_the_venue_ohlcv_into_the_catalog(
    venue: Venue, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    venue.seed_bars(2000)
    args = cli_args(venue, tmp_path, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
    code = await asyncio.to_thread(download, args, Catalog(tmp_path))
    assert code == 0, capsys.readouterr().err
    iid = f"BTCUSD.{venue.name}"
    assert f"catalog:{iid}/1m: 1440 bars downloaded" in capsys.readouterr().out
    series = Catalog(tmp_path).read(iid, "1m")
    assert len(series.records) == 1440 and series.gaps == []
    first, last = series.records[0], series.records[-1]
    assert (first.ts_event, first.open, first.volume) == (T0 * 1_000_000, Decimal("43000.00"), Decimal("1.5"))
    assert last.ts_event == (T0 + 1439 * MINUTE_MS) * 1_000_000 and last.close == Decimal("44440.00")
    pages = venue.bar_requests()
    # Coinbase serves at most 300 candles a request, Kraken 720 from "since"
    assert len(pages) == (5 if venue.exchange_id == "coinbase" else 2)
    if venue.exchange_id == "coinbase":
        assert all(p.path.startswith("/api/v3/brokerage/") for p in venue.fake.requests)
    else:
        assert all(p.path.startswith("/0/public/") for p in venue.fake.requests)  # no key, no private call


async def test_live_feed_polls_closed_bars_and_quotes_from_rest(venue: Venue, nats_url: str) -> None:
    import time

    now_min = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
    venue.seed_bars(4, now_min - 3 * MINUTE_MS)  # the last one is still forming
    config = config_from_dict({"datafeed": {"live": [{
        "venue": venue.name, "exchange": venue.exchange_id, "symbols": ["BTC/USD"], "channels": ["bars", "quotes"],
        "interval": "1m", "url_override": venue.fake.url, "poll_interval_s": 0.2, "websocket": False}]}})
    stack = InProcessStack(config, nats_url)
    probe = NatsBus("probe", nats_url)
    await probe.connect()
    got: dict[str, list[Any]] = {"bar": [], "quote": []}

    async def on_md(envelope: Envelope) -> None:
        kind = {Bar: "bar", Quote: "quote"}.get(type(envelope.message))
        if kind is not None:
            got[kind].append((envelope.subject, envelope.message))

    await probe.subscribe("md.>", on_md)
    try:
        service: Any = await stack.start_service("datafeed")
        feed = service.live_feeds[0]
        await until(lambda: bool(got["bar"] and got["quote"]))
        polls = len(venue.bar_requests())
        await until(lambda: len(venue.bar_requests()) >= polls + 3)  # polled again: nothing new to publish
        subject, bar = got["bar"][0]
        assert subject == f"md.bar.{venue.name}.BTCUSD.1m" and len(got["bar"]) == 1
        assert bar.ts_event == (now_min - MINUTE_MS) * 1_000_000 and bar.close == Decimal("43003.00")
        subject, quote = got["quote"][0]
        assert subject == f"md.quote.{venue.name}.BTCUSD" and quote.bid < quote.ask == Decimal("43000.0")
        assert feed.mode[("BTC/USD", "bars")] == "rest"
    finally:
        await stack.close()
        await probe.close()


async def test_venues_markets_reads_precision_and_limits_without_credentials(venue: Venue) -> None:
    from tradewire_execution.venues.ccxt_cli import spec_toml, venue_specs

    config = config_from_dict({"execution": {"venues": [{
        "name": venue.name, "adapter": "ccxt", "mode": "sandbox", "exchange": venue.exchange_id,
        "symbols": ["BTC/USD", "ETH/USD"], "url_override": venue.fake.url}]}})
    specs = await venue_specs(config.execution.venues[0])
    assert [s.id for s in specs] == [f"BTCUSD.{venue.name}", f"ETHUSD.{venue.name}"]
    text = spec_toml(specs[0])
    if venue.exchange_id == "coinbase":  # base_increment, quote_increment, quote_min_size
        assert 'price_tick = "0.01"' in text and 'min_notional = "1"' in text
    else:  # lot_decimals, pair_decimals, ordermin, costmin
        assert 'price_tick = "0.1"' in text and 'min_quantity = "0.0001"' in text and 'min_notional = "0.5"' in text
    assert not any(r.path.startswith(("/0/private/", "/api/v3/brokerage/transaction_summary"))
                   for r in venue.fake.requests)
    no_override = msgspec.structs.replace(config.execution.venues[0], url_override="")
    with pytest.raises(ValueError, match="no testnet in ccxt"):
        await venue_specs(no_override)
