"""The Tradier adapter (httpx) against the fake Tradier on 127.0.0.1: bearer auth, Tradier's one-or-many and
"null" JSON, equity orders with the client order id as tag, fills from polled order snapshots (partial, once
each), cancel and cancel/replace, in-flight resolution by tag after a lost answer, 429 with Retry-After, market
data, and that no credential reaches a log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.tradier_fake import ACCOUNT, TOKEN, TradierFake, tradier_fake
from tests.support.venue_tests import Sleeps, eventually, stock_order, submit
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    OrderAccepted,
    OrderEvent,
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
from tradewire_execution.venues.tradier_adapter import TradierAdapter, items

pytestmark = pytest.mark.timeout(60)

VENUE = "TRADIER"


@pytest.fixture
def fake() -> Iterator[TradierFake]:
    with tradier_fake() as venue:
        yield venue




def make_adapter(fake: TradierFake, *, token: str = TOKEN, limiter: TokenBucket | None = None,
                 **kw: Any) -> TradierAdapter:
    adapter = TradierAdapter(VENUE, credentials=Credentials(api_key=token, uid=ACCOUNT), account=ACCOUNT,
                             symbols=["AAPL", "MSFT"], url_override=fake.url, limiter=limiter or TokenBucket(0),
                             poll_interval_s=0.05, **kw)
    assert is_loopback_url(adapter.base_url)
    return adapter


@pytest.fixture
async def started(fake: TradierFake) -> AsyncIterator[tuple[TradierAdapter, CollectingHost]]:
    adapter = make_adapter(fake)
    host = CollectingHost()
    adapter.attach(host)
    await adapter.start()
    yield adapter, host
    await adapter.close()




def order(n: int, kind: OrderType = OrderType.LIMIT, **kw: Any) -> SubmitOrder:
    kw.setdefault("tif", TimeInForce.DAY)
    return stock_order(VENUE, "tw-trd", n, kind, ts_init=1, **kw)




def of(events: list[OrderEvent], kind: type[OrderEvent]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_one_item_many_items_and_the_string_null_all_read_as_lists() -> None:
    assert items({"order": {"id": 1}}, "order") == [{"id": 1}]
    assert items({"order": [{"id": 1}, {"id": 2}]}, "order") == [{"id": 1}, {"id": 2}]
    assert items("null", "order") == [] and items({"order": None}, "order") == [] and items(None, "x") == []


async def test_equity_orders_are_form_posted_with_the_client_order_id_as_tag(
    fake: TradierFake, started: tuple[TradierAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    cases = [order(1, OrderType.MARKET), order(2, OrderType.LIMIT, tif=TimeInForce.GTC),
             order(3, OrderType.STOP_MARKET, trigger="190.00"),
             order(4, OrderType.STOP_LIMIT, trigger="190.00", limit="190.50", tif=TimeInForce.GTC)]
    answers = [await submit(adapter, o) for o in cases]

    assert all([type(e) for e in events] == [OrderAccepted] for events in answers)
    forms = [{k: v[-1] for k, v in f.items()} for f in fake.orders_posted()]
    assert [(f["class"], f["type"], f["duration"], f["tag"], f["quantity"]) for f in forms] == [
        ("equity", "market", "day", "tw-trd-0001", "10"), ("equity", "limit", "gtc", "tw-trd-0002", "10"),
        ("equity", "stop", "day", "tw-trd-0003", "10"), ("equity", "stop_limit", "gtc", "tw-trd-0004", "10")]
    assert forms[1]["price"] == "185.50" and (forms[3]["stop"], forms[3]["price"]) == ("190.00", "190.50")
    assert [e.venue_order_id for (e,) in answers] == [str(o.id) for o in fake.orders.values()]
    assert await submit(adapter, order(1, OrderType.MARKET)) == []  # redelivered: never sent twice
    assert len(fake.orders_posted()) == 4


async def test_what_tradier_cannot_do_is_refused_before_sending_and_its_own_errors_are_rejections(
    fake: TradierFake, started: tuple[TradierAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    (ioc,) = await submit(adapter, order(5, tif=TimeInForce.IOC))
    (fractional,) = await submit(adapter, order(6, qty="1.5"))
    assert isinstance(ioc, OrderRejected) and "time in force IOC" in ioc.reason
    assert isinstance(fractional, OrderRejected) and "whole shares" in fractional.reason
    assert fake.orders_posted() == []
    (oversold,) = await submit(adapter, order(7, OrderType.MARKET, side=Side.SELL))  # nothing held
    assert isinstance(oversold, OrderRejected)
    assert "Backoffice rejected override of the order.; Sell order quantity 10 exceeds position 0" in oversold.reason


async def test_partial_fills_from_polled_snapshots_are_published_once_each_with_their_prices(
    fake: TradierFake, started: tuple[TradierAdapter, CollectingHost]
) -> None:
    adapter, host = started
    (accepted,) = await submit(adapter, order(10))
    oid = int(accepted.venue_order_id)
    fake.fill(oid, "4", "185.40")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    await adapter.poll_once()  # the same snapshot again: nothing new
    fake.fill(oid, "6", "185.45")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 2)
    await adapter.poll_once()

    fills = of(host.events, OrderFilled)
    assert [(f.trade_id, f.last_qty, f.last_px, f.partial, f.leaves_qty) for f in fills] == [
        (f"{oid}:4", Decimal("4"), Decimal("185.4"), True, Decimal("6")),
        (f"{oid}:10", Decimal("6"), Decimal("185.45"), False, Decimal("0"))]
    assert adapter.open_orders() == []


async def test_two_fills_between_polls_become_one_fill_at_their_volume_weighted_price(
    fake: TradierFake, started: tuple[TradierAdapter, CollectingHost]
) -> None:
    adapter, host = started
    (accepted,) = await submit(adapter, order(11, qty="9"))
    oid = int(accepted.venue_order_id)
    fake.fill(oid, "3", "100.00")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    async with adapter.host.lock:  # hold the poller while two executions happen
        fake.fill(oid, "3", "101.00")
        fake.fill(oid, "3", "102.00")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 2)
    second = of(host.events, OrderFilled)[1]
    assert (second.trade_id, second.last_qty, second.last_px) == (f"{oid}:9", Decimal("6"), Decimal("101.5"))


async def test_cancel_and_cancel_replace(fake: TradierFake, started: tuple[TradierAdapter, CollectingHost]) -> None:
    adapter, host = started
    (accepted,) = await submit(adapter, order(12))
    fake.fill(int(accepted.venue_order_id), "2", "185.50")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    command = ReplaceOrder(id=derive_id("r", 12), ts_event=2, ts_init=2, strategy_id="sma",
                           instrument_id=f"AAPL.{VENUE}", client_order_id="tw-trd-0012",
                           new_client_order_id="tw-trd-0013", limit_price=Decimal("185.25"))
    async with adapter.host.lock:
        events = await adapter.replace(command, 3)
    (replaced,) = events  # no modify of the quantity at Tradier here: cancel, then new for what is left
    assert isinstance(replaced, OrderReplaced)
    assert (replaced.quantity, replaced.filled_qty, replaced.limit_price) == (Decimal(10), Decimal(2),
                                                                             Decimal("185.25"))
    assert fake.orders[int(accepted.venue_order_id)].status == "canceled"
    assert fake.orders[int(replaced.venue_order_id)].quantity == Decimal(8)
    assert adapter.open_orders() == ["tw-trd-0013"]


async def test_a_lost_create_answer_is_resolved_by_its_tag_and_never_sent_again(fake: TradierFake) -> None:
    adapter = make_adapter(fake, request_timeout_s=0.5)
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        fake.fault("POST", f"/v1/accounts/{ACCOUNT}/orders", "timeout")
        events = await submit(adapter, order(20))
    finally:
        await adapter.close()
    assert [type(e) for e in events] == [OrderAccepted]
    (placed,) = fake.order_by_tag("tw-trd-0020")
    assert of(events, OrderAccepted)[0].venue_order_id == str(placed.id)
    assert len(fake.orders_posted()) == 1  # Tradier would take the same tag twice: we never ask it to


async def test_a_5xx_on_create_leaves_the_order_in_flight_until_the_grace_then_rejects_it(fake: TradierFake) -> None:
    clock = [1_000_000_000_000]
    adapter = make_adapter(fake, in_flight_grace_s=15.0, wall_ns=lambda: clock[0])
    host = CollectingHost()
    adapter.attach(host)
    await adapter.start()
    try:
        fake.fault("POST", f"/v1/accounts/{ACCOUNT}/orders", "5xx", status=502)  # not processed by the fake
        assert await submit(adapter, order(21)) == []
        assert adapter.tracked("tw-trd-0021").status == "in_flight"  # type: ignore[union-attr]
        clock[0] += 16_000_000_000  # past the grace: "no such order" is definitive
        await adapter.resolve_in_flight()
    finally:
        await adapter.close()
    (rejected,) = of(host.events, OrderRejected)
    assert "no order tw-trd-0021" in rejected.reason
    assert len(fake.orders_posted()) == 1 and fake.orders == {}


async def test_429_waits_its_retry_after_before_the_create_is_sent_again(fake: TradierFake) -> None:
    sleeps = Sleeps()
    adapter = make_adapter(fake, limiter=TokenBucket(0, sleep=sleeps))
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        fake.fault("POST", f"/v1/accounts/{ACCOUNT}/orders", "429", retry_after="3")
        events = await submit(adapter, order(22))
    finally:
        await adapter.close()
    assert [type(e) for e in events] == [OrderAccepted]
    assert len(fake.orders_posted()) == 2 and len(fake.orders) == 1
    assert sleeps.waits and 2.9 < sleeps.waits[0] <= 3.0


async def test_positions_and_cash_for_reconciliation(fake: TradierFake, started: tuple[TradierAdapter, CollectingHost]
                                                     ) -> None:
    adapter, _host = started
    assert await adapter.venue_balances() == {"USD": Decimal("100000.0")}  # positions: "null"
    (accepted,) = await submit(adapter, order(30))
    fake.fill(int(accepted.venue_order_id), "10", "100.00")
    balances = await adapter.venue_balances()
    assert balances["AAPL"] == Decimal("10.0") and balances["USD"] == Decimal("99000.0")
    assert adapter.position_keys() == {"AAPL.TRADIER": "AAPL", "MSFT.TRADIER": "MSFT"}


async def test_quotes_history_and_timesales_in_tradiers_shapes(
    fake: TradierFake, started: tuple[TradierAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    fake.quotes["AAPL"] = {"symbol": "AAPL", "description": "Apple Inc", "exch": "Q", "type": "stock",
                           "last": 185.92, "bid": 185.91, "ask": 185.93, "bidsize": 3, "asksize": 2, "volume": 100}
    found, unmatched = await adapter.data.quotes(["AAPL", "NOPE"])
    assert found["AAPL"]["bid"] == 185.91 and unmatched == ["NOPE"]
    fake.days["AAPL"] = [{"date": "2024-01-02", "open": 187.15, "high": 188.44, "low": 183.89, "close": 185.64,
                          "volume": 82488674}]
    (day,) = await adapter.data.history("AAPL", date(2024, 1, 1), date(2024, 1, 3))  # one day: an object
    assert (day.open, day.close, day.volume) == (Decimal("187.15"), Decimal("185.64"), Decimal("82488674"))
    assert await adapter.data.history("AAPL", date(2023, 1, 1), date(2023, 1, 3)) == []  # "history": null
    fake.timesales["AAPL"] = [{"time": f"2024-01-02T09:3{i}:00", "timestamp": 1704205800 + 60 * i, "price": 187.1,
                               "open": 187.0 + i, "high": 187.5 + i, "low": 186.9 + i, "close": 187.2 + i,
                               "volume": 1000, "vwap": 187.1} for i in range(3)]
    bars = await adapter.data.timesales("AAPL", "2024-01-02 09:30", "2024-01-02 09:32")
    assert [b.ts_ns for b in bars] == [(1704205800 + 60 * i) * 1_000_000_000 for i in range(3)]
    assert bars[2].open == Decimal("189.0")


async def test_a_wrong_token_is_refused_and_no_credential_reaches_the_logs(
    fake: TradierFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = make_adapter(fake, token="wrong-" + TOKEN)
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        (rejected,) = await submit(adapter, order(40))
        fake.fault("POST", f"/v1/accounts/{ACCOUNT}/orders", "5xx")
        await submit(adapter, order(41))
    finally:
        await adapter.close()
    assert isinstance(rejected, OrderRejected) and "Invalid Access Token" in rejected.reason
    assert fake.bad_auth >= 1
    assert TOKEN not in caplog.text and TOKEN not in rejected.reason


def test_live_mode_cannot_be_built_under_tests_and_sandbox_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from tradewire_common.config import VenueConfig, config_from_dict
    from tradewire_execution.venues import build_adapter

    with pytest.raises(LiveTradingRefused):
        build_adapter(VenueConfig(name=VENUE, adapter="tradier", mode="live", symbols=("AAPL",)), config_from_dict({}))
    monkeypatch.setenv("TRADEWIRE_TRADIER_API_KEY", TOKEN)
    monkeypatch.setenv("TRADEWIRE_TRADIER_UID", ACCOUNT)
    adapter = build_adapter(VenueConfig(name=VENUE, adapter="tradier", mode="sandbox", symbols=("AAPL",)),
                            config_from_dict({}))
    assert isinstance(adapter, TradierAdapter) and adapter.base_url == "https://sandbox.tradier.com/v1"
