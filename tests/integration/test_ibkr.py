"""The IBKR adapter (Client Portal Web API over httpx) against the fake gateway on 127.0.0.1: the session and
account checks, orders through IB's confirmation prompts with the client order id as cOID, executions with their
ids (partial fills once each, commissions as fees), cancel and cancel/replace, in-flight resolution after a lost
answer, duplicate cOIDs, 429, positions."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.ibkr_fake import ACCOUNT, CONIDS, IbkrFake, ibkr_fake
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
    SubmitOrder,
    TimeInForce,
)
from tradewire_execution.live.base import CollectingHost
from tradewire_execution.live.guard import LiveTradingRefused, is_loopback_url
from tradewire_execution.live.ratelimit import TokenBucket
from tradewire_execution.venues.ibkr_adapter import IbkrAdapter

pytestmark = pytest.mark.timeout(60)

VENUE = "IBKR"


@pytest.fixture
def fake() -> Iterator[IbkrFake]:
    with ibkr_fake() as venue:
        yield venue




def make_adapter(fake: IbkrFake, **kw: Any) -> IbkrAdapter:
    kw.setdefault("limiter", TokenBucket(0))
    adapter = IbkrAdapter(VENUE, symbols=["AAPL", "MSFT"], url_override=fake.url, poll_interval_s=0.05, **kw)
    assert is_loopback_url(adapter.base_url)
    return adapter


@pytest.fixture
async def started(fake: IbkrFake) -> AsyncIterator[tuple[IbkrAdapter, CollectingHost]]:
    adapter = make_adapter(fake)
    host = CollectingHost()
    adapter.attach(host)
    await adapter.start()
    yield adapter, host
    await adapter.close()




def order(n: int, kind: OrderType = OrderType.LIMIT, **kw: Any) -> SubmitOrder:
    kw.setdefault("tif", TimeInForce.DAY)
    return stock_order(VENUE, "tw-ib", n, kind, ts_init=1, **kw)




def of(events: list[OrderEvent], kind: type[OrderEvent]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


async def test_orders_go_through_the_confirmation_prompts_with_the_client_order_id_as_coid(
    fake: IbkrFake, started: tuple[IbkrAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    fake.prompts = ["o354", "o163"]  # two prompts in a row
    cases = [order(1, OrderType.MARKET), order(2, OrderType.LIMIT, tif=TimeInForce.GTC),
             order(3, OrderType.STOP_MARKET, trigger="190.00", tif=TimeInForce.GTC),
             order(4, OrderType.STOP_LIMIT, trigger="190.00", limit="190.50", tif=TimeInForce.IOC)]
    answers = [await submit(adapter, o) for o in cases]

    assert all([type(e) for e in events] == [OrderAccepted] for events in answers)
    specs = [body["orders"][0] for body in fake.order_posts()]
    assert [(s["cOID"], s["orderType"], s["tif"], s["conid"], s["side"]) for s in specs] == [
        ("tw-ib-0001", "MKT", "DAY", CONIDS["AAPL"], "BUY"), ("tw-ib-0002", "LMT", "GTC", CONIDS["AAPL"], "BUY"),
        ("tw-ib-0003", "STP", "GTC", CONIDS["AAPL"], "BUY"), ("tw-ib-0004", "STOP_LIMIT", "IOC", CONIDS["AAPL"], "BUY")]
    assert specs[3]["price"] == 190.5 and specs[3]["auxPrice"] == 190.0 and specs[0]["acctId"] == ACCOUNT
    assert [i for i, _text in adapter.confirmed] == ["o354", "o163"] * 4  # every prompt confirmed and recorded
    assert [e.venue_order_id for (e,) in answers] == [str(fake.by_coid(o.client_order_id).order_id) for o in cases]
    assert await submit(adapter, order(1, OrderType.MARKET)) == []


async def test_executions_are_fills_once_each_by_execution_id_with_the_commission_as_fee(
    fake: IbkrFake, started: tuple[IbkrAdapter, CollectingHost]
) -> None:
    adapter, host = started
    await submit(adapter, order(10))
    first = fake.fill("tw-ib-0010", "4", "185.40", commission="1.00")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    await adapter.poll_once()
    second = fake.fill("tw-ib-0010", "6", "185.45", commission="1.05")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 2)
    await adapter.poll_once()

    fills = of(host.events, OrderFilled)
    assert [(f.trade_id, f.last_qty, f.last_px, f.fee, f.partial, f.leaves_qty) for f in fills] == [
        (first, Decimal("4.0"), Decimal("185.40"), Decimal("1.00"), True, Decimal("6.0")),
        (second, Decimal("6.0"), Decimal("185.45"), Decimal("1.05"), False, Decimal("0"))]
    assert adapter.open_orders() == []


async def test_cancel_and_cancel_replace(fake: IbkrFake, started: tuple[IbkrAdapter, CollectingHost]) -> None:
    adapter, host = started
    await submit(adapter, order(12))
    fake.fill("tw-ib-0012", "2", "185.50")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    command = ReplaceOrder(id=derive_id("r", 12), ts_event=2, ts_init=2, strategy_id="sma",
                           instrument_id=f"AAPL.{VENUE}", client_order_id="tw-ib-0012",
                           new_client_order_id="tw-ib-0013", limit_price=Decimal("185.25"))
    async with adapter.host.lock:
        events = await adapter.replace(command, 3)
    (replaced,) = events  # cancel, then new for what is left
    assert isinstance(replaced, OrderReplaced)
    assert (replaced.quantity, replaced.filled_qty) == (Decimal(10), Decimal(2))
    assert fake.by_coid("tw-ib-0012").status == "Cancelled"
    assert adapter.open_orders() == ["tw-ib-0013"]


async def test_a_lost_create_answer_is_resolved_by_order_ref_and_never_sent_again(fake: IbkrFake) -> None:
    fake.prompts = []
    adapter = make_adapter(fake, request_timeout_s=0.5)
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        fake.fault("POST", f"/iserver/account/{ACCOUNT}/orders", "timeout")
        events = await submit(adapter, order(20))
    finally:
        await adapter.close()
    assert [type(e) for e in events] == [OrderAccepted]
    assert of(events, OrderAccepted)[0].venue_order_id == str(fake.by_coid("tw-ib-0020").order_id)
    assert len(fake.order_posts()) == 1


async def test_a_coid_ib_already_has_is_that_order_not_a_rejection(fake: IbkrFake) -> None:
    other = make_adapter(fake)
    await other.connect()
    await other.venue_place(order(21))  # placed before our state was lost
    await other.disconnect()
    adapter = make_adapter(fake)
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        events = await submit(adapter, order(21))
    finally:
        await adapter.close()
    assert [type(e) for e in events] == [OrderAccepted]
    assert len(fake.orders) == 1


async def test_429_waits_its_retry_after_then_places_the_order(fake: IbkrFake) -> None:
    sleeps = Sleeps()
    adapter = make_adapter(fake, limiter=TokenBucket(0, sleep=sleeps))
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        fake.fault("POST", f"/iserver/account/{ACCOUNT}/orders", "429", retry_after="2")
        events = await submit(adapter, order(22))
    finally:
        await adapter.close()
    assert [type(e) for e in events] == [OrderAccepted]
    assert len(fake.orders) == 1 and sleeps.waits and 1.9 < sleeps.waits[0] <= 2.0


async def test_ibs_refusal_is_a_rejection_with_its_error(fake: IbkrFake, started: tuple[IbkrAdapter, CollectingHost]
                                                         ) -> None:
    adapter, _host = started
    (rejected,) = await submit(adapter, order(23, OrderType.STOP_LIMIT, trigger="190.00", limit="190.50",
                                              tif=TimeInForce.FOK))
    assert isinstance(rejected, OrderRejected) and "FOK" in rejected.reason  # IB has no FOK for stocks here
    assert fake.order_posts() == []


async def test_positions_come_from_the_portfolio_after_the_accounts_call(
    fake: IbkrFake, started: tuple[IbkrAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    await submit(adapter, order(30))
    fake.fill("tw-ib-0030", "10", "100.00")
    assert await adapter.venue_balances() == {"AAPL": Decimal("10.0")}
    paths = [p for _m, p, _b in fake.requests]
    assert paths.index("/v1/api/portfolio/accounts") < paths.index(f"/v1/api/portfolio/{ACCOUNT}/positions/0")


async def test_an_unauthenticated_gateway_or_a_live_account_in_sandbox_mode_does_not_start(fake: IbkrFake) -> None:
    fake.authenticated = False
    with pytest.raises(ConnectionError, match="not authenticated"):
        await make_adapter(fake).connect()
    fake.authenticated = True
    fake.account = "U7654321"  # a real-money account
    with pytest.raises(ValueError, match="paper account"):
        await make_adapter(fake).connect()


async def test_nothing_secret_is_logged(fake: IbkrFake, caplog: pytest.LogCaptureFixture) -> None:
    from tradewire_execution.live.credentials import Credentials

    caplog.set_level(logging.DEBUG)
    secret = "ibkr-gateway-secret-never-logged-5d1e"
    adapter = make_adapter(fake, credentials=Credentials(api_key="key-0001", secret=secret))
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        await submit(adapter, order(40))
        fake.fault("POST", f"/iserver/account/{ACCOUNT}/orders", "5xx")
        await submit(adapter, order(41))
    finally:
        await adapter.close()
    assert secret not in caplog.text


def test_live_mode_cannot_be_built_under_tests() -> None:
    from tradewire_common.config import VenueConfig, config_from_dict
    from tradewire_execution.venues import build_adapter

    with pytest.raises(LiveTradingRefused):
        build_adapter(VenueConfig(name=VENUE, adapter="ibkr", mode="live", symbols=("AAPL",)), config_from_dict({}))
    adapter = build_adapter(VenueConfig(name=VENUE, adapter="ibkr", mode="sandbox", symbols=("AAPL",)),
                            config_from_dict({}))
    assert isinstance(adapter, IbkrAdapter) and adapter.paper_only
    assert adapter.base_url == "https://localhost:5000/v1/api"
