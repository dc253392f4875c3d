"""ReplaceOrder on live venues (the framework's live/replace.py) against the fake Alpaca: the native amend, and
cancel-then-new (Alpaca without CAP_AMEND stands for every venue without a native amend): fills of the old order
during the replace are kept and counted, a refused replacement leaves the old order accounted for, and a
restart in the middle carries on from the adapter's journal."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.alpaca_fake import AlpacaFake, alpaca_fake
from tests.integration.test_alpaca import VENUE, make_adapter, of, order
from tests.support.venue_tests import submit
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    ReplaceOrder,
)
from tradewire_execution.live.base import Ambiguous, CollectingHost
from tradewire_execution.venue import CAP_AMEND
from tradewire_execution.venues.alpaca_adapter import AlpacaAdapter

pytestmark = pytest.mark.timeout(60)
D = Decimal


@pytest.fixture
def fake() -> Iterator[AlpacaFake]:
    with alpaca_fake() as venue:
        yield venue


def replace(old: int, new: int, **kw: Any) -> ReplaceOrder:
    return ReplaceOrder(id=derive_id("replace", old, new), ts_event=5, ts_init=5, strategy_id="sma",
                        instrument_id=f"AAPL.{VENUE}", client_order_id=f"tw-alp-{old:04d}",
                        new_client_order_id=f"tw-alp-{new:04d}", **kw)


async def started(fake: AlpacaFake, *, amend: bool, **kw: Any) -> tuple[AlpacaAdapter, CollectingHost]:
    """An adapter that neither streams nor polls by itself (so fills reach it only when it asks)."""
    adapter = make_adapter(fake, websocket=False, poll_interval_s=3600, **kw)
    if not amend:
        adapter.capabilities = adapter.capabilities - {CAP_AMEND}
    host = CollectingHost()
    adapter.attach(host)
    await adapter.start()
    return adapter, host


async def do(adapter: AlpacaAdapter, command: ReplaceOrder) -> list[OrderEvent]:
    async with adapter.host.lock:
        return await adapter.replace(command, 6)


@pytest.mark.parametrize("amend", [True, False], ids=["native-amend", "cancel-then-new"])
async def test_fills_of_the_old_order_during_the_replace_are_kept_and_counted(fake: AlpacaFake, amend: bool) -> None:
    adapter, _host = await started(fake, amend=amend)
    try:
        await submit(adapter, order(1, limit="185.00"))
        await asyncio.to_thread(fake.fill, "tw-alp-0001", "3", "185.00")  # not seen by the adapter yet
        events = await do(adapter, replace(1, 2, limit_price=D("185.20")))
        old_fill, replaced = events
        assert isinstance(old_fill, OrderFilled) and old_fill.client_order_id == "tw-alp-0001"
        assert old_fill.last_qty == D(3)
        assert isinstance(replaced, OrderReplaced)
        assert (replaced.quantity, replaced.filled_qty, replaced.limit_price) == (D(10), D(3), D("185.20"))
        new = fake.order("tw-alp-0002")
        assert fake.order("tw-alp-0001").status == ("replaced" if amend else "canceled")
        # native: Alpaca's new order carries the 3 filled; cancel-then-new: a new order for the 7 left
        assert (new.qty, new.filled_qty) == ((D(10), D(3)) if amend else (D(7), D(0)))
        assert adapter.open_orders() == ["tw-alp-0002"]
        await asyncio.to_thread(fake.fill, "tw-alp-0002", "7", "185.20")
        await adapter.poll_once()
        (last,) = [e for e in adapter.host.events if isinstance(e, OrderFilled)]  # type: ignore[attr-defined]
        assert (last.client_order_id, last.last_qty, last.leaves_qty, last.partial) == ("tw-alp-0002", D(7), 0, False)
    finally:
        await adapter.close()


async def test_a_replacement_the_venue_refuses_after_the_cancel_leaves_the_old_order_cancelled_and_counted(
    fake: AlpacaFake,
) -> None:
    adapter, _host = await started(fake, amend=False)
    try:
        await submit(adapter, order(3, limit="185.00"))
        await asyncio.to_thread(fake.fill, "tw-alp-0003", "2", "185.00")
        events = await do(adapter, replace(3, 4, limit_price=D("185.001")))  # sub-penny: Alpaca refuses it
        assert [type(e) for e in events] == [OrderFilled, OrderCanceled, OrderRejected]
        canceled, rejected = events[1], events[2]
        assert (canceled.client_order_id, canceled.filled_qty) == ("tw-alp-0003", D(2))
        assert rejected.client_order_id == "tw-alp-0004" and "sub-penny" in rejected.reason
        assert adapter.open_orders() == []
    finally:
        await adapter.close()


async def test_a_refused_amend_leaves_the_old_order_working(fake: AlpacaFake) -> None:
    adapter, _host = await started(fake, amend=True)
    try:
        await submit(adapter, order(5, limit="185.00"))
        (rejected,) = await do(adapter, replace(5, 6, limit_price=D("185.001")))
        assert isinstance(rejected, OrderRejected) and rejected.client_order_id == "tw-alp-0006"
        assert fake.order("tw-alp-0005").status == "new" and adapter.open_orders() == ["tw-alp-0005"]
        (again,) = await do(adapter, replace(5, 7, quantity=D(12)))  # the journal was cleared: a new try works
        assert isinstance(again, OrderReplaced) and fake.order("tw-alp-0007").qty == D(12)
    finally:
        await adapter.close()


async def test_a_replace_below_the_filled_quantity_or_of_an_unknown_order_is_rejected_before_sending(
    fake: AlpacaFake,
) -> None:
    adapter, _host = await started(fake, amend=False)
    try:
        await submit(adapter, order(8, limit="185.00"))
        await asyncio.to_thread(fake.fill, "tw-alp-0008", "4", "185.00")
        await adapter.poll_once()
        (low,) = await do(adapter, replace(8, 9, quantity=D(4)))
        assert isinstance(low, OrderRejected) and "not above the filled quantity 4" in low.reason
        (unknown,) = await do(adapter, replace(99, 98, quantity=D(4)))
        assert isinstance(unknown, OrderRejected) and "unknown or closed" in unknown.reason
        assert fake.order("tw-alp-0008").status == "partially_filled"
        assert await do(adapter, replace(8, 9, quantity=D(5))) == []  # that new id was answered already
    finally:
        await adapter.close()


async def test_a_restart_in_the_middle_of_a_cancel_then_new_carries_on_from_the_journal(fake: AlpacaFake) -> None:
    first, _host = await started(fake, amend=False, request_timeout_s=0.5)
    await submit(first, order(10, limit="185.00"))
    fake.fault("DELETE", "/v2/orders/", "timeout")  # the cancel is carried out, its answer never comes
    with pytest.raises(Ambiguous):
        await do(first, replace(10, 11, quantity=D(6)))
    state = first.export_state()
    await first.close()  # execution dies here: the old order is cancelled at Alpaca, the new one not sent
    assert fake.order("tw-alp-0010").status == "canceled" and "tw-alp-0011" not in fake.by_coid

    second = make_adapter(fake, websocket=False, poll_interval_s=3600)
    second.capabilities = second.capabilities - {CAP_AMEND}
    host = CollectingHost()
    second.attach(host)
    second.restore_state(state)
    await second.start()  # continues the journalled replacement
    try:
        (replaced,) = of(host.events, OrderReplaced)
        assert (replaced.client_order_id, replaced.new_client_order_id, replaced.quantity) == (
            "tw-alp-0010", "tw-alp-0011", D(6))
        assert not of(host.events, OrderCanceled)  # the old order continues as the new one
        assert fake.order("tw-alp-0011").qty == D(6)
        assert [b["client_order_id"] for b in fake.orders_posted()].count("tw-alp-0011") == 1
        assert await do(second, replace(10, 11, quantity=D(6))) == []  # risk's command redelivered: nothing
        assert second.open_orders() == ["tw-alp-0011"]
    finally:
        await second.close()


async def test_an_unanswered_amend_is_resolved_by_the_new_client_order_id_after_a_restart(fake: AlpacaFake) -> None:
    first, _host = await started(fake, amend=True, request_timeout_s=0.5)
    await submit(first, order(20, limit="185.00"))
    fake.fault("PATCH", "/v2/orders/", "timeout")  # Alpaca replaces it, the answer never comes
    assert await do(first, replace(20, 21, limit_price=D("185.40"))) == []  # in flight, journalled
    state = first.export_state()
    await first.close()

    second = make_adapter(fake, websocket=False, poll_interval_s=3600)
    host = CollectingHost()
    second.attach(host)
    second.restore_state(state)
    await second.start()  # resolves the new client order id at the venue
    try:
        (replaced,) = of(host.events, OrderReplaced)
        assert (replaced.client_order_id, replaced.new_client_order_id, replaced.limit_price) == (
            "tw-alp-0020", "tw-alp-0021", D("185.40"))
        assert second.open_orders() == ["tw-alp-0021"]
        assert [r[0] for r in fake.requests if r[1].startswith("/v2/orders/")].count("PATCH") == 1
    finally:
        await second.close()
