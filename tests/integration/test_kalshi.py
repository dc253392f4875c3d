"""The Kalshi adapter (kalshi-python-sync 3.2.0, unmodified) against the fake Kalshi on 127.0.0.1: RSA-PSS signed
requests, limit orders on YES and NO with the client order id, partial fills from Kalshi's single book, cancel,
Kalshi's own refusals, in-flight resolution by client order id, a duplicate id, 429, GTD expiry, settlement, and
one order through the execution service to the ledger on a real broker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.fakes.kalshi_fake import KalshiFake, kalshi_fake, new_key_pair
from tests.support.venue_tests import Sleeps, eventually, submit
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    CancelOrder,
    Liquidity,
    MarketResolved,
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
from tradewire_execution.live.base import CollectingHost
from tradewire_execution.live.credentials import Credentials
from tradewire_execution.live.guard import LiveTradingRefused, is_loopback_url
from tradewire_execution.live.ratelimit import TokenBucket
from tradewire_execution.venues.kalshi_adapter import DEMO_URL, KalshiAdapter

pytestmark = pytest.mark.timeout(60)

VENUE = "KALSHI"
KEY_ID = "a952bcbe-ec3e-4b5c-b9c8-0123456789ab"
PRIVATE, PUBLIC = new_key_pair()
TICKER = "KXTWTEST-26DEC31-B50"


@pytest.fixture(params=["sdk-3.2.0", "current"])
def fake(request: pytest.FixtureRequest) -> Iterator[KalshiFake]:
    with kalshi_fake(wire=request.param) as venue:
        venue.register_key(KEY_ID, PUBLIC)
        venue.add_market(TICKER, title="Will the test index close above 50 on Dec 31?")
        yield venue


def make_adapter(fake: KalshiFake, *, private: str = PRIVATE, **kw: Any) -> KalshiAdapter:
    kw.setdefault("limiter", TokenBucket(0))
    adapter = KalshiAdapter(VENUE, credentials=Credentials(api_key=KEY_ID, secret=private), symbols=[TICKER],
                            url_override=fake.server.url, poll_interval_s=0.05, **kw)
    assert is_loopback_url(adapter.base_url) and adapter.base_url.endswith("/trade-api/v2")
    return adapter


@pytest.fixture
async def started(fake: KalshiFake) -> AsyncIterator[tuple[KalshiAdapter, CollectingHost]]:
    adapter = make_adapter(fake)
    host = CollectingHost()
    adapter.attach(host)
    await adapter.start()
    yield adapter, host
    await adapter.close()


def order(n: int, outcome: str = "YES", side: Side = Side.BUY, qty: str = "10", limit: str = "0.45",
          tif: TimeInForce = TimeInForce.GTC, **kw: Any) -> SubmitOrder:
    return SubmitOrder(
        id=derive_id("kalshi-test", n), ts_event=1_700_000_000_000_000_000 + n, ts_init=1, correlation_id=f"sig-{n}",
        strategy_id="pm", instrument_id=f"{TICKER}-{outcome}.{VENUE}", client_order_id=f"tw-kal-{n:04d}", side=side,
        order_type=OrderType.LIMIT, quantity=Decimal(qty), limit_price=Decimal(limit), time_in_force=tif, **kw)


def of(events: list[OrderEvent], kind: type[OrderEvent]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


async def cancel(adapter: KalshiAdapter, coid: str, reason: str = "") -> list[OrderEvent]:
    command = CancelOrder(id=derive_id("cancel", coid), ts_event=2, ts_init=2, strategy_id="pm",
                          instrument_id=f"{TICKER}-YES.{VENUE}", client_order_id=coid, reason=reason)
    async with adapter.host.lock:
        return await adapter.cancel(command, 3)


# --- orders and fills -----------------------------------------------------------------------------------------


async def test_a_resting_yes_bid_is_accepted_then_partially_filled_then_filled_from_the_no_side(
    fake: KalshiFake, started: tuple[KalshiAdapter, CollectingHost]
) -> None:
    adapter, host = started
    (accepted,) = await submit(adapter, order(1))
    (placed,) = fake.order_by_coid("tw-kal-0001")
    assert isinstance(accepted, OrderAccepted) and accepted.venue_order_id == placed.order_id
    (body,) = fake.creates()
    assert {k: body[k] for k in ("ticker", "side", "action", "count", "yes_price_dollars", "time_in_force",
                                 "client_order_id")} == {
        "ticker": TICKER, "side": "yes", "action": "buy", "count": 10, "yes_price_dollars": "0.4500",
        "time_in_force": "good_till_canceled", "client_order_id": "tw-kal-0001"}
    await asyncio.to_thread(fake.counterparty, TICKER, "no", "buy", "0.55", "4")  # a NO bid at 0.55 = YES ask 0.45
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    await asyncio.to_thread(fake.counterparty, TICKER, "no", "buy", "0.56", "6")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 2)
    await adapter.poll_once()

    fills = of(host.events, OrderFilled)
    assert [(f.last_qty, f.last_px, f.partial, f.leaves_qty, f.liquidity) for f in fills] == [
        (Decimal("4.00"), Decimal("0.4500"), True, Decimal("6.00"), Liquidity.MAKER),
        (Decimal("6.00"), Decimal("0.4500"), False, Decimal("0.00"), Liquidity.MAKER)]
    assert all(f.instrument_id == f"{TICKER}-YES.{VENUE}" and f.side is Side.BUY and f.fee == 0 for f in fills)
    assert len({f.trade_id for f in fills}) == 2
    assert adapter.open_orders() == []


async def test_buying_no_is_side_no_action_buy_and_fills_at_the_no_price_with_the_taker_fee(
    fake: KalshiFake, started: tuple[KalshiAdapter, CollectingHost]
) -> None:
    adapter, host = started
    await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.40", "5")  # YES bid 0.40 = NO ask 0.60
    events = await submit(adapter, order(2, "NO", qty="5", limit="0.62"))
    await eventually(lambda: len(of(host.events, OrderFilled)) + len(of(events, OrderFilled)) == 1)
    (body,) = fake.creates()
    assert (body["side"], body["action"], body["no_price_dollars"]) == ("no", "buy", "0.6200")
    assert "yes_price_dollars" not in body
    (fill,) = of(host.events, OrderFilled) + of(events, OrderFilled)
    assert fill.instrument_id == f"{TICKER}-NO.{VENUE}" and fill.side is Side.BUY
    assert (fill.last_qty, fill.last_px, fill.liquidity) == (Decimal("5.00"), Decimal("0.6000"), Liquidity.TAKER)
    assert fill.fee == Decimal("0.0900")  # ceil(0.07 * 5 * 0.40 * 0.60) to the cent
    assert await adapter.venue_balances() == {TICKER: Decimal("-5.00"), "USD": Decimal("996.91")}  # -: NO


async def test_selling_yes_is_side_yes_action_sell_and_its_fill_maps_back_to_the_yes_instrument(
    fake: KalshiFake, started: tuple[KalshiAdapter, CollectingHost]
) -> None:
    adapter, host = started
    await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.58", "3")
    events = await submit(adapter, order(3, "YES", Side.SELL, qty="3", limit="0.55", tif=TimeInForce.IOC))
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled]  # filled on arrival: the create's answer
    (body,) = fake.creates()
    assert (body["side"], body["action"], body["yes_price_dollars"], body["time_in_force"]) == (
        "yes", "sell", "0.5500", "immediate_or_cancel")
    (fill,) = of(events, OrderFilled) + of(host.events, OrderFilled)
    assert (fill.instrument_id, fill.side, fill.last_px) == (f"{TICKER}-YES.{VENUE}", Side.SELL, Decimal("0.5800"))
    assert (await adapter.venue_balances())[TICKER] == Decimal("-3.00")  # Kalshi nets: short YES = long NO


async def test_cancel_after_a_partial_fill_reports_the_filled_quantity(
    fake: KalshiFake, started: tuple[KalshiAdapter, CollectingHost]
) -> None:
    adapter, host = started
    await submit(adapter, order(4))
    await asyncio.to_thread(fake.counterparty, TICKER, "no", "buy", "0.55", "3")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    events = await cancel(adapter, "tw-kal-0004", "strategy exit")
    (canceled,) = of(events, OrderCanceled)
    assert canceled.filled_qty == Decimal("3.00") and canceled.reason == "strategy exit"
    assert fake.order_by_coid("tw-kal-0004")[0].status == "canceled"
    assert fake.book(TICKER) == ({}, {})
    assert await cancel(adapter, "tw-kal-0004") == []


async def test_an_ioc_remainder_is_cancelled_and_a_gtd_order_expires_at_its_time(
    fake: KalshiFake, started: tuple[KalshiAdapter, CollectingHost]
) -> None:
    adapter, host = started
    (accepted, canceled) = await submit(adapter, order(5, tif=TimeInForce.IOC))
    assert isinstance(accepted, OrderAccepted) and isinstance(canceled, OrderCanceled)
    assert "IOC remainder" in canceled.reason
    expiry = time.time_ns() + 1_500_000_000
    (gtd,) = await submit(adapter, order(6, tif=TimeInForce.GTD, expire_time_ns=expiry))
    assert isinstance(gtd, OrderAccepted)
    assert fake.creates()[-1]["expiration_ts"] == expiry // 1_000_000_000
    await eventually(lambda: len(of(host.events, OrderExpired)) == 1)
    assert of(host.events, OrderExpired)[0].client_order_id == "tw-kal-0006"


async def test_post_only_that_would_cross_and_kalshis_refusals_are_rejections_with_kalshis_codes(
    fake: KalshiFake, started: tuple[KalshiAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    await asyncio.to_thread(fake.counterparty, TICKER, "no", "buy", "0.55", "1")
    (crossing,) = await submit(adapter, order(7, post_only=True))
    (sub_cent,) = await submit(adapter, order(8, limit="0.455"))
    (too_big,) = await submit(adapter, order(9, qty="100000", limit="0.30"))
    assert isinstance(crossing, OrderRejected) and "post_only_cross" in crossing.reason
    assert isinstance(sub_cent, OrderRejected) and "Kalshi 400 invalid_price: invalid price" in sub_cent.reason
    assert isinstance(too_big, OrderRejected) and "insufficient_balance" in too_big.reason
    (market,) = await submit(adapter, msgspec.structs.replace(order(10), order_type=OrderType.MARKET,
                                                              limit_price=None))
    (fraction,) = await submit(adapter, order(11, qty="1.5"))
    assert isinstance(market, OrderRejected) and isinstance(fraction, OrderRejected)
    assert "whole contracts" in fraction.reason
    assert len(fake.creates()) == 3  # the last two never left


async def test_a_closed_market_and_a_paused_exchange_are_refused_with_kalshis_codes(
    fake: KalshiFake, started: tuple[KalshiAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    fake.fault("POST", "/portfolio/orders", "reject", status=409, code="trading_is_paused")
    (paused,) = await submit(adapter, order(12))
    fake.markets[TICKER]["status"] = "closed"
    (closed,) = await submit(adapter, order(13))
    assert isinstance(paused, OrderRejected) and "Kalshi 409 trading_is_paused" in paused.reason
    assert isinstance(closed, OrderRejected) and "Kalshi 409 market_closed: market closed" in closed.reason
    assert fake.orders == {}


# --- faults ----------------------------------------------------------------------------------------------------


async def test_a_slow_answer_within_the_timeout_is_an_ordinary_acceptance(fake: KalshiFake) -> None:
    adapter = make_adapter(fake, request_timeout_s=3.0)
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        fake.fault("POST", "/portfolio/orders", "latency", delay_s=0.4)
        began = time.monotonic()
        events = await submit(adapter, order(24))
        took = time.monotonic() - began
    finally:
        await adapter.close()
    assert [type(e) for e in events] == [OrderAccepted] and took >= 0.4
    assert not [p for m, p, _q in fake.requests if m == "GET" and p.endswith("/portfolio/orders")]  # no lookup


async def test_a_lost_create_answer_is_resolved_by_client_order_id_without_a_duplicate(fake: KalshiFake) -> None:
    adapter = make_adapter(fake, request_timeout_s=0.5)
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        for n in range(4):  # a few older orders, so that finding ours takes pages
            await submit(adapter, order(30 + n, limit="0.10"))
        fake.fault("POST", "/portfolio/orders", "timeout")  # carried out at Kalshi, never answered
        events = await submit(adapter, order(20))
    finally:
        await adapter.close()
    (placed,) = fake.order_by_coid("tw-kal-0020")
    assert [type(e) for e in events] == [OrderAccepted] and events[0].venue_order_id == placed.order_id
    assert len(fake.creates()) == 5  # never a blind retry
    paged = [q for m, p, q in fake.requests if m == "GET" and p.endswith("/portfolio/orders") and q.get("cursor")]
    assert paged  # found by listing the market's orders, page after page


async def test_a_client_order_id_kalshi_already_has_resolves_to_that_order(
    fake: KalshiFake, started: tuple[KalshiAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    (first,) = await submit(adapter, order(21))
    forgetful = make_adapter(fake)  # e.g. its saved state was lost
    forgetful.attach(CollectingHost())
    try:
        (again,) = await submit(forgetful, order(21))
    finally:
        await forgetful.close()
    assert isinstance(again, OrderAccepted) and again.venue_order_id == first.venue_order_id  # type: ignore
    assert len(fake.order_by_coid("tw-kal-0021")) == 1 and len(fake.creates()) == 2


async def test_429_waits_its_retry_after_and_a_5xx_leaves_the_order_in_flight(fake: KalshiFake) -> None:
    sleeps = Sleeps()
    clock = [time.time_ns()]
    adapter = make_adapter(fake, limiter=TokenBucket(0, sleep=sleeps), wall_ns=lambda: clock[0])
    host = CollectingHost()
    adapter.attach(host)
    await adapter.start()
    try:
        fake.fault("POST", "/portfolio/orders", "429", retry_after="1")
        assert [type(e) for e in await submit(adapter, order(22))] == [OrderAccepted]
        assert sleeps.waits and 0.9 < sleeps.waits[0] <= 1.0
        fake.fault("POST", "/portfolio/orders", "5xx", status=502)  # not processed
        assert await submit(adapter, order(23)) == []
        assert adapter.tracked("tw-kal-0023").status == "in_flight"  # type: ignore[union-attr]
        clock[0] += 16_000_000_000
        await adapter.resolve_in_flight()
    finally:
        await adapter.close()
    (rejected,) = of(host.events, OrderRejected)
    assert "no order tw-kal-0023" in rejected.reason and fake.order_by_coid("tw-kal-0023") == []


async def test_a_wrong_key_or_a_skewed_clock_is_refused_by_kalshi_and_no_key_reaches_the_logs(
    fake: KalshiFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stranger, _ = new_key_pair()
    adapter = make_adapter(fake, private=stranger)
    adapter.attach(CollectingHost())
    try:
        (rejected,) = await submit(adapter, order(40))
        assert fake.auth_failures[-1] == "invalid signature"
        good = make_adapter(fake)
        good.attach(CollectingHost())
        fake.clock_skew_ms = 60_000
        (stale,) = await submit(good, order(41))
        await good.close()
    finally:
        await adapter.close()
    assert isinstance(rejected, OrderRejected) and "Kalshi 401 authentication_error" in rejected.reason
    assert isinstance(stale, OrderRejected) and "timestamp outside the allowed window" in stale.reason
    assert fake.orders == {}
    body = PRIVATE.splitlines()[1]
    assert body not in caplog.text and stranger.splitlines()[1] not in caplog.text
    assert PRIVATE not in repr(adapter.credentials)


async def test_reconciliation_compares_the_ledgers_yes_minus_no_with_kalshis_netted_position(
    fake: KalshiFake, started: tuple[KalshiAdapter, CollectingHost]
) -> None:
    from tradewire_execution.live.reconcile import LedgerFill, LedgerOrder, Reconciler

    adapter, _host = started
    await asyncio.to_thread(fake.counterparty, TICKER, "no", "buy", "0.60", "5")
    await submit(adapter, order(80, "YES", qty="5", limit="0.40"))  # YES 5
    await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.45", "3")
    await submit(adapter, order(81, "NO", qty="3", limit="0.55"))  # NO 3: Kalshi nets it to YES 2
    assert fake.positions[TICKER].yes == 2

    class Ledger:
        def __init__(self, yes: str, no: str) -> None:
            self.held = {f"{TICKER}-YES.{VENUE}": Decimal(yes), f"{TICKER}-NO.{VENUE}": Decimal(no)}

        async def orders(self) -> list[LedgerOrder]:
            return []

        async def fills(self) -> list[LedgerFill]:
            return [LedgerFill(client_order_id=c, trade_id=t) for c in ("tw-kal-0080", "tw-kal-0081")
                    for t in adapter.tracked(c).trade_ids]  # type: ignore[union-attr]

        async def positions(self) -> dict[str, Decimal]:
            return self.held

    agrees = await Reconciler(adapter, ledger=Ledger("5", "3"), position_keys=adapter.position_keys(),
                              confirm_delay_s=0).run()
    assert agrees.mismatches == []
    differs = await Reconciler(adapter, ledger=Ledger("5", "0"), position_keys=adapter.position_keys(),
                               confirm_delay_s=0).run()
    assert differs.mismatches == [f"{TICKER}: the venue holds 2.00, the ledger 5"]


# --- settlement ----------------------------------------------------------------------------------------------


async def test_a_settled_market_with_a_position_becomes_market_resolved(
    fake: KalshiFake, started: tuple[KalshiAdapter, CollectingHost]
) -> None:
    adapter, host = started
    await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.30", "4")
    assert OrderFilled in [type(e) for e in await submit(adapter, order(50, "NO", qty="4", limit="0.70"))]
    await asyncio.to_thread(fake.settle, TICKER, "no")
    await eventually(lambda: len(adapter.resolutions) == 1)
    (resolved,) = adapter.resolutions
    assert (resolved.market_id, resolved.resolution, resolved.venue) == (TICKER, "NO", VENUE)
    assert {p.instrument_id: p.payout for p in resolved.payouts} == {
        f"{TICKER}-YES.{VENUE}": Decimal(0), f"{TICKER}-NO.{VENUE}": Decimal(1)}
    assert host.resolutions == [resolved]  # handed to the host, which publishes it on pm.resolved.<venue>
    await adapter.poll_once()
    assert len(adapter.resolutions) == 1  # once
    restarted = make_adapter(fake)
    restarted.attach(CollectingHost())
    try:
        assert await restarted.check_settlements() == [resolved]  # after a restart: the very same message
    finally:
        await restarted.close()
    assert (await adapter.venue_balances())["USD"] == Decimal("1001.14")  # 1000 - 4 * 0.70 - 0.06 fee + 4


# --- configuration -----------------------------------------------------------------------------------------


def test_sandbox_is_kalshis_demo_and_live_cannot_be_built_under_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    from tradewire_common.config import VenueConfig, config_from_dict
    from tradewire_execution.venues import build_adapter

    with pytest.raises(LiveTradingRefused):
        build_adapter(VenueConfig(name=VENUE, adapter="kalshi", mode="live", symbols=(TICKER,)), config_from_dict({}))
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_KEY", KEY_ID)
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_SECRET", PRIVATE.replace("\n", "\\n"))
    adapter = build_adapter(VenueConfig(name=VENUE, adapter="kalshi", mode="sandbox", symbols=(f"{TICKER}-YES",)),
                            config_from_dict({}))
    assert isinstance(adapter, KalshiAdapter) and adapter.base_url == DEMO_URL == \
        "https://demo-api.kalshi.co/trade-api/v2"
    assert adapter.credentials.secret == PRIVATE and adapter.tickers == {TICKER}
    assert adapter.position_keys() == {f"{TICKER}-YES.{VENUE}": TICKER, f"{TICKER}-NO.{VENUE}": f"-{TICKER}"}
    closing = adapter.create_request(order(70, "NO", Side.SELL, limit="0.35", reduce_only=True, post_only=True))
    assert closing.to_dict() == {"ticker": TICKER, "client_order_id": "tw-kal-0070", "side": "no", "action": "sell",
                                 "count": 10, "type": "limit", "no_price_dollars": "0.3500",
                                 "time_in_force": "good_till_canceled", "post_only": True, "reduce_only": True}
    with pytest.raises(LiveTradingRefused):  # a test can never call a real endpoint
        adapter._client()


# --- over a real broker: execution + ledger -------------------------------------------------------------------


@pytest.mark.parametrize("fake", ["current"], indirect=True)
async def test_a_no_fill_reaches_the_ledger_once_and_the_settlement_is_announced_through_execution(
    fake: KalshiFake, fresh_nats: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.support.inproc import InProcessStack
    from tradewire_common import subjects
    from tradewire_common.bus import NatsBus
    from tradewire_common.config import config_from_dict

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_KEY", KEY_ID)
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_SECRET", PRIVATE)
    config = config_from_dict({
        "execution": {"venues": [{"name": VENUE, "adapter": "kalshi", "mode": "sandbox", "symbols": [TICKER],
                                  "url_override": fake.server.url, "poll_interval_s": 0.1,
                                  "reconcile_interval_s": 0}]},
        "ledger": {"path": str(tmp_path / "ledger.db")},
    })
    stack = InProcessStack(config, fresh_nats.url)
    probe = NatsBus("probe", fresh_nats.url, auth=None)
    await probe.connect()
    resolutions: list[MarketResolved] = []

    async def on_resolution(envelope: Any) -> None:
        if isinstance(envelope.message, MarketResolved):
            resolutions.append(envelope.message)

    await probe.subscribe(subjects.ALL_RESOLUTIONS, on_resolution)
    await stack.start(("ledger", "execution"))
    try:
        entry = order(60, "NO", qty="6", limit="0.65")
        await probe.publish(subjects.order_command(VENUE), entry)
        await eventually(lambda: bool(fake.order_by_coid("tw-kal-0060")))
        await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.36", "2")  # crosses our NO bid
        await probe.publish(subjects.order_command(VENUE), entry)  # risk's command is redelivered
        await asyncio.to_thread(fake.counterparty, TICKER, "yes", "buy", "0.35", "4")

        async def ledger_fills() -> list[dict[str, Any]]:
            rows = (await stack.get("ledger", "/v1/fills?limit=100")).json()
            return [r for r in rows if r["client_order_id"] == "tw-kal-0060"]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while len(await ledger_fills()) < 2:
            assert loop.time() < deadline, "the fills did not reach the ledger"
            await asyncio.sleep(0.05)
        await stack.restart_service("execution")  # resolves and polls the venue at start: nothing new
        await asyncio.sleep(0.3)
        fills = await ledger_fills()
        await asyncio.to_thread(fake.settle, TICKER, "no")  # the NO position is paid: execution announces it
        await eventually(lambda: bool(resolutions))

        async def settled() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = (await stack.get("ledger", "/v1/settlements")).json()
            return rows

        deadline = loop.time() + 20
        while not await settled():
            assert loop.time() < deadline, "the ledger did not settle the resolution"
            await asyncio.sleep(0.05)
        settlements = await settled()
    finally:
        await stack.close()
        await probe.close()
    assert sorted((Decimal(str(f["last_qty"])), Decimal(str(f["last_px"]))) for f in fills) == [
        (Decimal("2"), Decimal("0.65")), (Decimal("4"), Decimal("0.65"))]  # ours rested: the maker's price
    assert {f["instrument_id"] for f in fills} == {f"{TICKER}-NO.{VENUE}"}
    assert len(fake.creates()) == 1
    assert PRIVATE.splitlines()[1] not in caplog.text
    (resolved,) = resolutions
    assert (resolved.market_id, resolved.venue, resolved.resolution) == (TICKER, VENUE, "NO")
    assert {p.instrument_id: p.payout for p in resolved.payouts}[f"{TICKER}-NO.{VENUE}"] == Decimal(1)
    # the ledger settled the 6 NO contracts bought at 0.65 at 1 each
    (settlement,) = [r for r in settlements if r["instrument_id"] == f"{TICKER}-NO.{VENUE}"]
    assert Decimal(str(settlement["quantity"])) == 6 and Decimal(str(settlement["payout"])) == 1
