"""The Alpaca adapter (alpaca-py, unmodified) against the fake Alpaca on 127.0.0.1: order types, the client
order id, partial fills over the trade_updates stream, cancel and cancel/replace, in-flight resolution after a
timeout, rate limits, native brackets and OCO, and that no credential reaches a log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.alpaca_fake import KEY_ID, SECRET, AlpacaFake, alpaca_fake
from tests.support.venue_tests import Sleeps, eventually, stock_order, submit
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    CancelOrder,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderType,
    ReplaceOrder,
    Side,
    SubmitOrder,
    TimeInForce,
)
from tradewire_execution.live.base import CollectingHost
from tradewire_execution.live.credentials import Credentials
from tradewire_execution.live.guard import LiveTradingRefused, is_loopback_url
from tradewire_execution.live.ratelimit import TokenBucket
from tradewire_execution.venues.alpaca_adapter import AlpacaAdapter, exit_coid, exit_levels

pytestmark = pytest.mark.timeout(60)

VENUE = "ALPACA"


@pytest.fixture
def fake() -> Iterator[AlpacaFake]:
    with alpaca_fake() as venue:
        venue.last_trade["AAPL"] = Decimal("187.40")
        yield venue




def make_adapter(fake: AlpacaFake, *, secret: str = SECRET, limiter: TokenBucket | None = None,
                 **kw: Any) -> AlpacaAdapter:
    adapter = AlpacaAdapter(VENUE, credentials=Credentials(api_key=KEY_ID, secret=secret), symbols=["AAPL", "MSFT"],
                            url_override=fake.url, limiter=limiter or TokenBucket(0),
                            poll_interval_s=kw.pop("poll_interval_s", 0.05),
                            request_timeout_s=kw.pop("request_timeout_s", 5.0), **kw)
    assert all(is_loopback_url(u) for u in (adapter.trading_url, adapter.data_url, adapter.stream_url))
    return adapter


@pytest.fixture
async def started(fake: AlpacaFake) -> AsyncIterator[tuple[AlpacaAdapter, CollectingHost]]:
    adapter = make_adapter(fake)
    host = CollectingHost()
    adapter.attach(host)
    await adapter.start()
    await eventually(lambda: fake.trading_stream_clients() == 1)
    yield adapter, host
    await adapter.close()




def order(n: int, kind: OrderType = OrderType.LIMIT, **kw: Any) -> SubmitOrder:
    kw.setdefault("tif", TimeInForce.GTC)
    return stock_order(VENUE, "tw-alp", n, kind, ts_init=1_700_000_000_000_000_000 + n, **kw)




async def cancel(adapter: AlpacaAdapter, coid: str, reason: str = "") -> list[OrderEvent]:
    command = CancelOrder(id=derive_id("cancel", coid, reason), ts_event=2, ts_init=2, strategy_id="sma",
                          instrument_id=f"AAPL.{VENUE}", client_order_id=coid, reason=reason)
    async with adapter.host.lock:
        return await adapter.cancel(command, 3)


def of(events: list[OrderEvent], kind: type[OrderEvent], coid: str | None = None) -> list[Any]:
    return [e for e in events if isinstance(e, kind) and (coid is None or e.client_order_id == coid)]


# --- placing ------------------------------------------------------------------------------------------------


async def test_every_order_type_is_sent_with_the_client_order_id_and_accepted(
    fake: AlpacaFake, started: tuple[AlpacaAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    cases = [order(1, OrderType.MARKET, tif=TimeInForce.DAY), order(2, OrderType.LIMIT, tif=TimeInForce.IOC),
             order(3, OrderType.STOP_MARKET, trigger="190.00", side=Side.BUY, tif=TimeInForce.DAY),
             order(4, OrderType.STOP_LIMIT, trigger="190.00", limit="190.50", tif=TimeInForce.FOK)]
    answers = [await submit(adapter, o) for o in cases]

    for placed, events in zip(cases, answers, strict=True):
        (accepted,) = events
        assert isinstance(accepted, OrderAccepted)
        assert accepted.client_order_id == placed.client_order_id
        assert accepted.venue_order_id == fake.order(placed.client_order_id).id
    bodies = fake.orders_posted()
    assert [(b["client_order_id"], b["type"], b["time_in_force"]) for b in bodies] == [
        ("tw-alp-0001", "market", "day"), ("tw-alp-0002", "limit", "ioc"), ("tw-alp-0003", "stop", "day"),
        ("tw-alp-0004", "stop_limit", "fok")]
    assert bodies[1]["limit_price"] == 185.5 and bodies[2]["stop_price"] == 190.0
    assert (bodies[3]["stop_price"], bodies[3]["limit_price"]) == (190.0, 190.5)
    assert sorted(adapter.open_orders()) == ["tw-alp-0001", "tw-alp-0002", "tw-alp-0003", "tw-alp-0004"]


async def test_a_redelivered_submit_never_reaches_alpaca_twice(
    fake: AlpacaFake, started: tuple[AlpacaAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    first = await submit(adapter, order(5))
    again = await adapter.submit(order(5), 2)
    assert [type(e) for e in first] == [OrderAccepted]
    assert again == []
    assert len(fake.orders_posted()) == 1


async def test_the_venues_refusal_in_its_own_json_is_a_rejection_with_its_message(
    fake: AlpacaFake, started: tuple[AlpacaAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    (rejected,) = await submit(adapter, order(6, limit="185.505"))  # sub-penny
    assert isinstance(rejected, OrderRejected)
    assert "sub-penny increment" in rejected.reason and "422" in rejected.reason
    assert adapter.open_orders() == []


async def test_an_entry_with_a_time_or_trailing_stop_is_refused_before_anything_is_sent(
    fake: AlpacaFake, started: tuple[AlpacaAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    (timed,) = await submit(adapter, order(7, time_stop_s=600))
    (trailing,) = await submit(adapter, order(8, trailing_stop_pct=Decimal("0.02")))
    assert isinstance(timed, OrderRejected) and "trailing or time stop" in timed.reason
    assert isinstance(trailing, OrderRejected)
    assert fake.orders_posted() == []


# --- fills, cancels, expiry over the stream ------------------------------------------------------------------


async def test_partial_fills_arrive_once_each_even_when_the_stream_repeats_one(
    fake: AlpacaFake, started: tuple[AlpacaAdapter, CollectingHost]
) -> None:
    adapter, host = started
    await submit(adapter, order(10))
    await asyncio.to_thread(fake.fill, "tw-alp-0010", "4", "185.40")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    await asyncio.to_thread(fake.resend_last_update)  # a duplicate delivery
    await asyncio.to_thread(fake.fill, "tw-alp-0010", "6", "185.45")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 2)
    await asyncio.to_thread(fake.resend_last_update)
    await adapter.poll_once()

    fills = of(host.events, OrderFilled)
    assert len(fills) == 2
    assert [(f.last_qty, f.last_px, f.partial, f.leaves_qty) for f in fills] == [
        (Decimal("4"), Decimal("185.40"), True, Decimal("6")), (Decimal("6"), Decimal("185.45"), False, Decimal("0"))]
    venue_id = fake.order("tw-alp-0010").id
    assert [f.trade_id for f in fills] == [f"{venue_id}:4", f"{venue_id}:10"]
    assert all(f.venue_order_id == venue_id and f.fee == 0 and f.strategy_id == "sma" for f in fills)
    assert adapter.open_orders() == []


async def test_cancel_after_a_partial_fill_reports_the_filled_quantity(
    fake: AlpacaFake, started: tuple[AlpacaAdapter, CollectingHost]
) -> None:
    adapter, host = started
    await submit(adapter, order(11))
    await asyncio.to_thread(fake.fill, "tw-alp-0011", "3", "185.50")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    events = await cancel(adapter, "tw-alp-0011", "strategy exit")
    (canceled,) = of(events, OrderCanceled)
    assert canceled.filled_qty == Decimal("3") and canceled.reason == "strategy exit"
    assert fake.order("tw-alp-0011").status == "canceled"
    assert await cancel(adapter, "tw-alp-0011", "again") == []


async def test_a_replace_is_alpacas_native_amend_under_the_new_client_order_id(
    fake: AlpacaFake, started: tuple[AlpacaAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    await submit(adapter, order(13, limit="185.00"))
    command = ReplaceOrder(id=derive_id("r", 13), ts_event=2, ts_init=2, strategy_id="sma",
                           instrument_id=f"AAPL.{VENUE}", client_order_id="tw-alp-0013",
                           new_client_order_id="tw-alp-0014", limit_price=Decimal("185.25"))
    async with adapter.host.lock:
        events = await adapter.replace(command, 3)
    (replaced,) = events
    assert isinstance(replaced, OrderReplaced) and replaced.new_client_order_id == "tw-alp-0014"
    assert fake.order("tw-alp-0013").status == "replaced"
    assert fake.order("tw-alp-0014").limit_price == Decimal("185.25")
    assert replaced.venue_order_id == fake.order("tw-alp-0014").id
    assert [r[0] for r in fake.requests if r[1].startswith("/v2/orders/")].count("PATCH") == 1
    assert adapter.open_orders() == ["tw-alp-0014"]


async def test_day_order_expiry_and_venue_cancellation_come_from_the_stream(
    fake: AlpacaFake, started: tuple[AlpacaAdapter, CollectingHost]
) -> None:
    adapter, host = started
    await submit(adapter, order(15, tif=TimeInForce.DAY))
    await submit(adapter, order(16, tif=TimeInForce.DAY))
    await asyncio.to_thread(fake.expire, "tw-alp-0015")
    await asyncio.to_thread(fake.venue_cancel, "tw-alp-0016")
    await eventually(lambda: len(of(host.events, OrderExpired)) == 1 and len(of(host.events, OrderCanceled)) == 1)
    assert of(host.events, OrderExpired)[0].client_order_id == "tw-alp-0015"
    assert of(host.events, OrderCanceled)[0].client_order_id == "tw-alp-0016"
    assert adapter.open_orders() == []


# --- faults ---------------------------------------------------------------------------------------------------


async def test_a_create_whose_answer_is_lost_is_resolved_by_query_not_sent_again(fake: AlpacaFake) -> None:
    adapter = make_adapter(fake, request_timeout_s=0.5, websocket=False)
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        fake.fault("POST", "/v2/orders", "timeout")  # carried out at Alpaca, never answered
        events = await submit(adapter, order(20))
    finally:
        await adapter.close()
    assert [type(e) for e in events] == [OrderAccepted]
    assert of(events, OrderAccepted)[0].venue_order_id == fake.order("tw-alp-0020").id
    assert len(fake.orders_posted()) == 1  # never a blind retry
    assert any(p == "/v2/orders:by_client_order_id" for _m, p, _q, _b in fake.requests)


async def test_an_order_whose_create_and_first_query_fail_stays_in_flight_until_a_query_finds_it(
    fake: AlpacaFake,
) -> None:
    adapter = make_adapter(fake, request_timeout_s=0.5, websocket=False)
    host = CollectingHost()
    adapter.attach(host)
    await adapter.start()
    try:
        fake.fault("POST", "/v2/orders", "timeout")
        fake.fault("GET", "/v2/orders:by_client_order_id", "5xx", status=503)
        assert await submit(adapter, order(24)) == []  # only OrderSubmitted is published by the service
        assert adapter.tracked("tw-alp-0024").status == "in_flight"  # type: ignore[union-attr]
        assert adapter.open_orders() == ["tw-alp-0024"]
        await eventually(lambda: len(of(host.events, OrderAccepted)) == 1)  # the maintenance loop asks again
    finally:
        await adapter.close()
    assert len(fake.orders_posted()) == 1


async def test_a_504_on_create_is_not_retried_by_the_sdk_and_resolves_to_the_order(fake: AlpacaFake) -> None:
    adapter = make_adapter(fake, websocket=False)
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        fake.fault("POST", "/v2/orders", "5xx", status=504)
        assert await submit(adapter, order(21)) == []
        assert len(fake.orders_posted()) == 1
        assert adapter.tracked("tw-alp-0021").status == "in_flight"  # type: ignore[union-attr]
    finally:
        await adapter.close()


async def test_a_create_alpaca_already_has_is_resolved_as_that_order(fake: AlpacaFake) -> None:
    adapter = make_adapter(fake, websocket=False)
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        other = make_adapter(fake, websocket=False)  # the same id placed before a crash lost our state
        await other.connect()
        await other.venue_place(order(22))
        events = await submit(adapter, order(22))
    finally:
        await adapter.close()
    assert [type(e) for e in events] == [OrderAccepted]
    assert len(fake.orders_posted()) == 2 and len(fake.by_coid) == 1


async def test_429_waits_the_retry_after_then_sends_the_create_again(fake: AlpacaFake) -> None:
    sleeps = Sleeps()
    limiter = TokenBucket(0, sleep=sleeps)
    adapter = make_adapter(fake, limiter=limiter, websocket=False)
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        fake.fault("POST", "/v2/orders", "429", retry_after="7")
        events = await submit(adapter, order(23))
    finally:
        await adapter.close()
    assert [type(e) for e in events] == [OrderAccepted]
    assert len(fake.orders_posted()) == 2  # the first was refused unprocessed, so sending it again is safe
    assert limiter.penalties == 1
    assert sleeps.waits and 6.9 < sleeps.waits[0] <= 7.0


# --- brackets and OCO -----------------------------------------------------------------------------------------


def test_exit_levels_are_on_the_tick_and_beyond_the_reference() -> None:
    assert exit_levels(Side.BUY, Decimal("100"), Decimal("0.05"), Decimal("0.10")) == (Decimal("110.00"),
                                                                                        Decimal("95.00"))
    assert exit_levels(Side.SELL, Decimal("187.40"), Decimal("0.02"), Decimal("0.03")) == (Decimal("181.78"),
                                                                                           Decimal("191.15"))
    assert exit_levels(Side.BUY, Decimal("0.5123"), Decimal("0.00001"), None) == (None, Decimal("0.5122"))


async def test_a_limit_entry_with_stop_loss_and_take_profit_is_a_native_bracket_whose_legs_fill_as_exits(
    fake: AlpacaFake, started: tuple[AlpacaAdapter, CollectingHost]
) -> None:
    adapter, host = started
    entry = order(30, limit="100.00", stop_loss_pct=Decimal("0.05"), take_profit_pct=Decimal("0.10"))
    assert [type(e) for e in await submit(adapter, entry)] == [OrderAccepted]
    (body,) = fake.orders_posted()
    assert body["order_class"] == "bracket"
    assert body["take_profit"] == {"limit_price": 110.0} and body["stop_loss"] == {"stop_price": 95.0}
    tp, sl = exit_coid("tw-alp-0030", "tp"), exit_coid("tw-alp-0030", "sl")
    assert sorted(adapter.open_orders()) == sorted(["tw-alp-0030", tp, sl])

    await asyncio.to_thread(fake.fill, "tw-alp-0030", "10", "99.98")
    await asyncio.to_thread(fake.fill_leg, "tw-alp-0030", "limit", "110.00")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 2 and len(of(host.events, OrderCanceled)) == 1)

    (exit_fill,) = of(host.events, OrderFilled, tp)
    assert (exit_fill.side, exit_fill.last_qty, exit_fill.last_px) == (Side.SELL, Decimal("10"), Decimal("110.00"))
    assert exit_fill.strategy_id == "sma" and exit_fill.instrument_id == f"AAPL.{VENUE}"
    (other,) = of(host.events, OrderCanceled)
    assert other.client_order_id == sl
    assert adapter.open_orders() == []
    assert fake.bad_auth == 0


async def test_a_market_entry_bracket_takes_its_levels_from_the_latest_trade(
    fake: AlpacaFake, started: tuple[AlpacaAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    entry = order(31, OrderType.MARKET, stop_loss_pct=Decimal("0.02"), tif=TimeInForce.DAY)
    assert [type(e) for e in await submit(adapter, entry)] == [OrderAccepted]
    (body,) = fake.orders_posted()
    assert body["order_class"] == "oto" and body["stop_loss"] == {"stop_price": 183.65}
    assert "take_profit" not in body
    assert any(p == "/v2/stocks/trades/latest" for _m, p, _q, _b in fake.requests)


async def test_a_reduce_only_order_with_both_exits_is_an_oco_protecting_the_position(
    fake: AlpacaFake, started: tuple[AlpacaAdapter, CollectingHost]
) -> None:
    adapter, host = started
    protect = order(32, OrderType.LIMIT, side=Side.SELL, limit="190.00", reduce_only=True,
                    stop_loss_pct=Decimal("0.05"), take_profit_pct=Decimal("0.02"))
    assert [type(e) for e in await submit(adapter, protect)] == [OrderAccepted]
    (body,) = fake.orders_posted()
    assert body["order_class"] == "oco" and body["type"] == "limit" and body["side"] == "sell"
    assert body["take_profit"] == {"limit_price": 193.8} and body["limit_price"] == 193.8
    assert body["stop_loss"] == {"stop_price": 180.5}
    stop = exit_coid("tw-alp-0032", "sl")
    await asyncio.to_thread(fake.fill_leg, "tw-alp-0032", "stop", "180.40")
    await eventually(lambda: len(of(host.events, OrderFilled, stop)) == 1
                     and len(of(host.events, OrderCanceled, "tw-alp-0032")) == 1)
    assert adapter.open_orders() == []


async def test_a_reduce_only_market_order_with_a_trailing_stop_is_a_native_trailing_stop(
    fake: AlpacaFake, started: tuple[AlpacaAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    trail = order(33, OrderType.MARKET, side=Side.SELL, reduce_only=True, trailing_stop_pct=Decimal("0.015"))
    assert [type(e) for e in await submit(adapter, trail)] == [OrderAccepted]
    (body,) = fake.orders_posted()
    assert body["type"] == "trailing_stop" and body["trail_percent"] == 1.5 and body["client_order_id"] == "tw-alp-0033"


# --- restart, credentials, live guard --------------------------------------------------------------------------


async def test_fills_missed_while_down_are_caught_up_at_start_from_the_saved_state(fake: AlpacaFake) -> None:
    first = make_adapter(fake, websocket=False)
    first.attach(CollectingHost())
    await first.start()
    await submit(first, order(40))
    state = first.export_state()
    await first.close()
    await asyncio.to_thread(fake.fill, "tw-alp-0040", "10", "185.10")  # while execution is down

    second = make_adapter(fake, websocket=False)
    host = CollectingHost()
    second.attach(host)
    second.restore_state(state)
    await second.start()
    await second.close()
    (fill,) = of(host.events, OrderFilled)
    assert fill.trade_id == f"{fake.order('tw-alp-0040').id}:10" and not fill.partial
    assert second.open_orders() == []


async def test_no_credential_reaches_the_logs_even_when_the_venue_refuses_them(
    fake: AlpacaFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = make_adapter(fake)
    good.attach(CollectingHost())
    await good.start()
    await eventually(lambda: fake.trading_stream_clients() == 1)
    await submit(good, order(50))
    await asyncio.to_thread(fake.fill, "tw-alp-0050", "10", "185.00")
    fake.fault("POST", "/v2/orders", "timeout")
    await good.close()

    bad = make_adapter(fake, secret="not-" + SECRET[4:], websocket=False)
    host = CollectingHost()
    bad.attach(host)
    await bad.start()
    (rejected,) = await submit(bad, order(51))
    await bad.close()
    assert isinstance(rejected, OrderRejected) and "401" in rejected.reason
    assert SECRET not in caplog.text and SECRET[4:] not in caplog.text
    assert SECRET not in repr(bad.credentials) and SECRET not in rejected.reason


def test_live_mode_cannot_be_built_under_tests() -> None:
    from tradewire_common.config import VenueConfig, config_from_dict
    from tradewire_execution.venues import build_adapter

    venue = VenueConfig(name=VENUE, adapter="alpaca", mode="live", symbols=("AAPL",))
    with pytest.raises(LiveTradingRefused):
        build_adapter(venue, config_from_dict({}))


def test_the_factory_builds_a_paper_endpoint_adapter_for_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    from tradewire_common.config import VenueConfig, config_from_dict
    from tradewire_execution.venues import build_adapter

    monkeypatch.setenv("TRADEWIRE_ALPACA_API_KEY", KEY_ID)
    monkeypatch.setenv("TRADEWIRE_ALPACA_API_SECRET", SECRET)
    adapter = build_adapter(VenueConfig(name=VENUE, adapter="alpaca", mode="sandbox", symbols=("AAPL",)),
                            config_from_dict({}))
    assert isinstance(adapter, AlpacaAdapter)
    assert adapter.trading_url == "https://paper-api.alpaca.markets" and not adapter.live
    with pytest.raises(LiveTradingRefused):  # a test can never call a real endpoint
        adapter._client()


# --- over a real broker: execution + ledger ---------------------------------------------------------------------


async def test_trade_updates_reach_the_ledger_exactly_once_through_execution_on_a_real_broker(
    fake: AlpacaFake, fresh_nats: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.support.inproc import InProcessStack
    from tradewire_common import subjects
    from tradewire_common.bus import NatsBus
    from tradewire_common.config import config_from_dict

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TRADEWIRE_ALPACA_API_KEY", KEY_ID)
    monkeypatch.setenv("TRADEWIRE_ALPACA_API_SECRET", SECRET)
    config = config_from_dict({
        "execution": {"venues": [{"name": VENUE, "adapter": "alpaca", "mode": "sandbox", "symbols": ["AAPL"],
                                  "url_override": loopback_url(fake.url), "poll_interval_s": 0.1,
                                  "reconcile_interval_s": 0}]},
        "ledger": {"path": str(tmp_path / "ledger.db")},
    })
    stack = InProcessStack(config, fresh_nats.url)
    probe = NatsBus("probe", fresh_nats.url, auth=None)
    await probe.connect()
    await stack.start(("ledger", "execution"))
    try:
        await eventually(lambda: fake.trading_stream_clients() == 1)
        entry = order(60)
        await probe.publish(subjects.order_command(VENUE), entry)
        await eventually(lambda: "tw-alp-0060" in fake.by_coid)
        await asyncio.to_thread(fake.fill, "tw-alp-0060", "4", "185.40")
        await asyncio.to_thread(fake.resend_last_update)  # the stream repeats a fill
        await probe.publish(subjects.order_command(VENUE), entry)  # and risk's command is redelivered
        await asyncio.to_thread(fake.fill, "tw-alp-0060", "6", "185.45")
        await asyncio.to_thread(fake.resend_last_update)

        async def ledger_fills() -> list[dict[str, Any]]:
            rows = (await stack.get("ledger", "/v1/fills?limit=100")).json()
            return [r for r in rows if r["client_order_id"] == "tw-alp-0060"]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while len(await ledger_fills()) < 2:
            assert loop.time() < deadline, "the fills did not reach the ledger"
            await asyncio.sleep(0.05)
        await stack.restart_service("execution")  # reconciles with the venue at start: nothing new
        await eventually(lambda: fake.trading_stream_clients() >= 1)
        fills = await ledger_fills()
    finally:
        await stack.close()
        await probe.close()
    assert sorted((Decimal(str(f["last_qty"])), Decimal(str(f["last_px"]))) for f in fills) == [
        (Decimal("4"), Decimal("185.40")), (Decimal("6"), Decimal("185.45"))]
    assert len(fake.orders_posted()) == 1
    assert SECRET not in caplog.text


def loopback_url(url: str) -> str:
    assert is_loopback_url(url), url
    return url
