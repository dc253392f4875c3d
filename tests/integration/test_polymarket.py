"""The Polymarket adapter (py-clob-client-v2, unmodified) against the fake Polymarket on 127.0.0.1: signed
orders accepted and filled, cancel, Polymarket's refusals, provisional fills confirmed or reversed, YES/NO
cross-matching, lost create answers resolved by the order hash, restarts, and the fake's signature check."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import ApiCreds, OrderArgsV2, OrderType
from py_clob_client_v2.config import get_contract_config
from py_clob_client_v2.exceptions import PolyApiException
from py_clob_client_v2.headers.headers import create_level_1_headers
from py_clob_client_v2.order_utils import ExchangeOrderBuilderV2
from py_clob_client_v2.order_utils.model.order_data_v2 import SignedOrderV2
from py_clob_client_v2.signer import Signer

from tests.fakes.polymarket import OTHER_KEY, WALLET_KEY, PolymarketFake, polymarket_fake
from tests.support.venue_tests import eventually, submit
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    CancelOrder,
    FillConfirmed,
    FillReversed,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    Side,
    SubmitOrder,
    TimeInForce,
)
from tradewire_common.schemas import (
    OrderType as TwOrderType,
)
from tradewire_execution.live.base import CollectingHost
from tradewire_execution.live.credentials import Credentials
from tradewire_execution.venues.polymarket_adapter import PolymarketAdapter

pytestmark = pytest.mark.timeout(60)

VENUE = "POLYMARKET"
#: The Trump 2024 market's tokens and condition id (from the recorded messages).
CONDITION = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"
YES = "21742633143463906290569050155826241533067272736897614950488156847949938836455"
NO = "48331043336612883890938759509493159234755048973500640148014422747788308965732"


@pytest.fixture
def fake() -> Iterator[PolymarketFake]:
    with polymarket_fake() as venue:
        venue.add_market(CONDITION, YES, NO, "Will Donald Trump win the 2024 US Presidential Election?",
                         tick_size=Decimal("0.01"))
        yield venue


def make_adapter(fake: PolymarketFake, **kw: Any) -> PolymarketAdapter:
    return PolymarketAdapter(VENUE, credentials=Credentials(secret=WALLET_KEY), symbols=[YES, NO],
                             url_override=fake.url, poll_interval_s=0.05, in_flight_grace_s=kw.pop("grace", 1.0),
                             **kw)


@pytest.fixture
async def started(fake: PolymarketFake) -> AsyncIterator[tuple[PolymarketAdapter, CollectingHost]]:
    adapter = make_adapter(fake)
    host = CollectingHost()
    adapter.attach(host)
    await adapter.start()
    yield adapter, host
    await adapter.close()


def order(n: int, *, token: str = YES, side: Side = Side.BUY, qty: str = "10", price: str = "0.40",
          tif: TimeInForce = TimeInForce.GTC, **kw: Any) -> SubmitOrder:
    return SubmitOrder(
        id=derive_id("pm-test", n), ts_event=1, ts_init=1, correlation_id=f"sig-{n}", strategy_id="edge",
        instrument_id=f"{token}.{VENUE}", client_order_id=f"tw-pm-{n:04d}", side=side,
        order_type=TwOrderType.LIMIT, quantity=Decimal(qty), limit_price=Decimal(price), time_in_force=tif, **kw)


def of(events: list[OrderEvent], kind: type[OrderEvent], coid: str | None = None) -> list[Any]:
    return [e for e in events if isinstance(e, kind) and (coid is None or e.client_order_id == coid)]


def api_key(adapter: PolymarketAdapter) -> str:
    assert adapter.api_creds is not None
    return str(adapter.api_creds.api_key)


# --- placing --------------------------------------------------------------------------------------------------


async def test_a_signed_order_is_accepted_with_its_hash_then_partially_and_fully_filled(
    fake: PolymarketFake, started: tuple[PolymarketAdapter, CollectingHost]
) -> None:
    adapter, host = started
    (accepted,) = await submit(adapter, order(1))
    assert isinstance(accepted, OrderAccepted)
    (placed,) = fake.orders_of(api_key(adapter))
    assert accepted.venue_order_id == placed.id and placed.price == Decimal("0.40")
    assert fake.posted[0]["orderType"] == "GTC" and fake.posted[0]["postOnly"] is False

    fake.take(YES, "SELL", "0.40", "4")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    fake.take(YES, "SELL", "0.38", "6")  # fills at the resting order's price
    await eventually(lambda: len(of(host.events, OrderFilled)) == 2)
    await adapter.poll_once()

    fills = of(host.events, OrderFilled)
    assert [(f.last_qty, f.last_px, f.partial, f.leaves_qty, f.side) for f in fills] == [
        (Decimal(4), Decimal("0.4"), True, Decimal(6), Side.BUY),
        (Decimal(6), Decimal("0.4"), False, Decimal(0), Side.BUY)]
    assert all(f.liquidity is Liquidity.MAKER and not f.provisional for f in fills)
    assert [f.trade_id for f in fills] == [t.id for t in fake.trades()]
    assert adapter.open_orders() == []


async def test_time_in_force_gtd_ioc_and_post_only_reach_polymarket_as_its_order_types(
    fake: PolymarketFake, started: tuple[PolymarketAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    fake.rest(YES, "SELL", "0.45", "100")
    expire_s = 4_102_444_800  # 2100-01-01
    gtd = await submit(adapter, order(2, tif=TimeInForce.GTD, expire_time_ns=expire_s * 1_000_000_000,
                                      post_only=True))
    ioc = await submit(adapter, order(3, tif=TimeInForce.IOC, price="0.45", qty="7"))
    assert [type(e) for e in gtd] == [OrderAccepted]
    assert [(p["orderType"], p["postOnly"], p["order"]["expiration"]) for p in fake.posted] == [
        ("GTD", True, str(expire_s)), ("FAK", False, "0")]
    assert [type(e) for e in ioc] == [OrderAccepted, OrderFilled]
    assert ioc[1].last_qty == Decimal(7) and ioc[1].liquidity is Liquidity.TAKER


async def test_a_neg_risk_market_order_from_a_proxy_wallet_is_signed_for_the_neg_risk_exchange(
    fake: PolymarketFake,
) -> None:
    fake.add_market("0x" + "5e" * 32, "9001", "9002", "Which party wins the House?", neg_risk=True)
    proxy = "0x" + "9a" * 20
    adapter = PolymarketAdapter(VENUE, credentials=Credentials(secret=WALLET_KEY, uid=proxy), symbols=["9001"],
                                url_override=fake.url, signature_type=2, poll_interval_s=0.05)
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        (accepted,) = await submit(adapter, order(8, token="9001"))
    finally:
        await adapter.close()
    assert isinstance(accepted, OrderAccepted)
    (placed,) = fake.orders_of(api_key(adapter))
    signed = fake.posted[0]["order"]
    assert accepted.venue_order_id == placed.id  # the same EIP-712 hash on both sides (neg-risk exchange domain)
    assert (signed["maker"].lower(), signed["signatureType"]) == (proxy, 2) and placed.maker_address.lower() == proxy


async def test_polymarkets_refusals_in_its_own_json_are_rejections_with_its_message(
    fake: PolymarketFake, started: tuple[PolymarketAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    fake.rest(YES, "SELL", "0.45", "3")
    (fok,) = await submit(adapter, order(4, tif=TimeInForce.FOK, price="0.45"))  # only 3 available
    (maker,) = await submit(adapter, order(5, price="0.46", post_only=True))  # would cross
    assert isinstance(fok, OrderRejected) and "FOK orders are fully filled or killed" in fok.reason
    assert "(400)" in fok.reason
    assert isinstance(maker, OrderRejected) and "invalid post-only order: order crosses book" in maker.reason
    assert fake.orders_of(api_key(adapter)) == [] and adapter.open_orders() == []


async def test_a_price_off_the_tick_or_a_size_below_a_hundredth_is_refused_before_anything_is_sent(
    fake: PolymarketFake, started: tuple[PolymarketAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    (rejected,) = await submit(adapter, order(6, price="0.405"))
    (fractional,) = await submit(adapter, order(9, qty="10.005"))
    assert isinstance(rejected, OrderRejected) and "tick" in rejected.reason
    assert isinstance(fractional, OrderRejected) and "0.01 shares" in fractional.reason
    assert fake.posted == []


async def test_cancel_after_a_partial_fill_reports_the_filled_quantity(
    fake: PolymarketFake, started: tuple[PolymarketAdapter, CollectingHost]
) -> None:
    adapter, host = started
    await submit(adapter, order(7))
    fake.take(YES, "SELL", "0.40", "3")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    command = CancelOrder(id=derive_id("c", 7), ts_event=2, ts_init=2, strategy_id="edge",
                          instrument_id=f"{YES}.{VENUE}", client_order_id="tw-pm-0007", reason="edge gone")
    async with adapter.host.lock:
        events = await adapter.cancel(command, 3)
    (canceled,) = of(events, OrderCanceled)
    assert canceled.filled_qty == Decimal(3) and canceled.reason == "edge gone"
    (placed,) = fake.orders_of(api_key(adapter))
    assert placed.status == "CANCELED"


# --- provisional fills -----------------------------------------------------------------------------------------


async def test_a_matched_trade_is_a_provisional_fill_then_confirmed_once(
    fake: PolymarketFake, started: tuple[PolymarketAdapter, CollectingHost]
) -> None:
    adapter, host = started
    fake.set_auto_confirm(False)
    await submit(adapter, order(10))
    fake.take(YES, "SELL", "0.40", "10")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    (fill,) = of(host.events, OrderFilled)
    assert fill.provisional and not fill.partial
    (trade,) = fake.trades()
    fake.confirm(trade.id)
    await eventually(lambda: len(of(host.events, FillConfirmed)) == 1)
    for _ in range(3):
        await adapter.poll_once()
    (confirmed,) = of(host.events, FillConfirmed)
    assert (confirmed.trade_id, confirmed.client_order_id) == (trade.id, "tw-pm-0010")
    assert len(of(host.events, OrderFilled)) == 1 and of(host.events, FillReversed) == []
    assert adapter.tracked("tw-pm-0010").provisional == {}  # type: ignore[union-attr]


async def test_a_failed_match_reverses_the_provisional_fill_and_the_order_fills_again(
    fake: PolymarketFake, started: tuple[PolymarketAdapter, CollectingHost]
) -> None:
    adapter, host = started
    fake.set_auto_confirm(False)
    await submit(adapter, order(11))
    fake.take(YES, "SELL", "0.40", "4")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    (trade,) = fake.trades()
    fake.fail(trade.id)
    await eventually(lambda: len(of(host.events, FillReversed)) == 1)
    (reversed_,) = of(host.events, FillReversed)
    assert (reversed_.trade_id, reversed_.last_qty, reversed_.last_px, reversed_.side) == (
        trade.id, Decimal(4), Decimal("0.4"), Side.BUY)
    tracked = adapter.tracked("tw-pm-0011")
    assert tracked is not None and tracked.filled == 0 and tracked.status == "open"

    fake.set_auto_confirm(True)
    fake.take(YES, "SELL", "0.40", "10")  # the whole order is back on the book
    await eventually(lambda: len(of(host.events, OrderFilled)) == 2)
    last = of(host.events, OrderFilled)[-1]
    assert (last.last_qty, last.partial, last.leaves_qty, last.provisional) == (Decimal(10), False, 0, False)
    for _ in range(3):
        await adapter.poll_once()
    assert len(of(host.events, FillReversed)) == 1 and adapter.open_orders() == []


async def test_unsettled_provisional_fills_survive_a_restart_and_settle_once(fake: PolymarketFake) -> None:
    first, host = make_adapter(fake), CollectingHost()
    first.attach(host)
    await first.start()
    fake.set_auto_confirm(False)
    await submit(first, order(12))
    fake.take(YES, "SELL", "0.40", "10")
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    state = first.export_state()
    await first.close()

    (trade,) = fake.trades()
    fake.confirm(trade.id)
    second, host2 = make_adapter(fake), CollectingHost()
    second.restore_state(state)
    second.attach(host2)
    await second.start()
    try:
        await eventually(lambda: len(of(host2.events, FillConfirmed)) == 1)
        await second.poll_once()
    finally:
        await second.close()
    assert of(host2.events, OrderFilled) == [] and len(of(host2.events, FillConfirmed)) == 1


# --- YES/NO cross-matching ---------------------------------------------------------------------------------------


async def test_a_yes_buy_and_a_no_buy_cross_and_each_fills_on_its_own_token_side_and_price(
    fake: PolymarketFake, started: tuple[PolymarketAdapter, CollectingHost]
) -> None:
    adapter, host = started
    await submit(adapter, order(20, token=YES, price="0.55"))
    events = await submit(adapter, order(21, token=NO, price="0.47"))  # 0.47 >= 1 - 0.55: crosses
    await eventually(lambda: len(of(host.events, OrderFilled, "tw-pm-0020")) == 1)

    (yes_fill,) = of(host.events, OrderFilled, "tw-pm-0020")
    (no_fill,) = of(events, OrderFilled, "tw-pm-0021")
    assert (yes_fill.instrument_id, yes_fill.side, yes_fill.last_px, yes_fill.liquidity) == (
        f"{YES}.{VENUE}", Side.BUY, Decimal("0.55"), Liquidity.MAKER)
    assert (no_fill.instrument_id, no_fill.side, no_fill.last_px, no_fill.liquidity) == (
        f"{NO}.{VENUE}", Side.BUY, Decimal("0.45"), Liquidity.TAKER)
    assert yes_fill.last_qty == no_fill.last_qty == Decimal(10)
    assert yes_fill.last_px + no_fill.last_px == 1  # one YES + one NO minted for exactly 1


# --- lost answers ------------------------------------------------------------------------------------------------


async def test_a_lost_create_response_is_resolved_by_the_order_hash_without_a_duplicate(
    fake: PolymarketFake, started: tuple[PolymarketAdapter, CollectingHost]
) -> None:
    adapter, host = started
    fake.fault("POST", "/order", "drop")  # carried out, the connection closes without an answer
    events = await submit(adapter, order(30))  # in flight, resolved by the order hash at once
    await eventually(lambda: len(of([*events, *host.events], OrderAccepted)) == 1)
    (placed,) = fake.orders_of(api_key(adapter))
    (accepted,) = of([*events, *host.events], OrderAccepted)
    assert accepted.venue_order_id == placed.id and len(fake.posted) == 1
    assert adapter.open_orders() == ["tw-pm-0030"]


async def test_a_5xx_on_create_that_was_not_carried_out_is_rejected_after_the_grace(
    fake: PolymarketFake, started: tuple[PolymarketAdapter, CollectingHost]
) -> None:
    adapter, host = started
    fake.fault("POST", "/order", "5xx", status=503)
    assert await submit(adapter, order(31)) == []
    await eventually(lambda: len(of(host.events, OrderRejected)) == 1)
    assert fake.orders_of(api_key(adapter)) == [] and of(host.events, OrderAccepted) == []


async def test_a_create_that_times_out_is_resolved_by_its_hash_and_accepted_once(
    fake: PolymarketFake, started: tuple[PolymarketAdapter, CollectingHost]
) -> None:
    adapter, host = started
    fake.fault("POST", "/order", "timeout")  # carried out, never answered: the client gives up after 5 s
    events = await submit(adapter, order(35))
    await eventually(lambda: len(of([*events, *host.events], OrderAccepted)) == 1)
    assert len(fake.posted) == 1 and len(fake.orders_of(api_key(adapter))) == 1


async def test_a_gtd_order_the_venue_expires_is_reported_expired(fake: PolymarketFake) -> None:
    adapter, host = make_adapter(fake, wall_ns=fake.now_ns), CollectingHost()
    adapter.attach(host)
    await adapter.start()
    try:
        expire_ns = fake.now_ns() + 120 * 1_000_000_000
        await submit(adapter, order(36, tif=TimeInForce.GTD, expire_time_ns=expire_ns))
        fake.advance(180)
        await eventually(lambda: len(of(host.events, OrderExpired)) == 1)
    finally:
        await adapter.close()
    assert of(host.events, OrderCanceled) == [] and adapter.open_orders() == []


async def test_a_429_on_create_is_sent_again_and_placed_once(
    fake: PolymarketFake, started: tuple[PolymarketAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    fake.fault("POST", "/order", "429", retry_after="0")
    events = await submit(adapter, order(32))
    assert [type(e) for e in events] == [OrderAccepted]
    assert len(fake.orders_of(api_key(adapter))) == 1


async def test_no_key_secret_or_passphrase_reaches_the_logs(
    fake: PolymarketFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter, host = make_adapter(fake), CollectingHost()
    adapter.attach(host)
    await adapter.start()
    try:
        fake.fault("POST", "/order", "drop")
        await submit(adapter, order(33))
        await submit(adapter, order(34, tif=TimeInForce.FOK))
        await eventually(lambda: len(fake.posted) == 2)
    finally:
        await adapter.close()
    assert adapter.api_creds is not None
    for secret in (WALLET_KEY, WALLET_KEY[2:], adapter.api_creds.api_secret, adapter.api_creds.api_passphrase):
        assert secret not in caplog.text
    assert "Credentials(" not in repr(adapter.__dict__).replace("Credentials(api_key=", "")


# --- the fake's signature check, with the unmodified client -----------------------------------------------------


def test_the_fake_refuses_an_order_signed_by_another_key_and_takes_the_right_one(fake: PolymarketFake) -> None:
    client = ClobClient(fake.url, 137, key=WALLET_KEY)
    client.set_api_creds(client.create_or_derive_api_key())
    signed = client.create_order(OrderArgsV2(token_id=YES, price=0.4, size=10, side="BUY"))
    # the same order (our wallet as maker and signer) signed with another wallet's key, by the client's builder
    other = ExchangeOrderBuilderV2(get_contract_config(137).exchange_v2, 137, Signer(OTHER_KEY, 137))
    wrong = SignedOrderV2(**{**signed.__dict__,
                             "signature": other.build_order_signature(other.build_order_typed_data(signed))})
    assert wrong.signature != signed.signature
    with pytest.raises(PolyApiException) as refused:
        client.post_order(wrong, OrderType.GTC)
    assert refused.value.status_code == 400 and refused.value.error_msg == {"error": "invalid signature"}
    assert fake.engine.orders == {}
    answer = client.post_order(signed, OrderType.GTC)
    assert answer["success"] and answer["status"] == "live" and len(fake.engine.orders) == 1


def test_the_fake_checks_l1_and_l2_authentication_on_every_private_call(fake: PolymarketFake) -> None:
    client = ClobClient(fake.url, 137, key=WALLET_KEY)
    creds = client.create_or_derive_api_key()
    assert client.derive_api_key() == creds  # deterministic per wallet and nonce
    headers = create_level_1_headers(Signer(OTHER_KEY, 137))
    headers["POLY_ADDRESS"] = client.get_address()  # another wallet's ClobAuth signature for our address
    forged = httpx.get(f"{fake.url}/auth/derive-api-key", headers=headers)
    assert forged.status_code == 401 and "error" in forged.json()

    client.set_api_creds(ApiCreds(creds.api_key, base64.urlsafe_b64encode(b"x" * 32).decode(), creds.api_passphrase))
    with pytest.raises(PolyApiException) as refused:
        client.get_open_orders()
    assert refused.value.status_code == 401 and refused.value.error_msg == {"error": "Unauthorized/Invalid api key"}
    client.set_api_creds(creds)
    assert client.get_open_orders() == []
