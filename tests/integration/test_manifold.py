"""The Manifold adapter (httpx, API v0) against the fake Manifold on 127.0.0.1: shares -> mana limit bets, partial
fills from the bet's ``fills`` (once each), cancel, Manifold's own refusals, a lost create answer resolved from the
account's bets without a second bet, a wrong key, 429; and the same through the execution service on a real
nats-server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.fakes.manifold_fake import API_KEY, USER_ID, ManifoldFake, manifold_fake
from tests.support.venue_tests import Sleeps, eventually, submit
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
    TimeInForce,
)
from tradewire_execution.live.base import CollectingHost
from tradewire_execution.live.credentials import Credentials
from tradewire_execution.live.guard import LiveTradingRefused, is_loopback_url
from tradewire_execution.live.ratelimit import TokenBucket
from tradewire_execution.venues.manifold_adapter import ManifoldAdapter

pytestmark = pytest.mark.timeout(60)

VENUE = "MANIFOLD"
MARKET = "fakeMarket000000001"
OTHER = "someoneElseUserId0001"


@pytest.fixture
def fake() -> Iterator[ManifoldFake]:
    with manifold_fake() as venue:
        venue.add_market(MARKET, "Will the fake resolve YES?", prob=0.5)
        yield venue


def make_adapter(fake: ManifoldFake, *, key: str = API_KEY, limiter: TokenBucket | None = None,
                 **kw: Any) -> ManifoldAdapter:
    adapter = ManifoldAdapter(VENUE, credentials=Credentials(api_key=key), symbols=[f"{MARKET}-YES", f"{MARKET}-NO"],
                              base_url=fake.url, limiter=limiter or TokenBucket(0), poll_interval_s=0.05, **kw)
    assert is_loopback_url(adapter.base_url)
    return adapter


@pytest.fixture
async def started(fake: ManifoldFake) -> AsyncIterator[tuple[ManifoldAdapter, CollectingHost]]:
    adapter = make_adapter(fake)
    host = CollectingHost()
    adapter.attach(host)
    await adapter.start()
    yield adapter, host
    await adapter.close()


def bet(n: int, *, outcome: str = "YES", side: Side = Side.BUY, qty: str = "10", limit: str = "0.40",
        tif: TimeInForce = TimeInForce.GTC, **kw: Any) -> SubmitOrder:
    return SubmitOrder(
        id=derive_id("manifold-test", n), ts_event=1_700_000_000_000_000_000 + n, ts_init=1, correlation_id=f"sig-{n}",
        strategy_id="pm", instrument_id=f"{MARKET}-{outcome}.{VENUE}", client_order_id=f"tw-mf-{n:04d}", side=side,
        order_type=OrderType.LIMIT, quantity=Decimal(qty), limit_price=Decimal(limit), time_in_force=tif, **kw)


def of(events: list[OrderEvent], kind: type[OrderEvent]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


async def test_a_limit_order_for_shares_is_a_limit_bet_of_shares_times_price_in_mana(
    fake: ManifoldFake, started: tuple[ManifoldAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    answers = [await submit(adapter, bet(1)), await submit(adapter, bet(2, outcome="NO", limit="0.30")),
               await submit(adapter, bet(3, outcome="YES", side=Side.SELL, limit="0.70", qty="5"))]
    assert all([type(e) for e in a] == [OrderAccepted] for a in answers)
    posted = [(b["outcome"], b["amount"], b["limitProb"]) for b in fake.bets_posted()]
    # BUY YES 10 @ .40: YES, 4 mana, .40; BUY NO 10 @ .30: NO, 3 mana, YES prob .70; SELL YES 5 @ .70: NO, 1.5, .70
    assert posted == [("YES", 4.0, 0.4), ("NO", 3.0, 0.7), ("NO", 1.5, 0.7)]
    assert [e.venue_order_id for (e,) in answers] == [b.id for b in fake.bets_of()]
    assert await submit(adapter, bet(1)) == []  # redelivered: never a second bet
    assert len(fake.bets_posted()) == 3


async def test_a_resting_bet_fills_partly_then_fully_from_its_fills_each_once(
    fake: ManifoldFake, started: tuple[ManifoldAdapter, CollectingHost]
) -> None:
    adapter, host = started
    (accepted,) = await submit(adapter, bet(10))  # YES 10 shares @ .40 rests (the pool is at .50)
    await asyncio.to_thread(fake.place, OTHER, MARKET, "NO", 2.4, 0.40)  # 4 shares at .40 for them
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    await adapter.poll_once()  # the same bet again: nothing new
    await asyncio.to_thread(fake.place, OTHER, MARKET, "NO", 3.6, 0.40)  # the other 6
    await eventually(lambda: len(of(host.events, OrderFilled)) == 2)
    await adapter.poll_once()

    fills = of(host.events, OrderFilled)
    bet_id = accepted.venue_order_id
    assert [(f.trade_id, f.last_px, f.partial) for f in fills] == [
        (f"{bet_id}:0", Decimal("0.4"), True), (f"{bet_id}:1", Decimal("0.4"), False)]
    assert abs(fills[0].last_qty - 4) < Decimal("1e-9") and abs(fills[1].last_qty - 6) < Decimal("1e-9")
    assert adapter.open_orders() == []


async def test_a_bet_that_crosses_the_pool_fills_at_once_with_the_shares_its_mana_bought_and_a_sell_is_priced_as_one_minus_what_it_paid(  # noqa: E501
    fake: ManifoldFake, started: tuple[ManifoldAdapter, CollectingHost]
) -> None:
    adapter, host = started
    events = await submit(adapter, bet(11, limit="0.60"))  # YES 10 @ .60 = 6 mana; the pool is at .50
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled]
    (fill,) = of(events, OrderFilled)
    # the 6 mana bought more than 10 shares at a better price than .60: reported as Manifold gave them
    assert Decimal("0.5") < fill.last_px < Decimal("0.6") and fill.last_qty > 10 and not fill.partial
    assert fill.last_px * fill.last_qty - 6 < Decimal("1e-9")
    assert 0.5 < fake.markets[MARKET].prob < 0.6 and adapter.open_orders() == []
    sold = await submit(adapter, bet(12, side=Side.SELL, limit="0.50", qty="5"))  # a NO bet at YES prob .50
    (sell_fill,) = of(sold, OrderFilled)
    assert fake.bets_posted()[-1] == {"contractId": MARKET, "outcome": "NO", "amount": 2.5, "limitProb": 0.5}
    assert sell_fill.side is Side.SELL and Decimal("0.5") <= sell_fill.last_px < Decimal("0.6")
    assert not of(host.events, OrderRejected)


async def test_cancel_reports_the_filled_quantity_and_a_filled_bet_cannot_be_cancelled(
    fake: ManifoldFake, started: tuple[ManifoldAdapter, CollectingHost]
) -> None:
    adapter, host = started
    (accepted,) = await submit(adapter, bet(13))
    await asyncio.to_thread(fake.place, OTHER, MARKET, "NO", 1.2, 0.40)  # 2 shares
    await eventually(lambda: len(of(host.events, OrderFilled)) == 1)
    command = CancelOrder(id=derive_id("c", 13), ts_event=2, ts_init=2, strategy_id="pm",
                          instrument_id=f"{MARKET}-YES.{VENUE}", client_order_id="tw-mf-0013", reason="done")
    async with adapter.host.lock:
        events = await adapter.cancel(command, 3)
    (canceled,) = of(events, OrderCanceled)
    assert abs(canceled.filled_qty - 2) < Decimal("1e-9") and canceled.reason == "done"
    (placed,) = [b for b in fake.bets_of() if b.id == accepted.venue_order_id]
    assert placed.is_cancelled
    assert adapter.open_orders() == []


async def test_manifolds_refusals_are_rejections_with_its_message_and_what_it_cannot_take_is_never_sent(
    fake: ManifoldFake, started: tuple[ManifoldAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    (too_big,) = await submit(adapter, bet(20, qty="5000", limit="0.50"))  # 2500 mana, 1000 held
    assert isinstance(too_big, OrderRejected) and "Manifold 403: Insufficient balance." in too_big.reason
    (fine,) = await submit(adapter, bet(21, limit="0.405"))
    (market,) = await submit(adapter, msgspec.structs.replace(bet(22), order_type=OrderType.MARKET, limit_price=None))
    (tiny,) = await submit(adapter, bet(23, qty="1", limit="0.50"))
    assert "0.01..0.99, step 0.01" in fine.reason and "does not support MARKET orders" in market.reason
    assert "under 1 mana" in tiny.reason
    fake.resolve(MARKET, "NO")
    (closed,) = await submit(adapter, bet(24))
    assert isinstance(closed, OrderRejected) and "Trading is closed." in closed.reason
    assert len(fake.bets_posted()) == 2


async def test_a_lost_create_answer_is_found_among_the_accounts_bets_and_never_placed_twice(fake: ManifoldFake) -> None:
    adapter = make_adapter(fake, request_timeout_s=0.5)
    host = CollectingHost()
    adapter.attach(host)
    await adapter.start()
    try:
        older = await asyncio.to_thread(fake.place, USER_ID, MARKET, "YES", 4.0, 0.40)  # an identical manual bet
        older.created -= 5_000  # placed 5 s before
        fake.fault("POST", "/v0/bet", "timeout")
        events = await submit(adapter, bet(30))
        (accepted,) = of(events, OrderAccepted)
        restarted = make_adapter(fake)  # a restart with the saved state: the mapping survives
        restarted.restore_state(adapter.export_state())
        restarted.attach(CollectingHost())
        await restarted.start()
        found = await restarted.venue_order(bet(30))
        await restarted.close()
    finally:
        await adapter.close()
    ours = fake.bets_of()
    assert len(fake.bets_posted()) == 1 and len(ours) == 2
    assert accepted.venue_order_id == ours[1].id  # the bet created after the send, not the older twin
    assert found.venue_order_id == ours[1].id


async def test_a_5xx_on_create_is_in_flight_until_the_grace_then_rejected_without_a_second_bet(
    fake: ManifoldFake,
) -> None:
    clock = [1_700_000_000_000_000_000]
    adapter = make_adapter(fake, in_flight_grace_s=15.0, wall_ns=lambda: clock[0])
    host = CollectingHost()
    adapter.attach(host)
    await adapter.start()
    try:
        fake.fault("POST", "/v0/bet", "5xx", status=502)  # answered without placing it
        assert await submit(adapter, bet(31)) == []
        assert adapter.tracked("tw-mf-0031").status == "in_flight"  # type: ignore[union-attr]
        clock[0] += 16_000_000_000
        await adapter.resolve_in_flight()
    finally:
        await adapter.close()
    (rejected,) = of(host.events, OrderRejected)
    assert "no order tw-mf-0031" in rejected.reason and len(fake.bets_posted()) == 1 and fake.bets == []


async def test_429_waits_its_retry_after_then_the_bet_is_sent_again(fake: ManifoldFake) -> None:
    sleeps = Sleeps()
    adapter = make_adapter(fake, limiter=TokenBucket(0, sleep=sleeps))
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        fake.fault("POST", "/v0/bet", "429", retry_after="2")
        events = await submit(adapter, bet(32))
    finally:
        await adapter.close()
    assert [type(e) for e in events] == [OrderAccepted]
    assert len(fake.bets_posted()) == 2 and len(fake.bets) == 1
    assert sleeps.waits and 1.9 < sleeps.waits[0] <= 2.0


async def test_a_wrong_key_is_refused_with_manifolds_401_and_never_reaches_a_log(
    fake: ManifoldFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = make_adapter(fake, key="wrong-" + API_KEY)
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        (rejected,) = await submit(adapter, bet(40))
    finally:
        await adapter.close()
    assert isinstance(rejected, OrderRejected) and "Manifold 401" in rejected.reason
    assert "could not find user with api key" in rejected.reason
    assert fake.bad_auth >= 1 and fake.bets == []
    assert API_KEY not in caplog.text and API_KEY not in rejected.reason


async def test_a_gtd_bet_carries_expires_at_and_the_balance_is_mana(
    fake: ManifoldFake, started: tuple[ManifoldAdapter, CollectingHost]
) -> None:
    adapter, _host = started
    (accepted,) = await submit(adapter, bet(50, tif=TimeInForce.GTD, expire_time_ns=4_000_000_000_000_000_000))
    assert isinstance(accepted, OrderAccepted)
    assert fake.bets_posted()[-1]["expiresAt"] == 4_000_000_000_000
    assert await adapter.venue_balances() == {"MANA": Decimal("1000.0")}  # a resting bet spends nothing yet


def test_live_mode_cannot_be_built_under_tests_and_sandbox_is_manifolds_dev_deployment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tradewire_common.config import VenueConfig, config_from_dict
    from tradewire_execution.venues import build_adapter

    symbols = (f"{MARKET}-YES",)
    with pytest.raises(LiveTradingRefused):
        build_adapter(VenueConfig(name=VENUE, adapter="manifold", mode="live", symbols=symbols), config_from_dict({}))
    monkeypatch.setenv("TRADEWIRE_MANIFOLD_API_KEY", API_KEY)
    adapter = build_adapter(VenueConfig(name=VENUE, adapter="manifold", mode="sandbox", symbols=symbols),
                            config_from_dict({}))
    assert isinstance(adapter, ManifoldAdapter) and adapter.base_url == "https://api.dev.manifold.markets"
    paper = build_adapter(VenueConfig(name=VENUE, adapter="manifold", symbols=symbols), config_from_dict({}))
    assert not isinstance(paper, ManifoldAdapter)


# --- through the execution service on a real broker ----------------------------------------------------------


async def test_bets_partial_fills_cancels_and_refusals_flow_through_execution_on_a_real_broker(
    fake: ManifoldFake, fresh_nats: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.inproc import InProcessStack
    from tradewire_common import subjects
    from tradewire_common.bus import Envelope, NatsBus
    from tradewire_common.config import config_from_dict

    monkeypatch.setenv("TRADEWIRE_MANIFOLD_API_KEY", API_KEY)
    config = config_from_dict({
        "execution": {"venues": [{"name": VENUE, "adapter": "manifold", "mode": "sandbox",
                                  "symbols": [f"{MARKET}-YES", f"{MARKET}-NO"], "url_override": fake.url,
                                  "poll_interval_s": 0.1, "reconcile_interval_s": 0}]},
        "ledger": {"path": str(tmp_path / "ledger.db")},
    })
    stack = InProcessStack(config, fresh_nats.url)
    probe = NatsBus("probe", fresh_nats.url, auth=None)
    await probe.connect()
    seen: list[OrderEvent] = []

    async def on_event(env: Envelope) -> None:
        if isinstance(env.message, OrderEvent):
            seen.append(env.message)

    await probe.subscribe(subjects.order_event("pm"), on_event)
    await stack.start(("execution",))
    try:
        entry = bet(60)
        await probe.publish(subjects.order_command(VENUE), entry)
        await eventually(lambda: any(isinstance(e, OrderAccepted) for e in seen))
        await asyncio.to_thread(fake.place, OTHER, MARKET, "NO", 2.4, 0.40)
        await probe.publish(subjects.order_command(VENUE), entry)  # risk's command redelivered: no second bet
        await eventually(lambda: len(of(seen, OrderFilled)) == 1)
        await asyncio.to_thread(fake.place, OTHER, MARKET, "NO", 3.6, 0.40)
        await eventually(lambda: len(of(seen, OrderFilled)) == 2)

        await probe.publish(subjects.order_command(VENUE), bet(61, limit="0.30"))
        await eventually(lambda: len(of(seen, OrderAccepted)) == 2)
        await probe.publish(subjects.order_command(VENUE), CancelOrder(
            id=derive_id("c", 61), ts_event=2, ts_init=2, strategy_id="pm", instrument_id=f"{MARKET}-YES.{VENUE}",
            client_order_id="tw-mf-0061", reason="no longer wanted"))
        await probe.publish(subjects.order_command(VENUE), bet(62, qty="5000", limit="0.50"))
        await eventually(lambda: bool(of(seen, OrderCanceled)) and bool(of(seen, OrderRejected)))

        fake.fault("POST", "/v0/bet", "lost")  # placed, but the answer is a 502
        await probe.publish(subjects.order_command(VENUE), bet(63, limit="0.20"))
        await eventually(lambda: any(e.client_order_id == "tw-mf-0063" for e in of(seen, OrderAccepted)))
    finally:
        await stack.close()
        await probe.close()
    fills = [f for f in of(seen, OrderFilled) if f.client_order_id == "tw-mf-0060"]
    assert [f.partial for f in fills] == [True, False] and all(f.last_px == Decimal("0.4") for f in fills)
    assert sum((f.last_qty for f in fills), Decimal(0)) == 10
    assert of(seen, OrderCanceled)[0].client_order_id == "tw-mf-0061"
    assert "Insufficient balance." in of(seen, OrderRejected)[0].reason
    assert len(fake.bets_posted()) == 4 and len(fake.bets_of()) == 3  # the refused one placed nothing
    (lost,) = [e for e in of(seen, OrderAccepted) if e.client_order_id == "tw-mf-0063"]
    assert lost.venue_order_id == fake.bets_of()[-1].id and fake.bets_of()[-1].limit_prob == 0.2


async def test_an_adapter_started_while_manifold_is_down_starts_and_finds_the_account_once_it_is_back(
    fake: ManifoldFake,
) -> None:
    from tests.support.ports import free_tcp_port

    adapter = make_adapter(fake)
    adapter.http.client.base_url = f"http://127.0.0.1:{free_tcp_port()}"  # nothing listens there
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        assert adapter.user_id == ""
        adapter.http.client.base_url = fake.url  # back
        (accepted,) = await submit(adapter, bet(70))
        assert isinstance(accepted, OrderAccepted) and await adapter.venue_open_orders() != []
        assert adapter.user_id == USER_ID
    finally:
        await adapter.close()
