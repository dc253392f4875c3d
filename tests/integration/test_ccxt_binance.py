"""The ccxt adapter with the real, unmodified ccxt against a fake Binance spot venue on 127.0.0.1 (Binance's wire
format, signatures checked): restricted market loading, the order life cycle with partial fills and cancels,
answers lost after sending, rate limits, the websocket failing over to polling, and, through the services on a
real NATS broker, reconciliation of a fill missed while execution was down and a mismatch making the venue
REDUCING in risk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from tests.fakes.binance import API_KEY, SECRET, FakeBinance
from tests.support.inproc import InProcessStack
from tradewire_common import subjects
from tradewire_common.bus import Envelope, NatsBus
from tradewire_common.config import Config, config_from_dict
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    CancelOrder,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderType,
    Side,
    SubmitOrder,
)
from tradewire_execution.live import CollectingHost, Credentials, LiveTradingRefused
from tradewire_execution.live.guard import walk_urls
from tradewire_execution.venues.ccxt_adapter import CcxtVenue, make_exchange

pytestmark = pytest.mark.timeout(120)
BTC = "BTCUSDT.BINANCE"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    venue = await FakeBinance().start()
    try:
        yield venue
    finally:
        await venue.stop()


def adapter(fake: FakeBinance, *, secret: str = SECRET, websocket: bool = True, grace_s: float = 1.0) -> CcxtVenue:
    credentials = Credentials(API_KEY, secret)
    exchange = make_exchange("binance", credentials=credentials, sandbox=True, url_override=fake.url,
                             timeout_ms=3000)
    for url in walk_urls(exchange.urls["api"]):  # nothing can leave the machine
        assert url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:")), url
    return CcxtVenue("BINANCE", exchange, ["BTC/USDT"], credentials=credentials, websocket=websocket,
                     poll_interval_s=0.1, in_flight_grace_s=grace_s)


@pytest.fixture
async def venue(fake: FakeBinance) -> AsyncIterator[tuple[CcxtVenue, CollectingHost]]:
    v = adapter(fake)
    host = CollectingHost()
    v.attach(host)
    await v.start()
    try:
        yield v, host
    finally:
        await v.close()


def limit(coid: str, qty: str = "0.5", price: str = "42000") -> SubmitOrder:
    return SubmitOrder(id=derive_id("cmd", coid), ts_event=1, ts_init=1, correlation_id=f"corr-{coid}",
                       strategy_id="sma", instrument_id=BTC, client_order_id=coid, side=Side.BUY,
                       order_type=OrderType.LIMIT, quantity=Decimal(qty), limit_price=Decimal(price))


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.05)


def creates(fake: FakeBinance) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.path == "/api/v3/order")


async def test_start_up_loads_only_the_spot_markets_and_calls_no_futures_margin_or_wallet_endpoint(
    fake: FakeBinance, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, _host = venue
    assert v.markets_loaded
    assert fake.paths() and all(p.startswith("/api/v3/") for p in fake.paths()), fake.paths()
    assert not any(p.startswith(("/fapi", "/dapi", "/eapi", "/papi", "/sapi")) for p in fake.paths())
    spec = v.instrument_specs()[0]
    assert (spec.id, spec.quantity_step, spec.price_tick, spec.min_notional) == (
        BTC, Decimal("0.00001"), Decimal("0.01"), Decimal(5))
    assert {"market", "limit", "gtc", "ioc", "fok", "post_only", "stop_limit"} <= v.capabilities
    assert "day" not in v.capabilities  # Binance has no DAY orders


async def test_an_order_lives_through_partial_fills_and_a_cancel_with_the_venue_trade_ids(
    fake: FakeBinance, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, host = venue
    accepted = await v.submit(limit("tw-life-1"), 1)
    assert [type(e) for e in accepted] == [OrderAccepted]
    at_venue = fake.order_by_client_id("tw-life-1")  # our id is the venue's client order id
    assert accepted[0].venue_order_id == str(at_venue.order_id)  # type: ignore[attr-defined]
    t1 = fake.fill("tw-life-1", "0.2")
    t2 = fake.fill("tw-life-1", "0.1")
    await until(lambda: len([e for e in host.events if isinstance(e, OrderFilled)]) == 2)
    cancel = CancelOrder(id=derive_id("cancel"), ts_event=2, ts_init=2, strategy_id="sma", instrument_id=BTC,
                         client_order_id="tw-life-1", reason="signal gone")
    closed = await v.cancel(cancel, 3)
    await asyncio.sleep(0.5)  # the stream's and the poll's late copies must not add anything
    fills = [e for e in host.events + closed if isinstance(e, OrderFilled)]
    assert [(f.trade_id, f.last_qty, f.partial, f.leaves_qty) for f in fills] == [
        (str(t1.trade_id), Decimal("0.2"), True, Decimal("0.3")), (str(t2.trade_id), Decimal("0.1"), True,
                                                                   Decimal("0.2"))]
    assert [type(e) for e in closed] == [OrderCanceled]
    assert closed[0].filled_qty == Decimal("0.3") and closed[0].reason == "signal gone"  # type: ignore[attr-defined]
    assert at_venue.status == "CANCELED" and v.open_orders() == []


async def test_a_market_order_is_accepted_and_filled_from_the_create_answer(
    fake: FakeBinance, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, _host = venue
    order = SubmitOrder(id=derive_id("m"), ts_event=1, ts_init=1, strategy_id="sma", instrument_id=BTC,
                        client_order_id="tw-mkt-1", side=Side.BUY, order_type=OrderType.MARKET,
                        quantity=Decimal("0.1"))
    events = await v.submit(order, 1)
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled]
    fill = events[1]
    assert isinstance(fill, OrderFilled) and fill.last_px == Decimal(43000) and not fill.partial
    assert fill.fee == Decimal("4.3") and fill.fee_currency == "USDT"


async def test_a_connection_dropped_after_the_venue_took_the_order_is_resolved_by_query_not_sent_again(
    fake: FakeBinance, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, _host = venue
    fake.inject("POST", "/api/v3/order", "drop")
    events = await v.submit(limit("tw-drop-1"), 1)
    assert [type(e) for e in events] == [OrderAccepted]
    assert creates(fake) == 1
    lookups = [r for r in fake.requests if r.method == "GET" and r.path == "/api/v3/order"]
    assert lookups and lookups[0].query["origClientOrderId"] == "tw-drop-1"


async def test_a_5xx_after_the_venue_took_the_order_is_resolved_by_query(
    fake: FakeBinance, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, _host = venue
    fake.inject("POST", "/api/v3/order", "503")
    assert [type(e) for e in await v.submit(limit("tw-503-1"), 1)] == [OrderAccepted]
    assert creates(fake) == 1


async def test_an_answer_lost_before_the_venue_took_the_order_is_rejected_only_after_the_grace(
    fake: FakeBinance, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, host = venue
    fake.inject("POST", "/api/v3/order", "drop_before")
    assert await v.submit(limit("tw-lost-1"), 1) == []  # in flight: the venue said nothing definitive yet
    await until(lambda: any(isinstance(e, OrderRejected) for e in host.events))
    rejected = next(e for e in host.events if isinstance(e, OrderRejected))
    assert "no order tw-lost-1" in rejected.reason
    assert creates(fake) == 1  # never created twice
    assert await v.submit(limit("tw-lost-1"), 2) == []  # and a redelivered command changes nothing


async def test_a_429_is_honoured_with_its_retry_after_before_the_create_is_sent_again(
    fake: FakeBinance, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, _host = venue
    fake.inject("POST", "/api/v3/order", "429", retry_after="1")
    assert [type(e) for e in await v.submit(limit("tw-429-1"), 1)] == [OrderAccepted]
    posts = [r for r in fake.requests if r.method == "POST" and r.path == "/api/v3/order"]
    assert len(posts) == 2 and len(fake.orders) == 1
    assert posts[1].at - posts[0].at >= 1.0  # nothing was sent before the Retry-After had passed
    assert v.limiter.penalties == 1


async def test_a_wrong_signature_is_a_definitive_refusal_that_shows_no_secret(fake: FakeBinance) -> None:
    v = adapter(fake, secret="not-the-secret-0000")
    await v.start()
    try:
        events = await v.submit(limit("tw-auth-1"), 1)
    finally:
        await v.close()
    assert [type(e) for e in events] == [OrderRejected]
    reason = events[0].reason  # type: ignore[attr-defined]
    assert "Signature for this request is not valid" in reason
    assert "not-the-secret" not in reason and API_KEY not in reason and "signature=" not in reason.replace(
        "signature=***", "")
    assert fake.orders == {}


async def test_a_clock_off_by_more_than_the_receive_window_is_resynced_and_the_create_sent_again(
    fake: FakeBinance,
) -> None:
    fake.clock_offset_ms = -60_000  # the venue's clock is a minute behind: signed requests are "too new"
    v = adapter(fake)
    await v.start()
    try:
        events = await v.submit(limit("tw-clock-1"), 1)
    finally:
        await v.close()
    # -1021 means "not processed": the adapter reads the venue's time and sends the create again
    assert [type(e) for e in events] == [OrderAccepted]
    assert creates(fake) == 2 and len(fake.orders) == 1
    assert "/api/v3/time" in fake.paths()


async def test_fills_keep_coming_by_polling_when_the_websocket_dies(
    fake: FakeBinance, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, host = venue
    await v.submit(limit("tw-ws-1"), 1)
    await fake.kill_websockets()  # and refuses new ones
    fake.fill("tw-ws-1", "0.5")
    await until(lambda: any(isinstance(e, OrderFilled) for e in host.events))
    assert v.open_orders() == []


def test_a_ccxt_client_not_pointed_at_the_fake_is_refused_before_any_call() -> None:
    exchange = make_exchange("binance", sandbox=True)  # testnet URLs: not loopback
    v = CcxtVenue("BINANCE", exchange, ["BTC/USDT"])
    with pytest.raises(LiveTradingRefused, match="tests may only call"):
        v._check_urls()


# --- through the services, on a real broker ---------------------------------------------------------------


def stack_config(fake: FakeBinance, *, ledger_url: str = "", risk_url: str = "") -> Config:
    return config_from_dict({
        "execution": {"venues": [{"name": "BINANCE", "adapter": "ccxt", "mode": "sandbox", "exchange": "binance",
                                  "symbols": ["BTC/USDT"], "url_override": fake.url, "poll_interval_s": 0.2,
                                  "reconcile_interval_s": 0.5, "in_flight_grace_s": 1.0}],
                      "ledger_url": ledger_url, "risk_url": risk_url},
        "ledger": {"starting_cash": "100000", "currency": "USDT"},
    })


async def test_reconciliation_applies_a_fill_missed_while_down_and_a_mismatch_makes_the_venue_reducing(
    fake: FakeBinance, nats_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADEWIRE_BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("TRADEWIRE_BINANCE_API_SECRET", SECRET)
    monkeypatch.setenv("TRADEWIRE_API_TOKEN", "test-token-for-risk")
    monkeypatch.setenv("TRADEWIRE__LEDGER__PATH", str(tmp_path / "ledger.db"))
    base = stack_config(fake)
    base = msgspec.structs.replace(base, ledger=msgspec.structs.replace(base.ledger, path=str(tmp_path / "l.db")))
    stack = InProcessStack(base, nats_url)
    probe = NatsBus("probe", nats_url)
    await probe.connect()
    events: list[OrderEvent] = []

    async def on_event(envelope: Envelope) -> None:
        if isinstance(envelope.message, OrderEvent):
            events.append(envelope.message)

    await probe.subscribe(subjects.STRATEGY_ORDER_EVENTS, on_event)
    try:
        await stack.start(("ledger", "risk"))
        stack.config = msgspec.structs.replace(base, execution=msgspec.structs.replace(
            base.execution, ledger_url=stack.url("ledger"), risk_url=stack.url("risk")))
        await stack.start_service("execution")

        async def ledger_fills() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = (await stack.get("ledger", "/v1/fills")).json()
            return rows

        order = limit("tw-rec-1")
        await probe.publish(subjects.order_command("BINANCE"), order)  # as risk would
        await until(lambda: any(o.client_order_id == "tw-rec-1" for o in fake.orders.values()))
        fake.fill("tw-rec-1", "0.2")
        await until(lambda: _count(ledger_fills, 1))
        await stack.stop_service("execution")
        fake.fill("tw-rec-1", "0.3")  # the rest fills while execution is down
        await stack.start_service("execution")  # reconciles at start
        await until(lambda: _count(ledger_fills, 2))
        rows = await ledger_fills()
        assert sorted(r["trade_id"] for r in rows) == sorted(str(t.trade_id) for t in fake.trades)
        venues = (await stack.get("execution", "/v1/venues")).json()
        assert venues["BINANCE"]["adapter"] == "CcxtVenue" and venues["BINANCE"]["open_orders"] == []

        fake.balances["BTC"] += Decimal(1)  # BTC the ledger cannot explain (a transfer, a manual trade)

        async def reducing() -> bool:
            body = (await stack.get("risk", "/v1/trading-state")).json()
            return bool(body["scopes"]["venue:BINANCE"]["state"] == "REDUCING")

        await until(reducing)
        body = (await stack.get("risk", "/v1/trading-state")).json()["scopes"]["venue:BINANCE"]
        assert "reconciliation mismatch" in body["reason"] and "BTC" in body["reason"]
        # a new entry is refused at the venue now
        await probe.publish(subjects.order_command("BINANCE"), limit("tw-rec-2"))
        await until(lambda: any(isinstance(e, OrderRejected) and e.client_order_id == "tw-rec-2" for e in events))
        assert not any(o.client_order_id == "tw-rec-2" for o in fake.orders.values())
    finally:
        await stack.close()
        await probe.close()


async def _count(fetch: Callable[[], Awaitable[list[dict[str, Any]]]], n: int) -> bool:
    try:
        return len(await fetch()) >= n
    except httpx.HTTPError:
        return False


async def test_venues_markets_prints_the_instrument_specs_as_toml(fake: FakeBinance, tmp_path: Any) -> None:
    import sys
    import tomllib

    config = tmp_path / "tw.toml"
    config.write_text(f'''
[[execution.venues]]
name = "BINANCE"
adapter = "ccxt"
mode = "sandbox"
symbols = ["BTC/USDT", "ETH/USDT"]
url_override = "{fake.url}"
''')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradewire_common.cli.main", "venues", "markets", "--venue", "BINANCE", "--config",
        str(config), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**__import__("os").environ, "PYTEST_CURRENT_TEST": "venues-markets"})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    specs = tomllib.loads(out.decode())["risk"]["instruments"]
    assert [s["id"] for s in specs] == ["BTCUSDT.BINANCE", "ETHUSDT.BINANCE"]
    assert specs[0]["quantity_step"] == "0.00001" and specs[0]["price_tick"] == "0.01"
    assert specs[0]["min_notional"] == "5" and specs[0]["max_quantity"] == "9000"
    config_from_dict({"risk": {"instruments": specs}})  # valid configuration as printed
