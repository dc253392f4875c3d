"""The ccxt adapter with the real, unmodified ccxt against fake Coinbase Advanced Trade and Kraken venues on
127.0.0.1 (their own wire formats; Coinbase's ES256 JWT and Kraken's API-Sign/nonce verified): restricted market
loading, the order life cycle with partial fills and a cancel, the venues' own rejections (insufficient funds,
post-only crossing), GTD expiry, answers lost after sending, rate limits, bad credentials; each test runs for both
venues. Through the services on a real NATS broker: an order's fills reach the ledger, a fill while execution is
down is reconciled at restart. Market data: ``catalog download`` pages and the live feed polling REST."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes import coinbase_fake, kraken_fake
from tests.fakes.coinbase_fake import FakeCoinbase
from tests.fakes.kraken_fake import FakeKraken
from tradewire_common.ids import client_order_id, derive_id
from tradewire_common.schemas import (
    CancelOrder,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    Side,
    SubmitOrder,
    TimeInForce,
)
from tradewire_execution.live import CollectingHost, Credentials
from tradewire_execution.live.base import VenueRefused
from tradewire_execution.live.guard import walk_urls
from tradewire_execution.venues.ccxt_adapter import CcxtVenue, make_exchange

pytestmark = pytest.mark.timeout(120)
Fake = FakeCoinbase | FakeKraken


@dataclass
class Kit:
    """One venue under test: its fake, its credentials and how to read its wire."""

    venue: str
    exchange_id: str
    create_path: str
    fake: Any
    credentials: Credentials

    @property
    def instrument(self) -> str:
        return f"BTCUSD.{self.venue}"

    def creates(self) -> list[Any]:
        return [r for r in self.fake.requests if r.path == self.create_path]

    def inject_create(self, kind: str, **kw: Any) -> None:
        if self.exchange_id == "coinbase":
            self.fake.inject("POST", self.create_path, kind, **kw)
        else:
            self.fake.inject(self.create_path, kind, **kw)

    def status(self, coid: str) -> str:
        return str(self.fake.order_by_client_id(coid).status).lower()

    def trade_id(self, trade: Any) -> str:
        return str(trade.trade_id if self.exchange_id == "coinbase" else trade.txid)

    def adapter(self, *, credentials: Credentials | None = None, timeout_ms: int = 3000,
                grace_s: float = 1.0) -> CcxtVenue:
        credentials = credentials or self.credentials
        exchange = make_exchange(self.exchange_id, credentials=credentials, url_override=self.fake.url,
                                 timeout_ms=timeout_ms, options={"adjustForTimeDifference": True})
        for url in walk_urls(exchange.urls["api"]):  # nothing can leave the machine
            assert url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:")), url
        return CcxtVenue(self.venue, exchange, ["BTC/USD"], credentials=credentials, poll_interval_s=0.1,
                         in_flight_grace_s=grace_s)


@pytest.fixture(params=["coinbase", "kraken"])
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    if request.param == "coinbase":
        pem, public_key = coinbase_fake.new_key_pair()
        fake: Fake = await FakeCoinbase(public_key).start()
        k = Kit("COINBASE", "coinbase", "/api/v3/brokerage/orders", fake, Credentials(coinbase_fake.API_KEY, pem))
    else:
        fake = await FakeKraken().start()
        k = Kit("KRAKEN", "kraken", "/0/private/AddOrder", fake,
                Credentials(kraken_fake.API_KEY, kraken_fake.SECRET))
    try:
        yield k
    finally:
        await fake.stop()


@pytest.fixture
async def venue(kit: Kit) -> AsyncIterator[tuple[CcxtVenue, CollectingHost]]:
    v = kit.adapter()
    host = CollectingHost()
    v.attach(host)
    await v.start()
    try:
        yield v, host
    finally:
        await v.close()


def order(kit: Kit, coid: str, qty: str = "0.5", price: str | None = "42000", *, side: Side = Side.BUY,
          **kw: Any) -> SubmitOrder:
    return SubmitOrder(id=derive_id("cmd", coid), ts_event=1, ts_init=1, correlation_id=f"corr-{coid}",
                       strategy_id="sma", instrument_id=kit.instrument, client_order_id=coid, side=side,
                       order_type=OrderType.LIMIT if price else OrderType.MARKET, quantity=Decimal(qty),
                       limit_price=Decimal(price) if price else None, **kw)


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.05)


def of(events: list[OrderEvent], kind: type[OrderEvent], coid: str) -> list[Any]:
    return [e for e in events if isinstance(e, kind) and e.client_order_id == coid]


# --- the adapter against each fake -------------------------------------------------------------------------


async def test_start_up_loads_only_the_spot_products_and_declares_post_only_and_gtd(
    kit: Kit, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, _host = venue
    assert v.markets_loaded
    paths = set(kit.fake.paths())
    if kit.exchange_id == "coinbase":  # no Coinbase App (v2) call; futures products asked by ccxt, none served
        assert paths <= {"/api/v3/brokerage/time", "/api/v3/brokerage/market/products",
                         "/api/v3/brokerage/transaction_summary", "/api/v3/brokerage/orders/historical/batch",
                         "/api/v3/brokerage/orders/historical/fills"}, paths
        assert not any(p.startswith("/v2/") for p in paths)
        assert {"fok", "ioc"} <= v.capabilities
    else:  # AssetPairs and Time only: no Assets call
        assert {"/0/public/AssetPairs", "/0/public/Time"} <= paths and "/0/public/Assets" not in paths
        assert "fok" not in v.capabilities and "ioc" in v.capabilities
    assert {"market", "limit", "gtc", "gtd", "post_only", "partial_fills"} <= v.capabilities
    assert not v.websocket  # these two venues are polled (no private websocket faked)
    spec = v.instrument_specs()[0]
    assert spec.id == kit.instrument and spec.quantity_step == Decimal("0.00000001")


async def test_an_order_lives_through_partial_fills_and_a_cancel_with_the_venue_trade_ids(
    kit: Kit, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, host = venue
    accepted = await v.submit(order(kit, "tw-life-1"), 1)
    assert [type(e) for e in accepted] == [OrderAccepted]
    t1 = kit.fake.fill("tw-life-1", "0.2")
    t2 = kit.fake.fill("tw-life-1", "0.1")
    await until(lambda: len(of(host.events, OrderFilled, "tw-life-1")) == 2)
    cancel = CancelOrder(id=derive_id("cancel"), ts_event=2, ts_init=2, strategy_id="sma",
                         instrument_id=kit.instrument, client_order_id="tw-life-1", reason="signal gone")
    closed = await v.cancel(cancel, 3)
    await asyncio.sleep(0.3)  # the poll's late copies must not add anything
    fills = of(host.events + closed, OrderFilled, "tw-life-1")
    assert [(f.trade_id, f.last_qty, f.partial, f.leaves_qty) for f in fills] == [
        (kit.trade_id(t1), Decimal("0.2"), True, Decimal("0.3")),
        (kit.trade_id(t2), Decimal("0.1"), True, Decimal("0.2"))]
    assert fills[0].liquidity.value == "MAKER" and fills[0].fee > 0 and fills[0].fee_currency == "USD"
    assert [type(e) for e in closed] == [OrderCanceled] and closed[0].filled_qty == Decimal("0.3")
    assert kit.status("tw-life-1") in ("cancelled", "canceled") and v.open_orders() == []
    assert accepted[0].venue_order_id == str(getattr(kit.fake.order_by_client_id("tw-life-1"), "order_id", None)
                                             or kit.fake.order_by_client_id("tw-life-1").txid)


async def test_a_market_buy_is_sized_in_the_base_currency_and_filled(
    kit: Kit, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, host = venue
    events = await v.submit(order(kit, "tw-mkt-1", "0.1", None), 1)
    await until(lambda: bool(of(host.events + events, OrderFilled, "tw-mkt-1")))
    fill = of(host.events + events, OrderFilled, "tw-mkt-1")[0]
    assert (fill.last_qty, fill.last_px, fill.partial) == (Decimal("0.1"), Decimal(43000), False)
    body = kit.creates()[0]
    if kit.exchange_id == "coinbase":  # ccxt would send quote_size; the adapter asks for base_size
        assert body.body["order_configuration"] == {"market_market_ioc": {"base_size": "0.1"}}
    else:
        assert (body.params["ordertype"], body.params["volume"]) == ("market", "0.1")


async def test_insufficient_funds_is_rejected_with_the_venue_own_error(
    kit: Kit, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, _host = venue
    events = await v.submit(order(kit, "tw-poor-1", "100"), 1)
    assert [type(e) for e in events] == [OrderRejected]
    assert ("INSUFFICIENT_FUND" if kit.exchange_id == "coinbase" else "EOrder:Insufficient funds") in \
        events[0].reason
    assert kit.fake.orders == {}


async def test_a_post_only_order_that_would_cross_is_rejected_with_the_venue_own_error(
    kit: Kit, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, _host = venue
    resting = await v.submit(order(kit, "tw-po-1", price="42000", post_only=True), 1)
    crossing = await v.submit(order(kit, "tw-po-2", price="43500", post_only=True), 1)
    assert [type(e) for e in resting] == [OrderAccepted]
    assert [type(e) for e in crossing] == [OrderRejected]
    reason = crossing[0].reason
    assert ("INVALID_LIMIT_PRICE_POST_ONLY" if kit.exchange_id == "coinbase" else "EOrder:Post only order") in reason
    sent = kit.creates()[0]
    if kit.exchange_id == "coinbase":
        assert sent.body["order_configuration"]["limit_limit_gtc"]["post_only"] is True
    else:
        assert "post" in sent.params["oflags"].split(",")
    assert len(kit.fake.orders) == 1


async def test_a_gtd_order_carries_its_expiry_and_expires_at_the_venue(
    kit: Kit, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, host = venue
    expire_s = int(time.time()) + 2
    events = await v.submit(order(kit, "tw-gtd-1", time_in_force=TimeInForce.GTD,
                                  expire_time_ns=expire_s * 1_000_000_000), 1)
    assert [type(e) for e in events] == [OrderAccepted]
    sent = kit.creates()[0]
    if kit.exchange_id == "coinbase":
        gtd = sent.body["order_configuration"]["limit_limit_gtd"]
        assert gtd["end_time"] == time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(expire_s))
    else:
        assert (sent.params["timeinforce"], sent.params["expiretm"]) == ("GTD", str(expire_s))
    await until(lambda: bool(of(host.events, OrderExpired, "tw-gtd-1")))
    assert v.open_orders() == [] and kit.status("tw-gtd-1") == "expired"


async def test_a_time_in_force_the_venue_lacks_is_rejected_before_anything_is_sent(
    kit: Kit, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, _host = venue
    unsupported = TimeInForce.DAY if kit.exchange_id == "coinbase" else TimeInForce.FOK
    events = await v.submit(order(kit, "tw-tif-1", time_in_force=unsupported), 1)
    assert [type(e) for e in events] == [OrderRejected] and "time in force" in events[0].reason
    assert kit.creates() == []


@pytest.mark.parametrize("fault", ["drop", "503"])
async def test_a_create_answer_lost_after_the_venue_took_the_order_is_resolved_without_a_duplicate(
    kit: Kit, venue: tuple[CcxtVenue, CollectingHost], fault: str,
) -> None:
    v, host = venue
    coid = client_order_id("sma", f"signal-{fault}")  # Tradewire's own format: "tw-" + 24 hex digits
    kit.inject_create(fault)
    events = await v.submit(order(kit, coid), 1)
    await until(lambda: bool(of(host.events + events, OrderAccepted, coid)))
    assert len(kit.creates()) == 1 and len(kit.fake.orders) == 1  # looked up, never sent twice
    assert v.open_orders() == [coid]
    if kit.exchange_id == "kraken":  # 27 characters is no cl_ord_id format Kraken takes: sent as a short UUID
        sent = kit.creates()[0].params["cl_ord_id"]
        assert len(sent) == 32 and int(sent, 16) >= 0 and kit.fake.order_by_client_id(sent).status == "open"
    else:
        assert kit.creates()[0].body["client_order_id"] == coid


async def test_a_create_that_times_out_is_resolved_by_query_not_sent_again(kit: Kit) -> None:
    v = kit.adapter(timeout_ms=400, grace_s=4.0)
    host = CollectingHost()
    v.attach(host)
    await v.start()
    try:
        kit.inject_create("latency", delay_s=1.0)  # the venue processes it, the client gives up first
        events = await v.submit(order(kit, "tw-slow-1"), 1)
        assert events == []  # in flight
        await until(lambda: bool(of(host.events, OrderAccepted, "tw-slow-1")))
    finally:
        await v.close()
    assert len(kit.creates()) == 1 and len(kit.fake.orders) == 1
    if kit.exchange_id == "kraken":  # the matching engine refuses it once the grace is over
        deadline = datetime.fromisoformat(kit.creates()[0].params["deadline"].replace("Z", "+00:00"))
        assert 3.0 <= deadline.timestamp() - time.time() + 1.5 <= 6.0


async def test_a_create_past_its_deadline_never_appears_and_is_rejected_after_the_grace(kit: Kit) -> None:
    if kit.exchange_id == "coinbase":
        pytest.skip("Coinbase has no per-request deadline; its JWT lives 120 s")
    v = kit.adapter(timeout_ms=400, grace_s=2.0)
    host = CollectingHost()
    v.attach(host)
    await v.start()
    try:
        kit.fake.nonce_window = 10_000_000  # so that only the deadline can refuse the late create
        kit.inject_create("queued", delay_s=2.5)  # queued at the venue beyond the deadline
        assert await v.submit(order(kit, "tw-late-1"), 1) == []
        await until(lambda: bool(of(host.events, OrderRejected, "tw-late-1")))
        await until(lambda: "EOrder:Deadline elapsed" in kit.fake.errors)  # processed late: refused
    finally:
        await v.close()
    assert kit.fake.orders == {} and len(kit.creates()) == 1


async def test_a_rate_limited_create_is_not_processed_and_sent_again(
    kit: Kit, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, _host = venue
    kit.inject_create("429")  # Coinbase: HTTP 429 rate_limit_exceeded; Kraken: EGeneral:Too many requests
    events = await v.submit(order(kit, "tw-429-1"), 1)
    assert [type(e) for e in events] == [OrderAccepted]
    assert len(kit.creates()) == 2 and len(kit.fake.orders) == 1
    assert v.limiter.penalties == 1


async def test_bad_credentials_are_a_definitive_refusal_that_shows_no_secret(
    kit: Kit, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    v, _host = venue
    if kit.exchange_id == "coinbase":
        wrong_secret, _ = coinbase_fake.new_key_pair()  # a key the venue does not know: the JWT does not verify
        expected = "invalid JWT signature"
    else:
        wrong_secret = kraken_fake.SECRET[:-8] + "AAAAAAA="
        expected = "EAPI:Invalid signature"
    v.exchange.secret = wrong_secret  # the key was rotated at the venue
    v.credentials = Credentials(kit.credentials.api_key, wrong_secret)
    events = await v.submit(order(kit, "tw-auth-1"), 1)
    assert [type(e) for e in events] == [OrderRejected]
    reason = events[0].reason
    assert expected in reason and wrong_secret not in reason and "PRIVATE KEY" not in reason
    assert kit.fake.orders == {}


async def test_coinbase_refuses_to_start_with_a_key_it_does_not_know() -> None:
    _pem, public_key = coinbase_fake.new_key_pair()
    fake = await FakeCoinbase(public_key).start()
    other_pem, _ = coinbase_fake.new_key_pair()
    kit = Kit("COINBASE", "coinbase", "/api/v3/brokerage/orders", fake, Credentials(coinbase_fake.API_KEY, other_pem))
    v = kit.adapter()
    try:
        with pytest.raises(VenueRefused, match=r"AuthenticationError.*invalid JWT signature"):
            await v.start()  # transaction_summary, read while loading the markets, is signed
    finally:
        await v.close()
        await fake.stop()
    assert not v.markets_loaded


async def test_kraken_invalid_nonce_is_not_processed_and_the_create_is_sent_again() -> None:
    fake = await FakeKraken().start()
    kit = Kit("KRAKEN", "kraken", "/0/private/AddOrder", fake, Credentials(kraken_fake.API_KEY, kraken_fake.SECRET))
    v = kit.adapter()
    await v.start()
    try:
        fake.inject("/0/private/AddOrder", "nonce")  # EAPI:Invalid nonce: another client used a higher one
        events = await v.submit(order(kit, "tw-nonce-1"), 1)
    finally:
        await v.close()
        await fake.stop()
    assert [type(e) for e in events] == [OrderAccepted]
    assert len(kit.creates()) == 2 and len(fake.orders) == 1
    nonces = [int(r.params["nonce"]) for r in fake.requests if r.path.startswith("/0/private/")]
    assert nonces == sorted(set(nonces))  # strictly increasing


async def test_kraken_stop_orders_carry_kraken_trigger_parameters(
    kit: Kit, venue: tuple[CcxtVenue, CollectingHost],
) -> None:
    if kit.exchange_id == "coinbase":
        pytest.skip("Kraken's ccxt ignores triggerPrice on spot")
    v, _host = venue
    stop = SubmitOrder(id=derive_id("stop"), ts_event=1, ts_init=1, strategy_id="sma", instrument_id=kit.instrument,
                       client_order_id="tw-stop-1", side=Side.SELL, order_type=OrderType.STOP_LIMIT,
                       quantity=Decimal("0.1"), limit_price=Decimal("40000"), trigger_price=Decimal("40500"))
    kit.fake.balances["XXBT"] = Decimal(1)
    await v.submit(stop, 1)
    sent = kit.creates()[0].params
    assert (sent["ordertype"], sent["price"], sent["price2"]) == ("stop-loss-limit", "40500", "40000")


async def test_coinbase_refuses_jwts_when_its_clock_is_beyond_the_two_minute_token_life() -> None:
    fake = await FakeCoinbase.with_new_key().start()
    fake.clock_offset_ms = 5 * 60_000  # the venue is five minutes ahead: every token is already expired
    kit = Kit("COINBASE", "coinbase", "/api/v3/brokerage/orders", fake, Credentials(coinbase_fake.API_KEY,
                                                                                     fake.private_pem))
    v = kit.adapter()
    try:
        with pytest.raises(VenueRefused, match="JWT expired or not yet valid"):
            await v.start()  # ccxt signs with the local clock (no time difference applied): not fixable by resync
    finally:
        await v.close()
        await fake.stop()
    assert "/api/v3/brokerage/time" in fake.paths()  # it did read the venue's time


async def test_kraken_calls_go_one_at_a_time_so_their_nonces_arrive_in_order() -> None:
    fake = await FakeKraken().start()
    kit = Kit("KRAKEN", "kraken", "/0/private/AddOrder", fake, Credentials(kraken_fake.API_KEY, kraken_fake.SECRET))
    v = kit.adapter()
    await v.start()
    try:
        fake.inject("/0/private/BalanceEx", "queued", delay_s=0.3)  # a poll held up in front of the create
        results = await asyncio.gather(v.venue_balances(), v.submit(order(kit, "tw-seq-1"), 1),
                                       v.venue_open_orders(), v.venue_balances())
    finally:
        await v.close()
        await fake.stop()
    assert [type(e) for e in results[1]] == [OrderAccepted]
    assert "EAPI:Invalid nonce" not in fake.errors and len(kit.creates()) == 1
