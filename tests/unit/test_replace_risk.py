"""Risk's side of post-only/GTD orders and of replacements: the signal's options reach the order, and a
replacement is checked like a new order (tick, band, limits, cash) and published as ReplaceOrder, or denied on
its new client order id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.support.risk_harness import BTC, T0, RiskHarness, risk_config
from tradewire_common import subjects
from tradewire_common.bus import Envelope
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    DenyReason,
    OrderDenied,
    OrderType,
    ReplaceOrder,
    Side,
    Signal,
    SubmitOrder,
    TimeInForce,
)
from tradewire_risk.replace import ReplaceError, ReplaceRequest, replacement_id

D = Decimal
EXPIRY = T0 + 3_600 * 10**9


def config(**risk: Any) -> Any:
    cfg = risk_config([{"id": "sma"}])
    risk_section = msgspec.structs.replace(cfg.risk, **{"fraction": 0.1, "max_position_pct": 0.5,
                                                        "max_exposure_pct": 1.0, **risk})
    instruments = tuple(msgspec.structs.replace(i, price_tick=D("0.5")) for i in risk_section.instruments)
    return msgspec.structs.replace(cfg, risk=msgspec.structs.replace(risk_section, instruments=instruments))


@pytest.fixture
async def risk() -> AsyncIterator[RiskHarness]:
    harness = await RiskHarness(config(price_band_pct=0.05)).start()
    await harness.snapshot("10000")
    yield harness
    await harness.stop()


async def limit_buy(harness: RiskHarness, limit: str = "39000", **options: Any) -> SubmitOrder:
    signal = Signal(id=derive_id("sig", limit, sorted(options.items())), ts_event=T0, ts_init=T0, strategy_id="sma",
                    instrument_id=BTC, side=Side.BUY, price=D("40000"), confidence=0.9, reason="test",
                    order_type=OrderType.LIMIT, limit_price=D(limit), **options)
    await harness.service.on_signal(Envelope(subjects.signal("sma"), signal, {}))
    await harness.settle()
    return harness.of(SubmitOrder)[-1]


async def test_a_signals_post_only_and_gtd_expiry_reach_the_submit_order(risk: RiskHarness) -> None:
    order = await limit_buy(risk, post_only=True, time_in_force=TimeInForce.GTD, expire_time_ns=EXPIRY)
    assert (order.post_only, order.time_in_force, order.expire_time_ns) == (True, TimeInForce.GTD, EXPIRY)


async def test_a_replacement_is_published_with_a_derived_id_and_the_context_follows(risk: RiskHarness) -> None:
    order = await limit_buy(risk)
    request = ReplaceRequest(limit_price=D("39500"), quantity=order.quantity + D("0.001"))
    answer = await risk.service.replace(order.client_order_id, request, "tester")
    await risk.settle()
    new_id = replacement_id(order.client_order_id, request)
    assert answer["decision"] == "REPLACE" and answer["new_client_order_id"] == new_id
    (command,) = risk.of(ReplaceOrder)
    assert risk.subjects_of(ReplaceOrder) == [subjects.order_command("BINANCE")]
    assert (command.client_order_id, command.new_client_order_id) == (order.client_order_id, new_id)
    assert (command.limit_price, command.quantity) == (D("39500"), order.quantity + D("0.001"))
    open_orders = risk.service.context_feed.context.open_orders
    assert order.client_order_id not in open_orders and open_orders[new_id].price == D("39500")
    await risk.service.replace(order.client_order_id, request, "tester")  # the same request again
    await risk.settle()
    assert [c.id for c in risk.of(ReplaceOrder)] == [command.id, command.id]  # one decision, same ids
    again = await risk.service.replace(new_id, ReplaceRequest(limit_price=D("39000")), "tester")
    assert again["decision"] == "REPLACE"  # the replacement can itself be replaced


@pytest.mark.parametrize(("request_", "code"), [
    (ReplaceRequest(limit_price=D("39000.3")), DenyReason.INVALID_ORDER),  # off the 0.5 tick
    (ReplaceRequest(limit_price=D("30000")), DenyReason.PRICE_BAND),  # 25% from the price
    (ReplaceRequest(quantity=D("0.2")), DenyReason.MAX_POSITION),  # 0.2 BTC = 8000 > 50% of 10000
    (ReplaceRequest(quantity=D("0.00001")), DenyReason.INVALID_ORDER),  # off the 0.0001 step
])
async def test_a_replacement_is_checked_like_a_new_order_and_denied_on_its_new_id(
    risk: RiskHarness, request_: ReplaceRequest, code: DenyReason
) -> None:
    order = await limit_buy(risk)
    answer = await risk.service.replace(order.client_order_id, request_, "tester")
    await risk.settle()
    (denied,) = risk.of(OrderDenied)
    assert answer["decision"] == "DENIED" and denied.reason_code is code
    assert denied.client_order_id == replacement_id(order.client_order_id, request_) != order.client_order_id
    assert risk.of(ReplaceOrder) == []
    assert order.client_order_id in risk.service.context_feed.context.open_orders  # still working


async def test_the_old_order_does_not_count_against_its_own_replacement_for_cash() -> None:
    harness = await RiskHarness(config(reserve_open_orders=True, max_position_pct=1.0)).start()
    try:
        await harness.snapshot("10000")
        order = await limit_buy(harness)  # 0.025 BTC at 39000: 975 reserved
        await limit_buy(harness, "38500")  # another 962.5 reserved: 9037.5 free for the first order's replacement
        answer = await harness.service.replace(order.client_order_id, ReplaceRequest(quantity=D("0.23")), "t")
        assert answer["decision"] == "REPLACE"  # 8970 <= 9037.5 (not <= 8062.5: the old 975 is not reserved too)
        denied = await harness.service.replace(answer["new_client_order_id"], ReplaceRequest(quantity=D("0.24")), "t")
        assert denied["reason_code"] == "INSUFFICIENT_CASH"  # 9360 > 9037.5
    finally:
        await harness.stop()


async def test_an_unknown_or_closed_order_cannot_be_replaced(risk: RiskHarness) -> None:
    with pytest.raises(ReplaceError) as unknown:
        await risk.service.replace("tw-unknown", ReplaceRequest(limit_price=D("39000")), "tester")
    assert unknown.value.status == 404
    order = await limit_buy(risk)
    risk.service.context_feed.context.open_orders.pop(order.client_order_id)  # filled meanwhile
    with pytest.raises(ReplaceError) as closed:
        await risk.service.replace(order.client_order_id, ReplaceRequest(limit_price=D("39000")), "tester")
    assert closed.value.status == 409


def test_a_replace_request_must_change_something_positive() -> None:
    with pytest.raises(ValueError, match="must change"):
        ReplaceRequest()
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"quantity": "-1"}, ReplaceRequest, strict=False)
    assert msgspec.convert({"limit_price": "39000.5"}, ReplaceRequest, strict=False).limit_price == D("39000.5")


async def test_a_replacement_execution_rejects_puts_the_still_working_old_order_back(risk: RiskHarness) -> None:
    from tradewire_common.schemas import OrderRejected

    order = await limit_buy(risk)
    answer = await risk.service.replace(order.client_order_id, ReplaceRequest(limit_price=D("39500")), "tester")
    new_id = answer["new_client_order_id"]
    context = risk.service.context_feed.context
    assert order.client_order_id not in context.open_orders
    rejected = OrderRejected(id=derive_id("rej", new_id), ts_event=T0, ts_init=T0, strategy_id="sma",
                             instrument_id=BTC, client_order_id=new_id, reason="the venue refused the amend")
    context.apply(rejected)  # what the context feed does with it
    await risk.service.on_replacement_outcome(Envelope(subjects.order_event("sma"), rejected, {}))
    assert order.client_order_id in context.open_orders and new_id not in context.open_orders
