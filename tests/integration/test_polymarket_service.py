"""Through the real execution service on a real nats-server, with the unmodified py-clob-client-v2 against the
fake Polymarket: an order accepted once (a redelivered command included), a provisional fill reversed by a FAILED
match, the refill confirmed, every event published once, also across a restart of execution; a YES/NO cross whose
create answer was lost, and a cancel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.fakes.polymarket import WALLET_KEY, PolymarketFake, polymarket_fake
from tests.support.inproc import InProcessStack
from tests.support.venue_tests import eventually
from tradewire_common import subjects
from tradewire_common.bus import Envelope, NatsBus
from tradewire_common.config import config_from_dict
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    CancelOrder,
    FillConfirmed,
    FillReversed,
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

pytestmark = pytest.mark.timeout(90)

VENUE = "POLYMARKET"
CONDITION = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"
YES = "21742633143463906290569050155826241533067272736897614950488156847949938836455"
NO = "48331043336612883890938759509493159234755048973500640148014422747788308965732"


@pytest.fixture
def fake() -> Iterator[PolymarketFake]:
    with polymarket_fake() as venue:
        venue.add_market(CONDITION, YES, NO, "Will Donald Trump win the 2024 US Presidential Election?")
        venue.set_auto_confirm(False)
        yield venue


def order(n: int, price: str = "0.40", tif: TimeInForce = TimeInForce.GTC) -> SubmitOrder:
    return SubmitOrder(
        id=derive_id("pm-svc", n), ts_event=1, ts_init=1, correlation_id=f"sig-{n}", strategy_id="edge",
        instrument_id=f"{YES}.{VENUE}", client_order_id=f"tw-pms-{n:04d}", side=Side.BUY,
        order_type=OrderType.LIMIT, quantity=Decimal(10), limit_price=Decimal(price), time_in_force=tif)


async def test_provisional_fills_reversed_and_confirmed_are_published_once_through_execution(
    fake: PolymarketFake, nats_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    tmp_path: Any,
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("TRADEWIRE_POLYMARKET_API_SECRET", WALLET_KEY)
    config = config_from_dict({"execution": {"venues": [{
        "name": VENUE, "adapter": "polymarket", "mode": "sandbox", "symbols": [YES, NO], "url_override": fake.url,
        "poll_interval_s": 0.1, "reconcile_interval_s": 0, "in_flight_grace_s": 2.0}]},
        "ledger": {"path": str(tmp_path / "ledger.db"), "starting_cash": "1000", "currency": "USDC"}})
    stack = InProcessStack(config, nats_url)
    probe = NatsBus("probe", nats_url)
    await probe.connect()
    events: list[OrderEvent] = []

    async def on_event(envelope: Envelope) -> None:
        if isinstance(envelope.message, OrderEvent) and envelope.message.client_order_id.startswith("tw-pms-"):
            events.append(envelope.message)

    def of(kind: type[OrderEvent]) -> list[Any]:
        return [e for e in events if isinstance(e, kind)]

    await probe.subscribe(subjects.STRATEGY_ORDER_EVENTS, on_event)
    await stack.start(("ledger", "execution"))
    try:
        entry = order(1)
        await probe.publish(subjects.order_command(VENUE), entry)
        await probe.publish(subjects.order_command(VENUE), entry)  # risk's command redelivered
        await eventually(lambda: len(of(OrderAccepted)) == 1)
        fake.take(YES, "SELL", "0.40", "4")
        await eventually(lambda: len(of(OrderFilled)) == 1)
        (first,) = fake.trades()
        fake.fail(first.id)
        await eventually(lambda: len(of(FillReversed)) == 1)
        fake.take(YES, "SELL", "0.40", "10")
        await eventually(lambda: len(of(OrderFilled)) == 2)
        second = fake.trades()[-1]
        await stack.restart_service("execution")  # the unsettled fill is in the saved state
        fake.confirm(second.id)
        await eventually(lambda: len(of(FillConfirmed)) == 1)
        await probe.publish(subjects.order_command(VENUE), order(2, price="0.405"))  # off the 0.01 tick
        await eventually(lambda: len(of(OrderRejected)) == 1)
        fills: list[dict[str, Any]] = []
        for _ in range(200):  # the ledger has them once, the reversed one marked
            fills = (await stack.get("ledger", "/v1/fills")).json()
            if sorted(f.get("status", "") for f in fills) == ["confirmed", "reversed"]:
                break
            await asyncio.sleep(0.05)
        positions = (await stack.get("ledger", "/v1/positions")).json()
    finally:
        await stack.close()
        await probe.close()

    assert sorted((f["trade_id"], f["status"]) for f in fills) == sorted(
        [(first.id, "reversed"), (second.id, "confirmed")])
    held = {p["instrument_id"]: Decimal(str(p["quantity"])) for p in positions["positions"]}
    assert held == {f"{YES}.{VENUE}": Decimal(10)}  # the reversed 4 are gone

    assert [type(e).__name__ for e in events if type(e).__name__ != "OrderSubmitted"] == [
        "OrderAccepted", "OrderFilled", "FillReversed", "OrderFilled", "FillConfirmed", "OrderRejected"]
    filled = of(OrderFilled)
    assert [(f.last_qty, f.provisional, f.partial) for f in filled] == [
        (Decimal(4), True, True), (Decimal(10), True, False)]
    assert (of(FillReversed)[0].trade_id, of(FillConfirmed)[0].trade_id) == (first.id, second.id)
    assert len(fake.posted) == 1 and len(fake.orders_of(fake.posted[0]["owner"])) == 1
    assert "tick" in of(OrderRejected)[0].reason
    assert WALLET_KEY[2:] not in caplog.text


async def test_a_yes_no_cross_with_a_lost_create_answer_and_a_cancel_through_execution(
    fake: PolymarketFake, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.set_auto_confirm(True)
    monkeypatch.setenv("TRADEWIRE_POLYMARKET_API_SECRET", WALLET_KEY)
    config = config_from_dict({"execution": {"venues": [{
        "name": VENUE, "adapter": "polymarket", "mode": "sandbox", "symbols": [YES, NO], "url_override": fake.url,
        "poll_interval_s": 0.1, "reconcile_interval_s": 0, "in_flight_grace_s": 2.0}]}})
    stack = InProcessStack(config, nats_url)
    probe = NatsBus("probe", nats_url)
    await probe.connect()
    events: list[OrderEvent] = []

    async def on_event(envelope: Envelope) -> None:
        if isinstance(envelope.message, OrderEvent) and envelope.message.client_order_id.startswith("tw-pms-"):
            events.append(envelope.message)

    def of(kind: type[OrderEvent], coid: str) -> list[Any]:
        return [e for e in events if isinstance(e, kind) and e.client_order_id == coid]

    await probe.subscribe(subjects.STRATEGY_ORDER_EVENTS, on_event)
    await stack.start(("execution",))
    try:
        await probe.publish(subjects.order_command(VENUE), order(3, price="0.55"))
        await eventually(lambda: len(of(OrderAccepted, "tw-pms-0003")) == 1)
        fake.fault("POST", "/order", "drop")  # the NO order is matched, its answer lost
        no = msgspec.structs.replace(order(4, price="0.47"), instrument_id=f"{NO}.{VENUE}")
        await probe.publish(subjects.order_command(VENUE), no)
        await eventually(lambda: len(of(OrderFilled, "tw-pms-0004")) == 1 and len(of(OrderFilled, "tw-pms-0003")) == 1)

        await probe.publish(subjects.order_command(VENUE), order(5, price="0.30"))
        await eventually(lambda: len(of(OrderAccepted, "tw-pms-0005")) == 1)
        await probe.publish(subjects.order_command(VENUE), CancelOrder(
            id=derive_id("pm-svc-cancel", 5), ts_event=2, ts_init=2, strategy_id="edge",
            instrument_id=f"{YES}.{VENUE}", client_order_id="tw-pms-0005", reason="edge gone"))
        await eventually(lambda: len(of(OrderCanceled, "tw-pms-0005")) == 1)
    finally:
        await stack.close()
        await probe.close()

    (yes_fill,), (no_fill,) = of(OrderFilled, "tw-pms-0003"), of(OrderFilled, "tw-pms-0004")
    assert (yes_fill.instrument_id, yes_fill.side, yes_fill.last_px, yes_fill.last_qty) == (
        f"{YES}.{VENUE}", Side.BUY, Decimal("0.55"), Decimal(10))
    assert (no_fill.instrument_id, no_fill.side, no_fill.last_px, no_fill.last_qty) == (
        f"{NO}.{VENUE}", Side.BUY, Decimal("0.45"), Decimal(10))
    assert len(of(OrderAccepted, "tw-pms-0004")) == 1 and len(fake.posted) == 3  # one create per order
    assert len(fake.orders_of(fake.posted[0]["owner"])) == 3
    (canceled,) = of(OrderCanceled, "tw-pms-0005")
    assert canceled.reason == "edge gone" and canceled.filled_qty == 0
